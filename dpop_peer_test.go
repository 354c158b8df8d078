package securehttp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// TestOIDCProviderDPoP obtains DPoP-bound tokens from oidc-provider with
// features.dPoP and server nonces required: the first token request gets
// 400 use_dpop_nonce and the client retries once with the nonce (and a new
// client assertion, since the provider accepts each jti once). The resource
// server verifies the provider's JWT access token against its JWKS, every
// proof with go-jose, the token's cnf.jkt against the proof key's
// thumbprint (and DPoP.Thumbprint when the key is the caller's), and asks
// for a nonce of its own first.
func TestOIDCProviderDPoP(t *testing.T) {
	t.Parallel()
	clientKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecdh, _ := clientKey.PublicKey.ECDH()
	pt := ecdh.Bytes()
	pubJWK := map[string]any{"kty": "EC", "crv": "P-256", "kid": "k1",
		"x": base64.RawURLEncoding.EncodeToString(pt[1:33]), "y": base64.RawURLEncoding.EncodeToString(pt[33:])}
	const secret = "dpop client secret"
	nonceSecret := make([]byte, 32)
	rand.Read(nonceSecret)
	pki := sharedPKI(t)
	p := peers.StartOIDC(t, peers.OIDCConfig{
		CertPEM:  testpki.ChainPEM(pki.leaf, pki.inter),
		KeyPEM:   pki.leaf.KeyPEM(),
		Resource: oidcResource,
		Clients: []map[string]any{
			oidcClientMeta("dpop-pkjwt", map[string]any{"token_endpoint_auth_method": "private_key_jwt",
				"token_endpoint_auth_signing_alg": "ES256", "jwks": map[string]any{"keys": []any{pubJWK}},
				"dpop_bound_access_tokens": true}),
			oidcClientMeta("dpop-basic", map[string]any{"token_endpoint_auth_method": "client_secret_basic",
				"client_secret": secret, "dpop_bound_access_tokens": true}),
		},
		DPoP:            true,
		DPoPNonceSecret: nonceSecret,
	})
	verifier := newJWKSVerifier(t, p)

	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tt := range []struct {
		name string
		cc   ClientCredentials
		key  crypto.Signer
	}{
		{"private_key_jwt, generated key", ClientCredentials{ClientID: "dpop-pkjwt", Key: clientKey, KeyID: "k1"}, nil},
		{"private_key_jwt, ES256", ClientCredentials{ClientID: "dpop-pkjwt", Key: clientKey, KeyID: "k1"}, p256},
		{"client_secret_basic, EdDSA", ClientCredentials{ClientID: "dpop-basic", ClientSecret: secret}, ed},
		{"client_secret_basic, PS256", ClientCredentials{ClientID: "dpop-basic", ClientSecret: secret}, rsa2048},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := &DPoP{Key: tt.key}
			want := ""
			if tt.key != nil {
				var err error
				if want, err = d.Thumbprint(); err != nil {
					t.Fatal(err)
				}
			}
			rsNonce := "rs-" + rand.Text()
			var (
				mu       sync.Mutex
				problems []string
				jkts     = map[string]bool{}
				nonceErr int
			)
			problem := func(s string) {
				mu.Lock()
				defer mu.Unlock()
				problems = append(problems, s)
			}
			api := testutil.StartServer(t, pki.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
				if scheme != "DPoP" {
					problem("scheme " + scheme)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				claims, err := verifier.verify(tok, time.Now())
				if err != nil {
					problem("access token: " + err.Error())
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				proof, err := verifyDPoPProof(r, tok, time.Now())
				if err != nil {
					problem("proof: " + err.Error())
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				cnf, _ := claims["cnf"].(map[string]any)
				if jkt, _ := cnf["jkt"].(string); jkt != proof.jkt || (want != "" && jkt != want) {
					problem("cnf.jkt " + jkt + " is not the proof key's thumbprint " + proof.jkt)
				}
				mu.Lock()
				jkts[proof.jkt] = true
				if proof.nonce != rsNonce {
					nonceErr++
				}
				mu.Unlock()
				w.Header().Set("DPoP-Nonce", rsNonce)
				if proof.nonce != rsNonce {
					w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				io.WriteString(w, "ok")
			}))
			cc := tt.cc
			cc.Issuer = p.Issuer
			cc.Resource = []string{oidcResource}
			cfg := testConfig(t)
			logger, logs := testutil.NewLogger()
			cfg.Logger = logger
			cfg.Bearer = &Bearer{ClientCredentials: &cc, Hosts: []string{hostAPI}, RefreshTimeout: 10 * time.Second, DPoP: d}
			c := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}
			for i := range 5 {
				resp, err := c.Get(testutil.HostURL(api, hostAPI, "/v1"))
				if err != nil {
					t.Fatalf("request %d: %v (provider log: %s)", i, err, p.Log())
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("request %d: got status %d, want 200 (problems: %q)", i, resp.StatusCode, problems)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(problems) > 0 {
				t.Fatalf("the resource server saw %d problems, want none: %q", len(problems), problems)
			}
			if len(jkts) != 1 || nonceErr != 1 {
				t.Fatalf("got proofs of %d keys with %d nonce errors, want 1 key and 1 nonce error", len(jkts), nonceErr)
			}
			// The token requests, in order: refused for want of a nonce, then
			// granted.
			statuses := regexp.MustCompile(`msg="securehttp: token request" url=\S+ status=(\d+)`).FindAllStringSubmatch(logs.String(), -1)
			var got []string
			for _, m := range statuses {
				got = append(got, m[1])
			}
			if strings.Join(got, ",") != "400,200" {
				t.Fatalf("got token request statuses %q, want [400 200] (use_dpop_nonce, then the token)", got)
			}
			if strings.Contains(logs.String(), rsNonce) {
				t.Fatal("the log shows a nonce")
			}
		})
	}
}
