package securehttp

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/securehttp/securehttp/internal/testutil"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
)

// peerAPI is a resource server that takes the JWT access tokens of one
// authorization server, verified against its JWKS, and records their
// claims.
type peerAPI struct {
	url     string
	issuer  string
	keys    map[string]crypto.PublicKey
	mu      sync.Mutex
	claims  []jwt.MapClaims
	tokens  map[string]bool
	refused atomic.Int64
	lastErr atomic.Value
}

func newPeerAPI(t *testing.T, jwksURI, issuer string) *peerAPI {
	t.Helper()
	api := &peerAPI{issuer: issuer, keys: map[string]crypto.PublicKey{}, tokens: map[string]bool{}}
	resp, err := (&http.Client{Transport: newTestTransport(t, testConfig(t)), Timeout: 10 * time.Second}).Get(jwksURI)
	if err != nil {
		t.Fatalf("fetching the JWKS: %v", err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("decoding the JWKS: %v", err)
	}
	for _, k := range set.Keys {
		if k["use"] == "" || k["use"] == "sig" {
			api.keys[k["kid"]] = jwkToKey(t, k)
		}
	}
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		claims, err := api.verify(tok)
		if err != nil {
			api.refused.Add(1)
			api.lastErr.Store(err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		api.mu.Lock()
		if !api.tokens[tok] {
			api.tokens[tok] = true
			api.claims = append(api.claims, claims)
		}
		api.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	api.url = testutil.HostURL(srv, hostAPI, "/v1")
	return api
}

func (api *peerAPI) verify(tok string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k, ok := api.keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("no key %q", kid)
	}, jwt.WithValidMethods([]string{"RS256", "PS256", "ES256"}), jwt.WithExpirationRequired())
	if err != nil {
		return nil, err
	}
	if iss, _ := claims.GetIssuer(); strings.TrimSuffix(iss, "/") != api.issuer {
		return nil, fmt.Errorf("issuer %q, want %q", iss, api.issuer)
	}
	return claims, nil
}

// seen returns the claims of the distinct tokens the API took.
func (api *peerAPI) seen() []jwt.MapClaims {
	api.mu.Lock()
	defer api.mu.Unlock()
	return append([]jwt.MapClaims(nil), api.claims...)
}

// callFor sends requests to the API with cfg for d, one every 50 ms, and
// fails the test at the first that does not get a 200.
func (api *peerAPI) callFor(t *testing.T, cfg Config, d time.Duration) {
	t.Helper()
	c := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}
	for deadline := time.Now().Add(d); ; {
		resp, err := c.Get(api.url)
		if err != nil {
			t.Fatalf("got %v, want a 200", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got status %d (%v), want 200", resp.StatusCode, api.lastErr.Load())
		}
		if !time.Now().Before(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ecJWK is key's public JWK, with kid.
func ecJWK(key *ecdsa.PrivateKey, kid string) map[string]any {
	return map[string]any{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(key.X.FillBytes(make([]byte, 32))),
		"y": base64.RawURLEncoding.EncodeToString(key.Y.FillBytes(make([]byte, 32)))}
}

func startHydra(t *testing.T, ttl time.Duration) *peers.HydraPeer {
	t.Helper()
	p := sharedPKI(t)
	return peers.StartHydra(t, peers.HydraConfig{CertPEM: testpki.ChainPEM(p.leaf, p.inter), KeyPEM: p.leaf.KeyPEM(), AccessTokenTTL: ttl})
}

// Ory Hydra takes a SignedAssertion as the JWT bearer grant, from an
// issuer it trusts for one subject, one key and one scope, and refuses a
// jti it has seen: tokens of 4 s refreshed ahead for 10 s all verify at
// the API, each with the assertion's subject. The client authenticates
// with a secret, or with a client assertion of its own; a key, a subject
// or a scope that Hydra does not trust is a typed *OAuthError.
func TestHydraJWTBearerGrant(t *testing.T) {
	t.Parallel()
	hydra := startHydra(t, 4*time.Second)
	const (
		issuer  = "https://workloads.test"
		subject = "svc-7"
		secret  = "a secret of the jwt-bearer client"
	)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	clientKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	hydra.Admin(t, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": "jwt-client", "client_secret": secret, "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{grantTypeJWTBearer}, "scope": "read write"}, http.StatusCreated, nil)
	hydra.Admin(t, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": "jwt-client-pk", "token_endpoint_auth_method": "private_key_jwt",
		"token_endpoint_auth_signing_alg": "ES256", "jwks": map[string]any{"keys": []any{ecJWK(clientKey, "client-1")}},
		"grant_types": []string{grantTypeJWTBearer}, "scope": "read write"}, http.StatusCreated, nil)
	hydra.Admin(t, http.MethodPost, "/admin/trust/grants/jwt-bearer/issuers", map[string]any{
		"issuer": issuer, "subject": subject, "scope": []string{"read"}, "jwk": ecJWK(key, "grant-1"),
		"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, http.StatusCreated, nil)
	grant := func(c AssertionClaims, k *ecdsa.PrivateKey) Assertion {
		if c.Issuer == "" {
			c.Issuer = issuer
		}
		if c.Subject == "" {
			c.Subject = subject
		}
		c.KeyID = "grant-1"
		return SignedAssertion(k, c)
	}
	for _, tt := range []struct {
		name   string
		client *ClientCredentials
	}{
		{"client_secret_basic", &ClientCredentials{ClientID: "jwt-client", ClientSecret: secret}},
		{"client assertion", &ClientCredentials{ClientID: "jwt-client-pk", Assertion: SignedAssertion(clientKey,
			AssertionClaims{Issuer: "jwt-client-pk", Subject: "jwt-client-pk", KeyID: "client-1"})}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newPeerAPI(t, hydra.JWKSURI, hydra.Issuer)
			var tokenRequests atomic.Int64
			cfg := testConfig(t)
			cfg.Hooks = &Hooks{TokenRequest: func(context.Context, TokenEvent) { tokenRequests.Add(1) }}
			cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, RefreshTimeout: 10 * time.Second, JWTBearer: &JWTBearer{
				Issuer: hydra.Issuer, Assertion: grant(AssertionClaims{}, key), Scopes: []string{"read"}, Client: tt.client}}
			api.callFor(t, cfg, 10*time.Second)
			seen := api.seen()
			// 10 s of 4 s tokens refreshed ahead: at least 3 tokens, each
			// from a new assertion, since Hydra refuses a jti it has seen.
			if n := tokenRequests.Load(); len(seen) < 3 || int64(len(seen)) != n {
				t.Fatalf("got %d distinct tokens from %d token requests, want at least 3, one per request", len(seen), n)
			}
			for _, c := range seen {
				if c["sub"] != subject {
					t.Fatalf("got a token for %v, want one for %s", c["sub"], subject)
				}
			}
		})
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tt := range []struct {
		name   string
		a      Assertion
		scopes []string
		want   string
	}{
		{"untrusted key", grant(AssertionClaims{}, otherKey), []string{"read"}, "invalid_grant"},
		{"untrusted subject", grant(AssertionClaims{Subject: "svc-8"}, key), []string{"read"}, "invalid_grant"},
		{"untrusted issuer", grant(AssertionClaims{Issuer: "https://elsewhere.test"}, key), []string{"read"}, "invalid_grant"},
		{"audience not the token endpoint", grant(AssertionClaims{Audience: hydra.Issuer + "/other"}, key), []string{"read"}, "invalid_grant"},
		{"scope not granted", grant(AssertionClaims{}, key), []string{"write"}, "invalid_scope"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, RefreshTimeout: 10 * time.Second, JWTBearer: &JWTBearer{
				Issuer: hydra.Issuer, Assertion: tt.a, Scopes: tt.scopes,
				Client: &ClientCredentials{ClientID: "jwt-client", ClientSecret: secret}}}
			_, err := (&http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}).Get("https://" + hostAPI + "/never")
			oe, ok := errors.AsType[*OAuthError](err)
			if !ok || oe.Code != tt.want || !errors.Is(err, ErrNoToken) {
				t.Fatalf("got %v, want an *OAuthError %s", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatal("the error shows the client secret")
			}
		})
	}
}

// Hydra authenticates a client_credentials client by a client assertion
// made elsewhere (ClientCredentials.Assertion), with the token endpoint as
// audience, once per jti.
func TestHydraClientCredentialsWithAssertion(t *testing.T) {
	t.Parallel()
	hydra := startHydra(t, 3*time.Second)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	hydra.Admin(t, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": "cc-assertion", "token_endpoint_auth_method": "private_key_jwt",
		"token_endpoint_auth_signing_alg": "ES256", "jwks": map[string]any{"keys": []any{ecJWK(key, "k1")}},
		"grant_types": []string{"client_credentials"}, "scope": "read"}, http.StatusCreated, nil)
	api := newPeerAPI(t, hydra.JWKSURI, hydra.Issuer)
	var tokenRequests atomic.Int64
	cfg := testConfig(t)
	cfg.Hooks = &Hooks{TokenRequest: func(context.Context, TokenEvent) { tokenRequests.Add(1) }}
	cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, RefreshTimeout: 10 * time.Second, ClientCredentials: &ClientCredentials{
		Issuer: hydra.Issuer, ClientID: "cc-assertion", Scopes: []string{"read"},
		Assertion: SignedAssertion(key, AssertionClaims{Issuer: "cc-assertion", Subject: "cc-assertion", KeyID: "k1"})}}
	api.callFor(t, cfg, 7*time.Second)
	seen := api.seen()
	if n := tokenRequests.Load(); len(seen) < 2 || int64(len(seen)) != n {
		t.Fatalf("got %d distinct tokens from %d token requests, want at least 2, one per request", len(seen), n)
	}
	for _, c := range seen {
		if c["client_id"] != "cc-assertion" {
			t.Fatalf("got a token for client %v, want cc-assertion", c["client_id"])
		}
	}
}

// zitadel/oidc's provider takes a SignedAssertion as its JWT profile grant
// (RFC 7523 section 2.1: iss = sub, the issuer as audience), verified
// against the service account's key, without client authentication.
func TestZitadelJWTProfileGrant(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks, _ := json.Marshal(map[string]any{"keys": []any{ecJWK(key, "sa-1")}})
	z := startZitadel(t, nil, map[string]json.RawMessage{"svc-1": jwks})
	api := newPeerAPI(t, z.JWKSURI, z.Issuer)
	cfg := testConfig(t)
	cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, RefreshTimeout: 10 * time.Second, JWTBearer: &JWTBearer{
		Issuer: z.Issuer, Scopes: []string{"read"},
		Assertion: SignedAssertion(key, AssertionClaims{Issuer: "svc-1", Subject: "svc-1", Audience: z.Issuer, KeyID: "sa-1"})}}
	api.callFor(t, cfg, 0)
	if seen := api.seen(); len(seen) != 1 || seen[0]["sub"] != "svc-1" {
		t.Fatalf("got tokens %v, want one for svc-1", seen)
	}
	// Another key for the same service account is refused.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg.Bearer.JWTBearer.Assertion = SignedAssertion(other, AssertionClaims{Issuer: "svc-1", Subject: "svc-1", Audience: z.Issuer, KeyID: "sa-1"})
	_, err := (&http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}).Get(api.url)
	if oe, ok := errors.AsType[*OAuthError](err); !ok || oe.StatusCode != http.StatusBadRequest {
		t.Fatalf("got %v, want an *OAuthError", err)
	}
}
