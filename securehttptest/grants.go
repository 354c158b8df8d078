package securehttptest

// The grants that trade a JWT from a trusted issuer for an access token:
// the JWT bearer grant (RFC 7523 section 2.1) and token exchange (RFC
// 8693).

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp"
)

// Grant types and token types (RFC 8693 section 3).
const (
	grantClientCredentials = "client_credentials"
	grantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	grantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"

	tokenTypeAccess  = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeJWT     = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"
)

// JWTBearer returns a new JWTBearer for the server, whose grant is
// assertion, and whose Client is the client of ClientCredentials (nil with
// ClientAuth "none"). The grant does without client authentication, and
// checks it when sent; a faulty assertion is invalid_grant.
func (a *AuthServer) JWTBearer(assertion securehttp.Assertion) *securehttp.JWTBearer {
	return &securehttp.JWTBearer{Issuer: a.Issuer, Assertion: assertion, Client: a.grantClient()}
}

// TokenExchange returns a new TokenExchange for the server, which trades
// subjectToken for an access token, and whose Client is the client of
// ClientCredentials (nil with ClientAuth "none"), which must authenticate.
// The server takes subject and actor tokens of the types jwt, id_token and
// access_token, issues an access token or a JWT (token_type N_A, unless
// bound to a DPoP key), with the actor's sub in act and the audience and
// resource parameters in aud; a faulty token is invalid_request (RFC 8693
// section 2.2.2).
func (a *AuthServer) TokenExchange(subjectToken securehttp.Assertion) *securehttp.TokenExchange {
	return &securehttp.TokenExchange{Issuer: a.Issuer, SubjectToken: subjectToken, Client: a.grantClient()}
}

// grantClient is the client of ClientCredentials as a grant's Client
// takes it: without the grant's Issuer.
func (a *AuthServer) grantClient() *securehttp.ClientCredentials {
	if a.a.set.method == methodNone {
		return nil
	}
	cc := a.ClientCredentials()
	cc.Issuer = ""
	return cc
}

// grant is what a token request's grant establishes: whom the token is
// for, and what its answer says.
type grant struct {
	subject  string   // sub
	clientID string   // client_id; "" when no client identified itself
	actor    string   // act's sub, from a token exchange's actor token
	audience []string // aud, besides the resource indicators
	issued   string   // issued_token_type, for a token exchange
}

// jwtBearer checks the JWT bearer grant's assertion (RFC 7523 section 3):
// a JWT from a trusted issuer, for this server, with a jti used once.
// Whatever is wrong with it is invalid_grant (section 3.1).
func (a *authServer) jwtBearer(form url.Values, clientID string) (grant, *refusal) {
	raw := form.Get("assertion")
	if raw == "" {
		return grant{}, invalidRequest("assertion", "the JWT bearer grant needs an assertion")
	}
	c, ref := a.checkTrusted(raw, "the assertion", "invalid_grant")
	if ref != nil {
		return grant{}, ref
	}
	if c.ID == "" {
		return grant{}, invalidGrant("jti", "the assertion has no jti")
	}
	if !a.useOnce("grant "+c.Issuer+" "+c.ID, c.ExpiresAt.Time) {
		return grant{}, invalidGrant("jti", "the assertion's jti was used before")
	}
	return grant{subject: c.Subject, clientID: clientID}, nil
}

// tokenExchange checks a token exchange request (RFC 8693 section 2.1):
// a subject token, and an actor token if any, each a JWT from a trusted
// issuer for this server and of a JWT's type; a token type the server
// issues; audiences. Whatever is wrong with it is invalid_request
// (section 2.2.2).
func (a *authServer) tokenExchange(form url.Values, clientID string) (grant, *refusal) {
	g := grant{clientID: clientID}
	subject, ref := a.exchanged(form, "subject")
	if ref != nil {
		return grant{}, ref
	}
	if subject == nil {
		return grant{}, invalidRequest("subject_token", "a token exchange needs a subject_token and its subject_token_type")
	}
	g.subject = subject.Subject
	actorClaims, ref := a.exchanged(form, "actor")
	if ref != nil {
		return grant{}, ref
	}
	if actorClaims != nil {
		g.actor = actorClaims.Subject
	}
	switch requested := form.Get("requested_token_type"); requested {
	case "", tokenTypeAccess:
		g.issued = tokenTypeAccess
	case tokenTypeJWT:
		g.issued = tokenTypeJWT
	default:
		return grant{}, invalidRequest("requested_token_type", "requested_token_type %q is not one the server issues: an access token or a JWT", requested)
	}
	for _, aud := range form["audience"] {
		if aud == "" {
			return grant{}, invalidRequest("audience", "an audience is empty")
		}
		g.audience = append(g.audience, aud)
	}
	return g, nil
}

// exchanged checks the token of a token exchange that role ("subject" or
// "actor") names, and its type, and returns its claims, or nil when the
// request has neither.
func (a *authServer) exchanged(form url.Values, role string) (*jwt.RegisteredClaims, *refusal) {
	param, typeParam := role+"_token", role+"_token_type"
	raw, typ := form.Get(param), form.Get(typeParam)
	switch {
	case raw == "" && typ == "":
		return nil, nil
	case raw == "" || typ == "":
		return nil, invalidRequest(typeParam, "%s and %s go together (RFC 8693 section 2.1)", param, typeParam)
	case typ != tokenTypeJWT && typ != tokenTypeIDToken && typ != tokenTypeAccess:
		return nil, invalidRequest(typeParam, "%s %q is not a type of JWT the server takes: jwt, id_token or access_token", typeParam, typ)
	}
	return a.checkTrusted(raw, "the "+role+" token", "invalid_request")
}

// checkTrusted verifies a JWT from a trusted issuer: signed by a key that
// TrustIssuer trusts for its iss, with a sub, for this server (aud names
// its issuer, as rfc7523bis wants, or its token endpoint, as RFC 7523
// allows), unexpired, and neither valid nor issued in the future. what
// names the JWT, and code is the error of a refusal.
func (a *authServer) checkTrusted(raw, what, code string) (*jwt.RegisteredClaims, *refusal) {
	bad := func(check, format string, args ...any) (*jwt.RegisteredClaims, *refusal) {
		return nil, &refusal{status: http.StatusBadRequest, code: code, check: check, msg: what + ": " + fmt.Sprintf(format, args...)}
	}
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &c); err != nil {
		return bad("malformed", "not a JWT")
	}
	keys := a.set.trusted[c.Issuer]
	if len(keys) == 0 {
		return bad("iss", "its issuer %q is not trusted (TrustIssuer)", c.Issuer)
	}
	set := jwt.VerificationKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k)
	}
	parser := jwt.NewParser(jwt.WithValidMethods(proofAlgs()), jwt.WithoutClaimsValidation())
	_, err := parser.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return set, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return bad("signature", "its signature does not verify with a key trusted for %q", c.Issuer)
	case err != nil:
		return bad("malformed", "not a JWT signed with an asymmetric algorithm")
	}
	now := a.now()
	switch {
	case c.Subject == "":
		return bad("sub", "it has no sub")
	case !slices.Contains(c.Audience, a.issuer) && !slices.Contains(c.Audience, a.tokenURL):
		return bad("aud", "its aud is %q, want the issuer %q or the token endpoint", []string(c.Audience), a.issuer)
	case c.ExpiresAt == nil:
		return bad("exp", "it has no exp")
	case !now.Before(c.ExpiresAt.Time):
		return bad("exp", "it expired at %v", c.ExpiresAt.Time)
	case c.NotBefore != nil && now.Add(maxSkew).Before(c.NotBefore.Time):
		return bad("nbf", "it is not valid before %v", c.NotBefore.Time)
	case c.IssuedAt != nil && now.Add(maxSkew).Before(c.IssuedAt.Time):
		return bad("iat", "it was issued in the future")
	}
	return &c, nil
}

func invalidGrant(check, msg string) *refusal {
	return &refusal{status: http.StatusBadRequest, code: "invalid_grant", check: check, msg: msg}
}

// useOnce records a JWT's key (its jti, and whatever scopes it) until exp,
// and reports whether it was not recorded yet.
func (a *authServer) useOnce(key string, exp time.Time) bool {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, e := range a.assertions {
		if now.After(e) {
			delete(a.assertions, k) // it would be refused as expired anyway
		}
	}
	if _, seen := a.assertions[key]; seen {
		return false
	}
	a.assertions[key] = exp
	return true
}

// checkPublicKey accepts the public keys of the algorithms the server
// verifies.
func checkPublicKey(key crypto.PublicKey) error {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k == nil {
			return errors.New("nil key")
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return errors.New("an ECDSA key not on P-256, P-384 or P-521")
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return errors.New("an Ed25519 key of the wrong size")
		}
		return nil
	case *rsa.PublicKey:
		if k == nil || k.N == nil || k.N.BitLen() < minRSABits {
			return fmt.Errorf("an RSA key under %d bits", minRSABits)
		}
		return nil
	case nil:
		return errors.New("nil key")
	}
	return fmt.Errorf("a %T, not an ECDSA, Ed25519 or RSA public key", key)
}
