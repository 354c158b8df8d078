package securehttptest

// Client authentication at the token endpoint: client_secret_basic (RFC
// 6749 section 2.3.1), private_key_jwt (RFC 7523 section 2.2) and
// tls_client_auth (RFC 8705 section 2.1).

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxSkew is how far ahead of the server's clock a client's iat may be.
const maxSkew = time.Minute

// authenticate checks that the request authenticates the client the server
// knows, with the one method it is registered with, and returns its ID. A
// grant that does without a client (optional) takes a request in which no
// client authenticates or identifies itself, and returns "" for it; a
// public client (ClientAuth "none") may identify itself with client_id,
// and never authenticate.
func (a *authServer) authenticate(r *http.Request, form url.Values, optional bool) (string, *refusal) {
	user, pass, basic := r.BasicAuth()
	assertion := form.Has("client_assertion") || form.Has("client_assertion_type")
	if basic && assertion {
		return "", invalidRequest("methods", "the request authenticates the client twice, with Basic and an assertion")
	}
	if optional && !basic && !assertion && !form.Has("client_id") {
		return "", nil
	}
	switch a.set.method {
	case methodNone:
		if basic || assertion {
			return "", invalidClient("method", "the client is a public one (none), and must not authenticate")
		}
		if cid := form.Get("client_id"); cid != "" && cid != clientID {
			return "", invalidClient("client_id", "unknown client_id")
		}
		return form.Get("client_id"), nil

	case methodBasic:
		if !basic {
			return "", invalidClient("method", "the client must authenticate with client_secret_basic")
		}
		// Both parts are form-encoded before Basic (RFC 6749 section 2.3.1).
		id, err1 := url.QueryUnescape(user)
		secret, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return "", invalidClient("basic", "the Basic credentials are not form-encoded")
		}
		if id != clientID || subtle.ConstantTimeCompare([]byte(secret), []byte(a.client.secret)) != 1 {
			return "", invalidClient("secret", "unknown client, or wrong secret")
		}
		if cid := form.Get("client_id"); cid != "" && cid != id {
			return "", invalidRequest("client_id", "client_id names another client than the Basic credentials")
		}
		return id, nil

	case methodPrivateKeyJWT:
		if !assertion {
			return "", invalidClient("method", "the client must authenticate with private_key_jwt")
		}
		if form.Get("client_assertion_type") != assertionType {
			return "", invalidClient("assertion_type", fmt.Sprintf("client_assertion_type must be %s", assertionType))
		}
		if ref := a.checkAssertion(form.Get("client_assertion")); ref != nil {
			return "", ref
		}
		if cid := form.Get("client_id"); cid != "" && cid != clientID {
			return "", invalidRequest("client_id", "client_id names another client than the assertion")
		}
		return clientID, nil

	default: // tls_client_auth
		if basic || assertion {
			return "", invalidClient("method", "the client must authenticate with tls_client_auth, with its certificate only")
		}
		if form.Get("client_id") != clientID {
			return "", invalidClient("client_id", "unknown client_id")
		}
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return "", invalidClient("certificate", "the client presented no certificate")
		}
		if cn := r.TLS.PeerCertificates[0].Subject.CommonName; cn != clientID {
			return "", invalidClient("subject", fmt.Sprintf("the client certificate's subject is %q, want %q", cn, clientID))
		}
		return clientID, nil
	}
}

// checkAssertion verifies a client assertion (RFC 7523 section 3): signed
// by the client's key, issued by and for the client, for the issuer, not
// expired, and with a jti not seen before.
func (a *authServer) checkAssertion(raw string) *refusal {
	var c jwt.RegisteredClaims
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	tok, err := parser.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return &a.client.key.PublicKey, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalidClient("signature", "the client assertion's signature does not verify with the client's key")
	case err != nil:
		return invalidClient("malformed", "the client assertion is not a JWT signed with ES256")
	}
	if kid, ok := tok.Header["kid"]; ok && kid != a.client.keyID {
		return invalidClient("kid", fmt.Sprintf("the client assertion names key %v, want %s", kid, a.client.keyID))
	}
	now := a.now()
	switch {
	case c.Issuer != clientID:
		return invalidClient("iss", fmt.Sprintf("the client assertion's iss is %q, want the client's ID", c.Issuer))
	case c.Subject != clientID:
		return invalidClient("sub", fmt.Sprintf("the client assertion's sub is %q, want the client's ID", c.Subject))
	case !slices.Equal(c.Audience, jwt.ClaimStrings{a.issuer}):
		return invalidClient("aud", fmt.Sprintf("the client assertion's aud is %q, want the issuer %q alone", []string(c.Audience), a.issuer))
	case c.ExpiresAt == nil:
		return invalidClient("exp", "the client assertion has no exp")
	case !now.Before(c.ExpiresAt.Time):
		return invalidClient("exp", "the client assertion expired")
	case c.NotBefore != nil && now.Add(maxSkew).Before(c.NotBefore.Time):
		return invalidClient("nbf", "the client assertion is not valid yet")
	case c.IssuedAt != nil && now.Add(maxSkew).Before(c.IssuedAt.Time):
		return invalidClient("iat", "the client assertion was issued in the future")
	case c.ID == "":
		return invalidClient("jti", "the client assertion has no jti")
	}
	if !a.useOnce("client "+c.ID, c.ExpiresAt.Time) {
		return invalidClient("jti", "the client assertion's jti was used before")
	}
	return nil
}

// invalidClient is the answer to a client that failed to authenticate
// (RFC 6749 section 5.2): 401, with a Basic challenge.
func invalidClient(check, msg string) *refusal {
	return &refusal{status: http.StatusUnauthorized, code: "invalid_client", check: check, msg: msg,
		header: http.Header{"Www-Authenticate": {`Basic realm="securehttptest"`}}}
}
