package securehttptest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/securehttptest"
)

// tokenTest is an API server, an authorization server, and the Config of a
// client of both.
type tokenTest struct {
	api  *securehttptest.Server
	auth *securehttptest.AuthServer
	cfg  securehttp.Config
}

// newTokenTest makes an API server and an authorization server with opts,
// and the Config of a client that gets its tokens from the one for the
// other, retrying at once.
func newTokenTest(t *testing.T, opts ...securehttptest.Option) *tokenTest {
	t.Helper()
	tt := &tokenTest{api: securehttptest.NewServer(t, nil), auth: securehttptest.NewAuthServer(t, opts...)}
	tt.cfg = tt.api.Config()
	tt.cfg.Retry = securehttp.RetryPolicy{MinWait: time.Millisecond, MaxWait: time.Millisecond}
	tt.cfg.Bearer = &securehttp.Bearer{ClientCredentials: tt.auth.ClientCredentials(), Hosts: []string{tt.api.Host}}
	return tt
}

// call calls the API with a client made from tt.cfg.
func (tt *tokenTest) call(t *testing.T) error {
	t.Helper()
	_, err := get(newClient(t, tt.cfg), tt.api.URL+"/v1/things")
	return err
}

// claims calls the API and returns the claims of the token it received.
func (tt *tokenTest) claims(t *testing.T) *securehttptest.Claims {
	t.Helper()
	if err := tt.call(t); err != nil {
		t.Fatalf("got %v, want 200", err)
	}
	reqs := tt.api.Requests()
	claims, err := tt.auth.VerifyRequest(reqs[len(reqs)-1])
	if err != nil {
		t.Fatalf("VerifyRequest: got %v, want the token's claims", err)
	}
	return claims
}

// loadClientCert loads c from files, as production code does, and returns
// its GetClientCertificate.
func loadClientCert(t *testing.T, c *securehttptest.Cert) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	t.Helper()
	certFile, keyFile := c.Files(t)
	cc, err := securehttp.LoadClientCert(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadClientCert: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc.GetClientCertificate
}

// tokenRequests returns the requests auth's token endpoint received.
func tokenRequests(auth *securehttptest.AuthServer) []*http.Request {
	var out []*http.Request
	for _, r := range auth.Requests() {
		if r.URL.Path == "/token" {
			out = append(out, r)
		}
	}
	return out
}

// TestClientAuthMethods: the client of ClientCredentials obtains a token
// with each method, sends its credentials as the method says, and the API
// verifies the token.
func TestClientAuthMethods(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"client_secret_basic", "private_key_jwt", "tls_client_auth"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			tt := newTokenTest(t, securehttptest.ClientAuth(method))
			if method == "tls_client_auth" {
				tt.cfg.GetClientCertificate = loadClientCert(t, tt.auth.ClientCert(t))
			}
			claims := tt.claims(t)
			if claims.Subject != tt.auth.ClientCredentials().ClientID || claims.ClientID != claims.Subject || claims.Issuer != tt.auth.Issuer {
				t.Errorf("got sub %q, client_id %q, iss %q; want the client's ID and the issuer", claims.Subject, claims.ClientID, claims.Issuer)
			}
			tokenReqs := tokenRequests(tt.auth)
			if len(tokenReqs) != 1 {
				t.Fatalf("got %d token requests, want 1", len(tokenReqs))
			}
			r := tokenReqs[0]
			_, _, basic := r.BasicAuth()
			if err := r.ParseForm(); err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{"Basic": basic, "an assertion": r.PostForm.Has("client_assertion"), "a certificate": len(r.TLS.PeerCertificates) > 0}
			want := map[string]bool{"Basic": method == "client_secret_basic", "an assertion": method == "private_key_jwt", "a certificate": method == "tls_client_auth"}
			for k := range want {
				if got[k] != want[k] {
					t.Errorf("token request with %s: got %t, want %t", k, got[k], want[k])
				}
			}
			if bound := claims.Cnf.X5TS256 != ""; bound != (method == "tls_client_auth") {
				t.Errorf("got a token bound to a certificate: %t, want %t", bound, method == "tls_client_auth")
			}
			if c := tt.auth.Counts(); c != (securehttptest.Counts{Metadata: 1, TokenRequests: 1, Tokens: 1}) {
				t.Errorf("got counts %+v, want one metadata document, one token request, one token", c)
			}
		})
	}
}

// TestClientAuthMismatch: a client that authenticates otherwise than the
// server's ClientAuth says is refused, as a registered client would be.
func TestClientAuthMismatch(t *testing.T) {
	t.Parallel()
	tt := newTokenTest(t, securehttptest.ClientAuth("private_key_jwt"))
	tt.cfg.Bearer.ClientCredentials = &securehttp.ClientCredentials{Issuer: tt.auth.Issuer, ClientID: "test-client", ClientSecret: "a guess"}
	err := tt.call(t)
	oe, ok := errors.AsType[*securehttp.OAuthError](err)
	if !errors.Is(err, securehttp.ErrNoToken) || !ok || oe.Code != "invalid_client" || oe.StatusCode != http.StatusUnauthorized {
		t.Errorf("got %v, want ErrNoToken with a 401 invalid_client", err)
	}
}

// TestDPoPTokens: with Bearer.DPoP and DPoPNonce, the client answers the
// nonce challenge, gets a token bound to its key, and proves it to the
// API, which VerifyRequest checks.
func TestDPoPTokens(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tt := newTokenTest(t, securehttptest.DPoPNonce())
	tt.cfg.Bearer.DPoP = &securehttp.DPoP{Key: key}
	claims := tt.claims(t)
	jkt, err := tt.cfg.Bearer.DPoP.Thumbprint()
	if err != nil {
		t.Fatal(err)
	}
	if claims.Cnf.JKT != jkt {
		t.Errorf("got cnf.jkt %q, want the key's thumbprint %q", claims.Cnf.JKT, jkt)
	}
	if got := tt.api.Requests()[0].Header.Get("Authorization"); len(got) < 5 || got[:5] != "DPoP " {
		t.Errorf("got Authorization %.10q…, want the DPoP scheme", got)
	}
	if c := tt.auth.Counts(); c.TokenRequests != 2 || c.Tokens != 1 {
		t.Errorf("got %d token requests and %d tokens, want 2 (a nonce challenge, then the token) and 1", c.TokenRequests, c.Tokens)
	}
}

// TestTokenLifetime: tokens live as long as TokenLifetime says.
func TestTokenLifetime(t *testing.T) {
	t.Parallel()
	tt := newTokenTest(t, securehttptest.TokenLifetime(90*time.Second))
	claims := tt.claims(t)
	if got := claims.ExpiresAt.Sub(claims.IssuedAt.Time); got != 90*time.Second {
		t.Errorf("got a lifetime of %v, want 1m30s", got)
	}
}

// TestTokenEndpointFailures: each failure option of the authorization
// server makes the client return the error it returns for such a server in
// production, and the API receives nothing.
func TestTokenEndpointFailures(t *testing.T) {
	t.Parallel()
	oauthError := func(status int, code string) func(error) bool {
		return func(err error) bool {
			oe, ok := errors.AsType[*securehttp.OAuthError](err)
			return ok && oe.StatusCode == status && oe.Code == code
		}
	}
	tests := []struct {
		name          string
		opts          []securehttptest.Option
		check         func(error) bool
		tokenRequests int // -1: more than one, the client retried
	}{
		{"invalid_client", []securehttptest.Option{securehttptest.TokenError(http.StatusUnauthorized, "invalid_client")}, oauthError(http.StatusUnauthorized, "invalid_client"), 1},
		{"invalid_scope", []securehttptest.Option{securehttptest.TokenError(http.StatusBadRequest, "invalid_scope")}, oauthError(http.StatusBadRequest, "invalid_scope"), 1},
		{"5xx, retried", []securehttptest.Option{securehttptest.TokenError(http.StatusServiceUnavailable, "temporarily_unavailable")}, func(err error) bool {
			return securehttp.ErrorClass(err) == "token_unavailable"
		}, -1},
		{"Slow", []securehttptest.Option{securehttptest.Slow(time.Minute)}, is(context.DeadlineExceeded), 1},
		{"WrongIssuer", []securehttptest.Option{securehttptest.WrongIssuer()}, is(securehttp.ErrIssuerMismatch), 0},
		{"an expired certificate", []securehttptest.Option{securehttptest.Expired()}, invalidCert(x509.Expired), 0},
		{"a mis-issued certificate", []securehttptest.Option{securehttptest.MisIssued()}, is(securehttp.ErrPinMismatch), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tt := newTokenTest(t, tc.opts...)
			tt.cfg.Bearer.RefreshTimeout = 200 * time.Millisecond
			err := tt.call(t)
			if !errors.Is(err, securehttp.ErrNoToken) || !tc.check(err) {
				t.Errorf("got %v, want ErrNoToken for %s", err, tc.name)
			}
			if got := tt.auth.Counts().TokenRequests; tc.tokenRequests >= 0 && got != tc.tokenRequests || tc.tokenRequests < 0 && got < 2 {
				t.Errorf("got %d token requests, want %d (-1: more than one)", got, tc.tokenRequests)
			}
			if n := len(tt.api.Requests()); n != 0 {
				t.Errorf("the API received %d requests, want 0", n)
			}
		})
	}
}

// TestKeyfunc: Bearer.Keyfunc verifies the server's tokens with Keyfunc,
// and refuses them with another server's.
func TestKeyfunc(t *testing.T) {
	t.Parallel()
	tt := newTokenTest(t)
	tt.cfg.Bearer.Keyfunc = tt.auth.Keyfunc
	tt.claims(t)

	other := securehttptest.NewAuthServer(t)
	tt = newTokenTest(t)
	tt.cfg.Bearer.Keyfunc = other.Keyfunc
	if err := tt.call(t); !errors.Is(err, securehttp.ErrNoToken) {
		t.Errorf("with another server's Keyfunc: got %v, want ErrNoToken", err)
	}
}

// TestMetadataAndJWKS: the metadata names the issuer, the endpoints and
// the grants, and the JWK set holds the key that verifies the server's
// tokens.
func TestMetadataAndJWKS(t *testing.T) {
	t.Parallel()
	tt := newTokenTest(t)
	client := newClient(t, tt.cfg)
	var md struct {
		Issuer        string   `json:"issuer"`
		TokenEndpoint string   `json:"token_endpoint"`
		JWKSURI       string   `json:"jwks_uri"`
		GrantTypes    []string `json:"grant_types_supported"`
	}
	getJSON(t, client, tt.auth.Issuer+"/.well-known/oauth-authorization-server", &md)
	if md.Issuer != tt.auth.Issuer || md.TokenEndpoint != tt.auth.Issuer+"/token" || md.JWKSURI != tt.auth.Issuer+"/jwks" {
		t.Errorf("got metadata %+v, want the issuer and its endpoints", md)
	}
	wantGrants := []string{"client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:token-exchange"}
	if !slices.Equal(md.GrantTypes, wantGrants) {
		t.Errorf("got grant_types_supported %q, want %q", md.GrantTypes, wantGrants)
	}
	var set struct {
		Keys []struct {
			Kty, Crv, X, Y, Kid, Alg string
		} `json:"keys"`
	}
	getJSON(t, client, md.JWKSURI, &set)
	if len(set.Keys) != 1 || set.Keys[0].Kty != "EC" || set.Keys[0].Alg != "ES256" || set.Keys[0].Kid == "" {
		t.Fatalf("got JWK set %+v, want one ES256 key with a kid", set)
	}
	tt.claims(t)
	authz := tt.api.Requests()[0].Header.Get("Authorization")
	tok, _, err := jwt.NewParser().ParseUnverified(authz[len("Bearer "):], jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header["kid"] != set.Keys[0].Kid || tok.Header["typ"] != "at+jwt" {
		t.Errorf("got token header %v, want kid %q and typ at+jwt", tok.Header, set.Keys[0].Kid)
	}
	if c := tt.auth.Counts(); c.Metadata != 2 || c.JWKS != 1 {
		t.Errorf("got counts %+v, want 2 metadata documents and 1 JWK set", c)
	}
}

func getJSON(t *testing.T, client *http.Client, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
