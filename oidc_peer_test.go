package securehttp

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

const oidcResource = "https://api.test/"

// startOIDC runs oidc-provider on 127.0.0.1 with the shared test PKI's
// leaf, which is valid for 127.0.0.1, so that Config.RootCAs trusts it.
func startOIDC(t *testing.T, ttl time.Duration, clients ...map[string]any) *peers.OIDCPeer {
	t.Helper()
	p := sharedPKI(t)
	return peers.StartOIDC(t, peers.OIDCConfig{
		CertPEM:        testpki.ChainPEM(p.leaf, p.inter),
		KeyPEM:         p.leaf.KeyPEM(),
		Clients:        clients,
		AccessTokenTTL: ttl,
		Resource:       oidcResource,
	})
}

func oidcClientMeta(id string, extra map[string]any) map[string]any {
	c := map[string]any{"client_id": id, "grant_types": []string{"client_credentials"},
		"response_types": []string{}, "redirect_uris": []string{}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// jwksVerifier verifies access tokens against the provider's jwks_uri, as
// a resource server would.
type jwksVerifier struct {
	issuer string
	keys   map[string]crypto.PublicKey
}

func newJWKSVerifier(t *testing.T, p *peers.OIDCPeer) *jwksVerifier {
	t.Helper()
	tr := newTestTransport(t, testConfig(t))
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(p.JWKSURI)
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
	v := &jwksVerifier{issuer: p.Issuer, keys: map[string]crypto.PublicKey{}}
	for _, k := range set.Keys {
		v.keys[k["kid"]] = jwkToKey(t, k)
	}
	return v
}

func jwkToKey(t *testing.T, k map[string]string) crypto.PublicKey {
	t.Helper()
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("JWK member: %v", err)
		}
		return b
	}
	switch k["kty"] {
	case "RSA":
		return &rsa.PublicKey{N: new(big.Int).SetBytes(dec(k["n"])), E: int(new(big.Int).SetBytes(dec(k["e"])).Int64())}
	case "EC":
		curve := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[k["crv"]]
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append([]byte{4}, append(dec(k["x"]), dec(k["y"])...)...))
		if err != nil {
			t.Fatalf("EC JWK: %v", err)
		}
		return pub
	case "OKP":
		return ed25519.PublicKey(dec(k["x"]))
	}
	t.Fatalf("unexpected JWK kty %q", k["kty"])
	return nil
}

// verify checks the token's signature, issuer, audience and expiry at now.
func (v *jwksVerifier) verify(tok string, now time.Time) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k, ok := v.keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("no key %q", kid)
	}, jwt.WithValidMethods([]string{"RS256", "PS256", "ES256", "EdDSA"}), jwt.WithIssuer(v.issuer),
		jwt.WithAudience(oidcResource), jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { return now }))
	return claims, err
}

// TestOIDCProviderClientCredentials obtains tokens from oidc-provider, the
// certified reference implementation, with each client authentication
// method, and calls a resource server that verifies every access token
// against the provider's JWKS. Tokens live 5 s and traffic runs for 15 s:
// every token is refreshed ahead of its expiry and the resource server
// never sees an expired one.
func TestOIDCProviderClientCredentials(t *testing.T) {
	t.Parallel()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubJWK := map[string]any{"kty": "EC", "crv": "P-256", "kid": "k1",
		"x": base64.RawURLEncoding.EncodeToString(ecKey.X.FillBytes(make([]byte, 32))),
		"y": base64.RawURLEncoding.EncodeToString(ecKey.Y.FillBytes(make([]byte, 32)))}
	const secret = "oidc client secret: with spaces & symbols"
	p := startOIDC(t, 5*time.Second,
		oidcClientMeta("pkjwt-client", map[string]any{"token_endpoint_auth_method": "private_key_jwt",
			"token_endpoint_auth_signing_alg": "ES256", "jwks": map[string]any{"keys": []any{pubJWK}}}),
		oidcClientMeta("basic-client", map[string]any{"token_endpoint_auth_method": "client_secret_basic", "client_secret": secret}),
	)
	verifier := newJWKSVerifier(t, p)
	for _, tt := range []struct {
		name string
		cc   ClientCredentials
	}{
		{"private_key_jwt", ClientCredentials{ClientID: "pkjwt-client", Key: ecKey, KeyID: "k1"}},
		{"client_secret_basic", ClientCredentials{ClientID: "basic-client", ClientSecret: secret}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				mu       sync.Mutex
				seen     = map[string]bool{}
				ok, bad  atomic.Int64
				firstBad atomic.Value
			)
			api := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
				if _, err := verifier.verify(tok, time.Now()); err != nil {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, err.Error())
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				mu.Lock()
				seen[tok] = true
				mu.Unlock()
				ok.Add(1)
				io.WriteString(w, "ok")
			}))
			cc := tt.cc
			cc.Issuer = p.Issuer
			cc.Resource = []string{oidcResource}
			cfg := testConfig(t)
			logger, logs := testutil.NewLogger()
			cfg.Logger = logger
			cfg.Bearer = &Bearer{ClientCredentials: &cc, Hosts: []string{hostAPI}, RefreshTimeout: 10 * time.Second}
			c := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}
			deadline := time.Now().Add(15 * time.Second)
			for n := 0; time.Now().Before(deadline) && n < 1000; n++ {
				resp, err := c.Get(testutil.HostURL(api, hostAPI, "/v1"))
				if err != nil {
					t.Fatalf("request %d: %v", n, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("request %d: got status %d (%v), want 200", n, resp.StatusCode, firstBad.Load())
				}
				time.Sleep(50 * time.Millisecond)
			}
			if n := bad.Load(); n != 0 {
				t.Fatalf("the resource server refused %d requests (first: %v), want 0", n, firstBad.Load())
			}
			mu.Lock()
			distinct := len(seen)
			mu.Unlock()
			// 15 s of 5 s tokens refreshed ahead: at least 3 distinct tokens.
			if distinct < 3 {
				t.Fatalf("got %d distinct tokens over 15 s of 5 s tokens, want at least 3", distinct)
			}
			mu.Lock()
			for tok := range seen {
				for _, part := range strings.Split(tok, ".") {
					if len(part) > 16 && strings.Contains(logs.String(), part) {
						t.Fatalf("a token appears in the log")
					}
				}
			}
			mu.Unlock()
			if strings.Contains(logs.String(), secret) {
				t.Fatal("the client secret appears in the log")
			}
			t.Logf("%d requests, %d distinct tokens", ok.Load(), distinct)
		})
	}
	t.Run("wrong secret is a typed invalid_client", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		cfg.Bearer = &Bearer{ClientCredentials: &ClientCredentials{Issuer: p.Issuer, ClientID: "basic-client",
			ClientSecret: "not the secret", Resource: []string{oidcResource}}, Hosts: []string{hostAPI}}
		c := &http.Client{Transport: newTestTransport(t, cfg)}
		_, err := c.Get("https://" + hostAPI + ":1/never")
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Code != "invalid_client" {
			t.Fatalf("got error %v, want an *OAuthError invalid_client", err)
		}
		if strings.Contains(err.Error(), "not the secret") {
			t.Fatal("the error shows the secret")
		}
	})
}

// With a client certificate, token requests go to the authorization
// server's mtls_endpoint_aliases.token_endpoint (RFC 8705 section 5) when
// its metadata has one, and to token_endpoint otherwise; without a client
// certificate, always to token_endpoint. oidc-provider serves the alias on
// a listener of its own, the only one that asks for client certificates, so
// that tls_client_auth works there only.
func TestOIDCProviderMTLSEndpointAlias(t *testing.T) {
	t.Parallel()
	const secret = "alias test secret"
	start := func(aliases bool) *peers.OIDCPeer {
		p := sharedPKI(t)
		return peers.StartOIDC(t, peers.OIDCConfig{
			CertPEM:             testpki.ChainPEM(p.leaf, p.inter),
			KeyPEM:              p.leaf.KeyPEM(),
			Resource:            oidcResource,
			MTLS:                true,
			MTLSEndpointAliases: aliases,
			ClientCAPEM:         clientCA(t).CertPEM(),
			Clients: []map[string]any{
				oidcClientMeta("mtls-client", map[string]any{
					"token_endpoint_auth_method": "tls_client_auth",
					"tls_client_auth_subject_dn": "CN=" + clientSubject,
				}),
				oidcClientMeta("basic-client", map[string]any{
					"token_endpoint_auth_method": "client_secret_basic", "client_secret": secret,
				}),
			},
		})
	}
	plain, aliased := start(false), start(true)
	cert := testpki.TLSCertificate(newClientLeaf(t, testpki.Options{}))
	for _, tt := range []struct {
		name     string
		op       *peers.OIDCPeer
		cc       ClientCredentials
		withCert bool
		want     func(op *peers.OIDCPeer) string // the endpoint of the token requests, "" for none
		wantErr  string                          // the OAuth error code, "" for success
	}{
		{"no alias: tls_client_auth at token_endpoint", plain,
			ClientCredentials{ClientID: "mtls-client"}, true,
			func(op *peers.OIDCPeer) string { return op.TokenEndpoint }, ""},
		{"alias: tls_client_auth at the alias", aliased,
			ClientCredentials{ClientID: "mtls-client"}, true,
			func(op *peers.OIDCPeer) string { return op.MTLSTokenEndpoint }, ""},
		{"alias, client certificate and client secret: the alias", aliased,
			ClientCredentials{ClientID: "basic-client", ClientSecret: secret}, true,
			func(op *peers.OIDCPeer) string { return op.MTLSTokenEndpoint }, ""},
		{"alias, no client certificate: token_endpoint", aliased,
			ClientCredentials{ClientID: "basic-client", ClientSecret: secret}, false,
			func(op *peers.OIDCPeer) string { return op.TokenEndpoint }, ""},
		{"alias: tls_client_auth at token_endpoint fails", aliased,
			ClientCredentials{ClientID: "mtls-client", TokenURL: "set below"}, true,
			func(op *peers.OIDCPeer) string { return op.TokenEndpoint }, "invalid_client"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				mu        sync.Mutex
				endpoints []string
			)
			cc := tt.cc
			cc.Issuer, cc.Resource = tt.op.Issuer, []string{oidcResource}
			if cc.TokenURL != "" {
				cc.TokenURL = tt.op.TokenEndpoint
			}
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{ClientCredentials: &cc, Hosts: []string{hostAPI}, RefreshTimeout: 10 * time.Second}
			cfg.Hooks = &Hooks{TokenRequest: func(_ context.Context, e TokenEvent) {
				mu.Lock()
				defer mu.Unlock()
				endpoints = append(endpoints, e.URL)
			}}
			if tt.withCert {
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
			}
			verifier := newJWKSVerifier(t, tt.op)
			api := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, err := verifier.verify(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), time.Now()); err != nil {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				io.WriteString(w, "ok")
			}))
			c := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}
			resp, err := c.Get(testutil.HostURL(api, hostAPI, "/v1"))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want 200\n%s", err, tt.op.Log())
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("got status %d, want 200", resp.StatusCode)
				}
			} else if oe, ok := errors.AsType[*OAuthError](err); !ok || oe.Code != tt.wantErr {
				t.Fatalf("got error %v, want an *OAuthError %s", err, tt.wantErr)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := tt.want(tt.op); len(endpoints) != 1 || endpoints[0] != want {
				t.Fatalf("got token requests to %q, want one to %q", endpoints, want)
			}
		})
	}
}
