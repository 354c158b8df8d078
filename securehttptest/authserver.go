package securehttptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp"
)

// AuthServer is an OAuth 2.0 authorization server for tests: a Server that
// serves its metadata (RFC 8414), its JWK set and a token endpoint for the
// client credentials grant, the JWT bearer grant and token exchange, which
// checks what it receives as a strict server does, and issues JWT access
// tokens (RFC 9068) that VerifyRequest verifies. It knows one client, the
// one of ClientCredentials. An AuthServer is safe for concurrent use.
//
// The token endpoint authenticates the client with the one method of
// ClientAuth, and checks a client assertion's signature, iss, sub, aud (the
// issuer), exp and jti (used once); it checks a DPoP proof's signature,
// typ, htm, htu, iat, jti (used once) and, with DPoPNonce, its nonce, and
// binds the token to the proof's key (cnf.jkt); it binds the token to a
// client certificate presented (cnf x5t#S256, RFC 8705). A request it
// refuses gets the OAuth error a production server would send.
//
// The JWT bearer grant (RFC 7523) and token exchange (RFC 8693) take JWTs
// from the issuers of TrustIssuer, and check their signature, sub, aud
// (the issuer or the token endpoint), exp, nbf and iat, and an
// assertion's jti (used once); the token is for the JWT's sub.
type AuthServer struct {
	*Server

	// Issuer is the server's issuer identifier, its URL, as
	// ClientCredentials.Issuer takes it.
	Issuer string

	a *authServer
}

// Paths of the server's endpoints.
const (
	metadataPath = "/.well-known/oauth-authorization-server"
	jwksPath     = "/jwks"
	tokenPath    = "/token"
)

// Client authentication methods (RFC 7591 token_endpoint_auth_method).
const (
	methodBasic         = "client_secret_basic"
	methodPrivateKeyJWT = "private_key_jwt"
	methodTLS           = "tls_client_auth"
	methodNone          = "none"
)

// defaultLifetime is the lifetime of a token without TokenLifetime.
const defaultLifetime = time.Hour

// clientID is the ID of the client the server knows.
const clientID = "test-client"

// authServer is the running state behind an AuthServer.
type authServer struct {
	set      authSettings
	issuer   string
	tokenURL string
	ca       *CA
	now      func() time.Time
	nonce    string // the DPoP nonce required, or ""

	key  *ecdsa.PrivateKey // signs tokens
	kid  string
	jwks []byte

	client *client

	mu         sync.Mutex
	assertions map[string]time.Time // jti of a client assertion → its exp
	proofs     map[string]proofSeen // jti of a DPoP proof → when and where it was seen

	metadata, jwksServed, tokenRequests, tokens atomic.Int64
}

// client is the client the server knows. It is held by pointer, so that
// printing an AuthServer, whatever the verb, shows no more than its
// address.
type client struct {
	secret string
	key    *ecdsa.PrivateKey // signs its client assertions
	keyID  string
}

// proofSeen is a DPoP proof accepted once.
type proofSeen struct {
	iat   time.Time
	stamp *stamp // the request that carried it, when a server of the kit received it
}

// NewAuthServer starts an authorization server. It accepts its own
// options (TokenLifetime, ClientAuth, TrustIssuer, DPoPNonce, TokenError,
// Slow, WrongIssuer), and a server's (Hosts, RequireClientCert, WithCA and those
// that describe its certificate), whose failures make the client's token
// requests fail as its resource requests would.
func NewAuthServer(t testing.TB, opts ...Option) *AuthServer {
	t.Helper()
	s := apply(t, toAuth, "NewAuthServer", opts)
	a, err := newAuthServer(s.auth)
	if err != nil {
		t.Fatalf("securehttptest: NewAuthServer: %v", err)
	}
	srv := startServer(t, "NewAuthServer", s, func(srv *Server) http.Handler {
		a.issuer, a.tokenURL, a.ca = srv.URL, srv.URL+tokenPath, srv.s.ca
		mux := http.NewServeMux()
		mux.HandleFunc(metadataPath, a.serveMetadata)
		mux.HandleFunc(jwksPath, a.serveJWKS)
		mux.HandleFunc(tokenPath, a.serveToken)
		return mux
	})
	return &AuthServer{Server: srv, Issuer: srv.URL, a: a}
}

func newAuthServer(set authSettings) (*authServer, error) {
	if set.lifetime == 0 {
		set.lifetime = defaultLifetime
	}
	if set.method == "" {
		set.method = methodBasic
	}
	a := &authServer{
		set:        set,
		now:        time.Now,
		client:     &client{secret: randomID()},
		assertions: map[string]time.Time{},
		proofs:     map[string]proofSeen{},
	}
	if set.nonce {
		a.nonce = randomID()
	}
	var err error
	if a.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if a.client.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	jwk, err := publicJWK(&a.key.PublicKey)
	if err != nil {
		return nil, err
	}
	a.kid = thumbprint(jwk)
	clientJWK, err := publicJWK(&a.client.key.PublicKey)
	if err != nil {
		return nil, err
	}
	a.client.keyID = thumbprint(clientJWK)
	var key map[string]any
	if err := json.Unmarshal(jwk, &key); err != nil {
		return nil, err
	}
	key["kid"], key["alg"], key["use"] = a.kid, "ES256", "sig"
	a.jwks, err = json.Marshal(map[string]any{"keys": []any{key}})
	return a, err
}

// randomID returns 128 random bits, base64url-encoded.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ClientCredentials returns a new ClientCredentials of the client the
// server knows, which authenticates as ClientAuth says: with a client
// secret (client_secret_basic), a key (private_key_jwt), or neither
// (tls_client_auth, with a certificate from ClientCert; none, for the
// grants of JWTBearer and TokenExchange only).
func (a *AuthServer) ClientCredentials() *securehttp.ClientCredentials {
	cc := &securehttp.ClientCredentials{Issuer: a.Issuer, ClientID: clientID}
	switch a.a.set.method {
	case methodBasic:
		cc.ClientSecret = a.a.client.secret
	case methodPrivateKeyJWT:
		cc.Key, cc.KeyID = a.a.client.key, a.a.client.keyID
	}
	return cc
}

// ClientCert issues a new certificate, with a new key, for the client of
// ClientCredentials, from the server's CA: the certificate of
// tls_client_auth, which the server accepts when its subject is the
// client's ID, as a tls_client_auth_subject_dn registration says (RFC 8705
// section 2.1.2).
func (a *AuthServer) ClientCert(t testing.TB) *Cert {
	t.Helper()
	c, err := a.a.ca.issue(clientID, nil, certSettings{})
	if err != nil {
		t.Fatalf("securehttptest: AuthServer.ClientCert: %v", err)
	}
	return c
}

// Keyfunc returns the server's public key for a token the server signed,
// for Bearer.Keyfunc or a resource server's JWT library.
func (a *AuthServer) Keyfunc(tok *jwt.Token) (any, error) {
	if tok.Method.Alg() != jwt.SigningMethodES256.Alg() {
		return nil, fmt.Errorf("securehttptest: token signed with %s, want ES256", tok.Method.Alg())
	}
	if kid, ok := tok.Header["kid"]; ok && kid != a.a.kid {
		return nil, fmt.Errorf("securehttptest: token signed by key %v, want %s", kid, a.a.kid)
	}
	return &a.a.key.PublicKey, nil
}

// Counts are the requests an AuthServer received.
type Counts struct {
	Metadata      int // metadata documents served
	JWKS          int // JWK sets served
	TokenRequests int // requests to the token endpoint, refused ones included
	Tokens        int // tokens issued
}

// Counts returns the requests the server received so far.
func (a *AuthServer) Counts() Counts {
	return Counts{
		Metadata:      int(a.a.metadata.Load()),
		JWKS:          int(a.a.jwksServed.Load()),
		TokenRequests: int(a.a.tokenRequests.Load()),
		Tokens:        int(a.a.tokens.Load()),
	}
}

// serveMetadata serves the RFC 8414 metadata document.
func (a *authServer) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a.metadata.Add(1)
	issuer := a.issuer
	if a.set.wrongIssuer {
		issuer += "/"
	}
	md := map[string]any{
		"issuer":                                     issuer,
		"token_endpoint":                             a.tokenURL,
		"jwks_uri":                                   a.issuer + jwksPath,
		"grant_types_supported":                      []string{grantClientCredentials, grantJWTBearer, grantTokenExchange},
		"token_endpoint_auth_methods_supported":      []string{a.set.method},
		"dpop_signing_alg_values_supported":          proofAlgs(),
		"tls_client_certificate_bound_access_tokens": true,
	}
	if a.set.method == methodPrivateKeyJWT {
		md["token_endpoint_auth_signing_alg_values_supported"] = []string{"ES256"}
	}
	writeJSON(w, http.StatusOK, md)
}

// serveJWKS serves the JWK set of the key that signs tokens.
func (a *authServer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a.jwksServed.Add(1)
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(a.jwks)
}

// serveToken is the token endpoint (RFC 6749 section 3.2).
func (a *authServer) serveToken(w http.ResponseWriter, r *http.Request) {
	a.tokenRequests.Add(1)
	if d := a.set.slow; d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			return // the client gave up, or the server is closing
		}
	}
	if e := a.set.tokenError; e != nil {
		writeRefusal(w, &refusal{status: e.status, code: e.code, check: "TokenError", msg: "TokenError answers every token request with this error"})
		return
	}
	body, ref := a.tokenResponse(r)
	if ref != nil {
		writeRefusal(w, ref)
		return
	}
	if a.nonce != "" {
		w.Header().Set("DPoP-Nonce", a.nonce)
	}
	a.tokens.Add(1)
	writeJSON(w, http.StatusOK, body)
}

// tokenResponse checks a token request and returns the token response, or
// why the request is refused.
func (a *authServer) tokenResponse(r *http.Request) (map[string]any, *refusal) {
	if r.Method != http.MethodPost {
		return nil, &refusal{status: http.StatusMethodNotAllowed, code: "invalid_request", check: "method", msg: "the token endpoint takes POST, got " + r.Method}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, invalidRequest("content_type", "a token request is a form (application/x-www-form-urlencoded), got %q", mt)
	}
	if err := r.ParseForm(); err != nil {
		return nil, invalidRequest("form", "the form does not parse: %v", err)
	}
	form := r.PostForm
	for name, values := range form {
		// RFC 6749 section 3.2: no parameter more than once, but the
		// resource indicators of RFC 8707 and the audiences of RFC 8693.
		if len(values) > 1 && name != "resource" && name != "audience" {
			return nil, invalidRequest("repeated", "parameter %q is repeated", name)
		}
	}
	g, ref := a.grant(r, form)
	if ref != nil {
		return nil, ref
	}
	scope := form.Get("scope")
	if ref := checkScope(scope); ref != nil {
		return nil, ref
	}
	resources := form["resource"]
	for _, res := range resources {
		if u, err := url.Parse(res); err != nil || !u.IsAbs() || u.Fragment != "" {
			return nil, &refusal{status: http.StatusBadRequest, code: "invalid_target", check: "resource", msg: fmt.Sprintf("resource %q is not an absolute URI without a fragment (RFC 8707)", res)}
		}
	}

	var jkt, x5t string
	tokenType := "Bearer"
	if len(r.Header.Values("DPoP")) > 0 {
		if jkt, ref = a.checkProof(r, "", true); ref != nil {
			return nil, ref
		}
		tokenType = "DPoP"
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		x5t = certThumbprint(r.TLS.PeerCertificates[0].Raw)
	}
	if tokenType == "Bearer" && g.issued != "" && g.issued != tokenTypeAccess {
		// RFC 8693 section 2.2.1: a token that is not an access token has
		// no token type, unless it is bound to a key.
		tokenType = "N_A"
	}
	tok, err := a.issue(g, scope, slices.Concat(g.audience, resources), jkt, x5t)
	if err != nil {
		return nil, &refusal{status: http.StatusInternalServerError, code: "server_error", check: "sign", msg: "signing the token: " + err.Error()}
	}
	body := map[string]any{
		"access_token": tok,
		"token_type":   tokenType,
		"expires_in":   int(a.set.lifetime / time.Second),
	}
	if g.issued != "" {
		body["issued_token_type"] = g.issued
	}
	if scope != "" {
		body["scope"] = scope
	}
	return body, nil
}

// grant authenticates the client as the request's grant requires, and
// checks the grant.
func (a *authServer) grant(r *http.Request, form url.Values) (grant, *refusal) {
	switch grantType := form.Get("grant_type"); grantType {
	case grantClientCredentials:
		id, ref := a.authenticate(r, form, false)
		if ref != nil {
			return grant{}, ref
		}
		if id == "" || a.set.method == methodNone {
			return grant{}, &refusal{status: http.StatusBadRequest, code: "unauthorized_client", check: "grant_type", msg: "a public client (none) may not use the client credentials grant"}
		}
		return grant{subject: id, clientID: id}, nil
	case grantJWTBearer:
		// RFC 7523 section 2.1: the client need not authenticate.
		id, ref := a.authenticate(r, form, true)
		if ref != nil {
			return grant{}, ref
		}
		return a.jwtBearer(form, id)
	case grantTokenExchange:
		id, ref := a.authenticate(r, form, a.set.method == methodNone)
		if ref != nil {
			return grant{}, ref
		}
		return a.tokenExchange(form, id)
	default:
		return grant{}, &refusal{status: http.StatusBadRequest, code: "unsupported_grant_type", check: "grant_type", msg: fmt.Sprintf("grant_type %q is not supported", grantType)}
	}
}

// checkScope checks a scope parameter (RFC 6749 section 3.3): scope tokens
// of printable ASCII but the space, double quote and backslash, separated
// by single spaces.
func checkScope(scope string) *refusal {
	if scope == "" {
		return nil
	}
	for _, tok := range strings.Split(scope, " ") {
		if tok == "" || strings.ContainsAny(tok, "\"\\") || strings.IndexFunc(tok, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
			return &refusal{status: http.StatusBadRequest, code: "invalid_scope", check: "scope", msg: fmt.Sprintf("scope %q is not scope tokens separated by single spaces", scope)}
		}
	}
	return nil
}

// issue signs an access token (RFC 9068) for what g established, bound to
// the DPoP key of thumbprint jkt and the certificate of thumbprint x5t when
// they are set.
func (a *authServer) issue(g grant, scope string, audience []string, jkt, x5t string) (string, error) {
	now := a.now()
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    a.issuer,
			Subject:   g.subject,
			Audience:  audience,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(a.set.lifetime)),
			ID:        randomID(),
		},
		ClientID: g.clientID,
		Scope:    scope,
	}
	c.Act.Subject = g.actor
	c.Cnf.JKT, c.Cnf.X5TS256 = jkt, x5t
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = a.kid
	return tok.SignedString(a.key)
}

// certThumbprint is a certificate's x5t#S256 (RFC 8705 section 3.1).
func certThumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// refusal is a request the server refuses: at the token endpoint, the
// OAuth error it answers; from VerifyRequest, the error returned.
type refusal struct {
	status int    // the HTTP status of the answer
	code   string // the OAuth error code
	check  string // the check that failed, for the package's tests
	msg    string
	header http.Header // fields to answer with, or nil
}

func (e *refusal) Error() string { return "securehttptest: " + e.msg }

func invalidRequest(check, format string, args ...any) *refusal {
	return &refusal{status: http.StatusBadRequest, code: "invalid_request", check: check, msg: fmt.Sprintf(format, args...)}
}

// writeRefusal answers with the error response of RFC 6749 section 5.2.
func writeRefusal(w http.ResponseWriter, e *refusal) {
	for name, values := range e.header {
		w.Header()[name] = values
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
