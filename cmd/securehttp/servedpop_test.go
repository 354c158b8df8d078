package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp"
)

// proofKey is a DPoP key of a test, with its public JWK and thumbprint
// computed as RFC 7638 says, independently of the code under test.
type proofKey struct {
	key    any // the private key
	method jwt.SigningMethod
	jwk    map[string]any
	jkt    string
}

func newProofKey(t *testing.T, kind string) proofKey {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	thumb := func(canonical string) string {
		sum := sha256.Sum256([]byte(canonical))
		return b64(sum[:])
	}
	switch kind {
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := k.PublicKey.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		x, y := b64(pt[1:33]), b64(pt[33:])
		return proofKey{k, jwt.SigningMethodES256, map[string]any{"kty": "EC", "crv": "P-256", "x": x, "y": y},
			thumb(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`)}
	case "EdDSA":
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		x := b64(pub)
		return proofKey{priv, jwt.SigningMethodEdDSA, map[string]any{"kty": "OKP", "crv": "Ed25519", "x": x},
			thumb(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`)}
	case "PS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		n, e := b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes())
		return proofKey{k, jwt.SigningMethodPS256, map[string]any{"kty": "RSA", "n": n, "e": e},
			thumb(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`)}
	}
	t.Fatalf("no key kind %q", kind)
	return proofKey{}
}

// proof signs a DPoP proof with k; edit changes its header and claims
// before signing.
func (k proofKey) proof(t *testing.T, htm, htu, token string, edit func(h, c map[string]any)) string {
	t.Helper()
	c := jwt.MapClaims{"jti": randomJTI(t), "htm": htm, "htu": htu, "iat": time.Now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		c["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	tok := jwt.NewWithClaims(k.method, c)
	tok.Header["typ"] = "dpop+jwt"
	tok.Header["jwk"] = maps.Clone(k.jwk)
	if edit != nil {
		edit(tok.Header, c)
	}
	s, err := tok.SignedString(k.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomJTI(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestDPoPChecker: the demo's proof checker accepts the proofs RFC 9449
// describes, with ES256, EdDSA and PS256 keys, and returns the key's
// thumbprint; it refuses a proof for another method, URL or token, an old
// or future one, a replayed one, one whose header is not a DPoP proof's,
// and one signed by a key other than its jwk.
func TestDPoPChecker(t *testing.T) {
	t.Parallel()
	const htu = "https://127.0.0.1:8443/v1/dpop"
	const token = "the-access-token"
	check := func(c *dpopChecker, proofs []string, method, target string) (string, error) {
		r := httptest.NewRequest(method, target, nil)
		r.Header["Dpop"] = proofs
		return c.check(r, htu, token)
	}
	for _, kind := range []string{"ES256", "EdDSA", "PS256"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			k := newProofKey(t, kind)
			jkt, err := check(newDPoPChecker(), []string{k.proof(t, "GET", htu, token, nil)}, "GET", "/v1/dpop")
			if err != nil || jkt != k.jkt {
				t.Errorf("got %q, %v; want %q", jkt, err, k.jkt)
			}
		})
	}

	k := newProofKey(t, "ES256")
	other := newProofKey(t, "ES256")
	replayed := k.proof(t, "GET", htu, token, nil)
	c := newDPoPChecker()
	if _, err := check(c, []string{replayed}, "GET", "/v1/dpop"); err != nil {
		t.Fatalf("first use of a proof: %v", err)
	}
	refused := []struct {
		name   string
		proofs []string
	}{
		{"no proof", nil},
		{"two proofs", []string{k.proof(t, "GET", htu, token, nil), k.proof(t, "GET", htu, token, nil)}},
		{"replayed jti", []string{replayed}},
		{"other method", []string{k.proof(t, "POST", htu, token, nil)}},
		{"other URL", []string{k.proof(t, "GET", "https://127.0.0.1:8443/v1/me", token, nil)}},
		{"other port", []string{k.proof(t, "GET", "https://127.0.0.1:9443/v1/dpop", token, nil)}},
		{"other token", []string{k.proof(t, "GET", htu, "another-token", nil)}},
		{"no ath", []string{k.proof(t, "GET", htu, "", nil)}},
		{"iat 5 minutes ago", []string{k.proof(t, "GET", htu, token, func(_, c map[string]any) { c["iat"] = time.Now().Add(-5 * time.Minute).Unix() })}},
		{"iat 5 minutes ahead", []string{k.proof(t, "GET", htu, token, func(_, c map[string]any) { c["iat"] = time.Now().Add(5 * time.Minute).Unix() })}},
		{"no jti", []string{k.proof(t, "GET", htu, token, func(_, c map[string]any) { delete(c, "jti") })}},
		{"typ JWT", []string{k.proof(t, "GET", htu, token, func(h, _ map[string]any) { h["typ"] = "JWT" })}},
		{"no jwk", []string{k.proof(t, "GET", htu, token, func(h, _ map[string]any) { delete(h, "jwk") })}},
		{"another key's jwk", []string{k.proof(t, "GET", htu, token, func(h, _ map[string]any) { h["jwk"] = other.jwk })}},
		{"jwk with a private part", []string{k.proof(t, "GET", htu, token, func(h, _ map[string]any) {
			j := maps.Clone(k.jwk)
			j["d"] = "AAAA"
			h["jwk"] = j
		})}},
		{"HS256", []string{func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"jti": randomJTI(t), "htm": "GET", "htu": htu, "iat": time.Now().Unix()})
			tok.Header["typ"] = "dpop+jwt"
			tok.Header["jwk"] = map[string]any{"kty": "oct", "k": "AAAA"}
			s, _ := tok.SignedString([]byte("key"))
			return s
		}()}},
	}
	for _, tt := range refused {
		if jkt, err := check(c, tt.proofs, "GET", "/v1/dpop"); err == nil {
			t.Errorf("%s: got %q and no error, want the proof refused", tt.name, jkt)
		}
	}
}

// TestDemoServeDPoPAPI: /v1/dpop answers a DPoP-bound token with a proof
// of its key, through the library's client, and refuses a bearer token, a
// token bound to another key and a request without a token, with a DPoP
// challenge.
func TestDemoServeDPoPAPI(t *testing.T) {
	t.Parallel()
	s := startServed(t)
	client, err := securehttp.NewClient(securehttp.Config{
		RootCAs: servedTLS(t, s).RootCAs,
		Bearer: &securehttp.Bearer{
			Hosts:             []string{strings.TrimPrefix(s.base, "https://")},
			DPoP:              &securehttp.DPoP{},
			ClientCredentials: &securehttp.ClientCredentials{Issuer: s.base, ClientID: serveClientID, ClientSecret: s.secret},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(s.base + "/v1/dpop")
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Sub, JTI, JKT string }
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || got.Sub != "demo-user" || got.JKT == "" {
		t.Errorf("got %s and %+v (%v), want 200 with the subject and the key's thumbprint", resp.Status, got, err)
	}

	// Tokens minted directly: one bound to k, one bound to nothing.
	k := newProofKey(t, "ES256")
	bound, _, err := s.tokens.mint(time.Now(), grant{jkt: k.jkt})
	if err != nil {
		t.Fatal(err)
	}
	bearer, _, err := s.tokens.mint(time.Now(), grant{})
	if err != nil {
		t.Fatal(err)
	}
	other := newProofKey(t, "ES256")
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: servedTLS(t, s)}}
	defer plain.CloseIdleConnections()
	htu := s.base + "/v1/dpop"
	port := s.base[strings.LastIndexByte(s.base, ':')+1:]
	for _, tt := range []struct {
		name       string
		host       string // the Host header, when not the URL's
		auth       string
		proof      string
		wantStatus int
	}{
		{"bound token, its key's proof", "", "DPoP " + bound, k.proof(t, "GET", htu, bound, nil), http.StatusOK},
		{"proof for another of the server's names", "localhost:" + port, "DPoP " + bound,
			k.proof(t, "GET", "https://localhost:"+port+"/v1/dpop", bound, nil), http.StatusOK},
		{"proof for another server, with its Host", "api.example.test", "DPoP " + bound,
			k.proof(t, "GET", "https://api.example.test/v1/dpop", bound, nil), http.StatusUnauthorized},
		{"bound token, another key's proof", "", "DPoP " + bound, other.proof(t, "GET", htu, bound, nil), http.StatusUnauthorized},
		{"bound token without a proof", "", "DPoP " + bound, "", http.StatusUnauthorized},
		{"bound token as a bearer token", "", "Bearer " + bound, "", http.StatusUnauthorized},
		{"bearer token", "", "Bearer " + bearer, "", http.StatusUnauthorized},
		{"unbound token with the DPoP scheme", "", "DPoP " + bearer, k.proof(t, "GET", htu, bearer, nil), http.StatusUnauthorized},
		{"no token", "", "", "", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(http.MethodGet, htu, nil)
		if tt.host != "" {
			req.Host = tt.host
		}
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		if tt.proof != "" {
			req.Header.Set("DPoP", tt.proof)
		}
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.wantStatus {
			t.Errorf("%s: got %s, want %d", tt.name, resp.Status, tt.wantStatus)
		}
		if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(ch, "DPoP ") {
			t.Errorf("%s: got WWW-Authenticate %q, want a DPoP challenge", tt.name, ch)
		}
	}
}
