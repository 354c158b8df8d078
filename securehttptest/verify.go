package securehttptest

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the claims of an access token an AuthServer issued (RFC
// 9068): iss, sub (the client's ID, or the sub of the JWT it was traded
// for), aud (the audiences and resource indicators the client asked for, if
// any), iat, exp, jti, client_id (of the client, if one identified itself),
// scope, act (a token exchange's actor, RFC 8693 section 4.1), and cnf when
// the token is bound to a DPoP key or a client certificate.
type Claims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id,omitempty"`
	Scope    string `json:"scope,omitempty"`
	Act      struct {
		Subject string `json:"sub,omitempty"` // the actor token's sub
	} `json:"act,omitzero"`
	Cnf struct {
		JKT     string `json:"jkt,omitempty"`      // the thumbprint of the DPoP key (RFC 9449)
		X5TS256 string `json:"x5t#S256,omitempty"` // the SHA-256 of the client certificate (RFC 8705)
	} `json:"cnf,omitzero"`
}

// VerifyRequest verifies the access token that r carries, as a resource
// server does, and returns its claims; a handler calls it to refuse what
// its API would refuse, and a test to check what a server received
// (Server.Requests). The token must be one the server issued, not
// expired, sent in one Authorization field; for an audience it names, to
// a URL below one of them; bound to a DPoP key, with the DPoP scheme and a
// valid proof of that key for r's method and URL and for the token, whose
// jti is used once (a request that a server of the kit received may be
// verified again, from its handler and from Requests); bound to a
// certificate, over a connection on which the client presented it.
// Resource servers' DPoP nonces are not checked.
func (a *AuthServer) VerifyRequest(r *http.Request) (*Claims, error) {
	if r == nil || r.URL == nil {
		return nil, errors.New("securehttptest: VerifyRequest: no request")
	}
	c, ref := a.a.verify(r)
	if ref != nil {
		return nil, ref
	}
	return c, nil
}

// invalidToken is a token VerifyRequest refuses.
func invalidToken(check, format string, args ...any) *refusal {
	return &refusal{status: http.StatusUnauthorized, code: "invalid_token", check: check, msg: fmt.Sprintf(format, args...)}
}

func (a *authServer) verify(r *http.Request) (*Claims, *refusal) {
	auths := r.Header.Values("Authorization")
	if len(auths) != 1 {
		return nil, invalidToken("authorization", "the request carries %d Authorization fields, want 1", len(auths))
	}
	scheme, raw, _ := strings.Cut(auths[0], " ")
	dpop := strings.EqualFold(scheme, "DPoP")
	if raw == "" || !dpop && !strings.EqualFold(scheme, "Bearer") {
		return nil, invalidToken("scheme", "the Authorization field holds no Bearer or DPoP token")
	}
	c, ref := a.parseToken(raw)
	if ref != nil {
		return nil, ref
	}
	if len(c.Audience) > 0 && !forAudience(requestTarget(r), c.Audience) {
		return nil, invalidToken("aud", "the token is for %q, not for %s", []string(c.Audience), requestTarget(r))
	}
	switch {
	case c.Cnf.JKT != "" && !dpop:
		return nil, invalidToken("scheme", "the token is bound to a DPoP key, and was sent as a bearer token")
	case c.Cnf.JKT == "" && dpop:
		return nil, invalidToken("scheme", "the token was sent with the DPoP scheme, and is bound to no key")
	case dpop:
		jkt, ref := a.checkProof(r, raw, false)
		if ref != nil {
			return nil, ref
		}
		if jkt != c.Cnf.JKT {
			return nil, invalidToken("jkt", "the DPoP proof is signed by another key than the token is bound to")
		}
	}
	if x5t := c.Cnf.X5TS256; x5t != "" {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return nil, invalidToken("x5t", "the token is bound to a client certificate, and the client presented none")
		}
		if certThumbprint(r.TLS.PeerCertificates[0].Raw) != x5t {
			return nil, invalidToken("x5t", "the token is bound to another client certificate than the one presented")
		}
	}
	return c, nil
}

// parseToken verifies a token the server issued: its signature, typ,
// issuer and expiry.
func (a *authServer) parseToken(raw string) (*Claims, *refusal) {
	var c Claims
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	tok, err := parser.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return &a.key.PublicKey, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, invalidToken("signature", "the token's signature does not verify with the server's key")
	case err != nil:
		return nil, invalidToken("malformed", "the token is not a JWT signed with ES256")
	}
	if typ, _ := tok.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") {
		return nil, invalidToken("typ", "the token's typ is %q, want at+jwt", typ)
	}
	now := a.now()
	switch {
	case c.Issuer != a.issuer:
		return nil, invalidToken("iss", "the token's iss is %q, want %q", c.Issuer, a.issuer)
	case c.ExpiresAt == nil:
		return nil, invalidToken("exp", "the token has no exp")
	case !now.Before(c.ExpiresAt.Time):
		return nil, invalidToken("exp", "the token expired at %v", c.ExpiresAt.Time)
	case c.NotBefore != nil && now.Before(c.NotBefore.Time):
		return nil, invalidToken("nbf", "the token is not valid before %v", c.NotBefore.Time)
	}
	return &c, nil
}

// forAudience reports whether target is one of aud, or below one.
func forAudience(target string, aud []string) bool {
	for _, a := range aud {
		u, err := url.Parse(a)
		if err != nil {
			continue
		}
		base := normalTarget(u.Scheme, u.Host, u.EscapedPath())
		if target == base || strings.HasPrefix(target, strings.TrimSuffix(base, "/")+"/") {
			return true
		}
	}
	return false
}
