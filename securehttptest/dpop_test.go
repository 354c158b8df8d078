package securehttptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp"
)

// jwkOf returns the public JWK of key, as a proof's header carries it.
func jwkOf(t *testing.T, key crypto.Signer) map[string]any {
	t.Helper()
	raw, err := publicJWK(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// proofFor returns a proof for a request of method to target, signed by
// key, with edits to its header and claims.
func proofFor(t *testing.T, key crypto.Signer, method, target string, now time.Time, edit func(header map[string]any, claims jwt.MapClaims)) string {
	t.Helper()
	alg := jwt.SigningMethod(jwt.SigningMethodES256)
	switch key.(type) {
	case ed25519.PrivateKey:
		alg = jwt.SigningMethodEdDSA
	case *rsa.PrivateKey:
		alg = jwt.SigningMethodPS256
	}
	header := map[string]any{"typ": "dpop+jwt", "jwk": jwkOf(t, key)}
	claims := jwt.MapClaims{"jti": randomID(), "htm": method, "htu": target, "iat": now.Unix()}
	if edit != nil {
		edit(header, claims)
	}
	return signJWT(t, alg, key, header, claims)
}

// TestProofKeyThumbprints: the server accepts proofs signed with each key
// type that securehttp's DPoP takes, and binds the token to the thumbprint
// that securehttp computes for the key.
func TestProofKeyThumbprints(t *testing.T) {
	t.Parallel()
	a := NewAuthServer(t).a
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []crypto.Signer{ec, ed, rsaKey} {
		r := tokenRequest(a, url.Values{"grant_type": {"client_credentials"}})
		r.SetBasicAuth(clientID, a.client.secret)
		r.Header.Set("DPoP", proofFor(t, key, http.MethodPost, a.tokenURL, time.Now(), nil))
		body, ref := a.tokenResponse(r)
		if ref != nil {
			t.Errorf("%T: got %v, want a token", key, ref)
			continue
		}
		want, err := (&securehttp.DPoP{Key: key}).Thumbprint()
		if err != nil {
			t.Fatal(err)
		}
		c, ref := a.parseToken(body["access_token"].(string))
		if ref != nil || c.Cnf.JKT != want || body["token_type"] != "DPoP" {
			t.Errorf("%T: got a %v token bound to %q (%v), want a DPoP token bound to %q", key, body["token_type"], c.Cnf.JKT, ref, want)
		}
	}
}

// TestTokenEndpointChecksProof: the token endpoint refuses, as
// invalid_dpop_proof, a proof wrong in any respect of RFC 9449 section
// 4.3, and, with DPoPNonce, asks for its nonce.
func TestTokenEndpointChecksProof(t *testing.T) {
	t.Parallel()
	as := NewAuthServer(t, DPoPNonce())
	a := as.a
	now := time.Now()
	a.now = fixedClock(now)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	proof := func(edit func(map[string]any, jwt.MapClaims)) string {
		return proofFor(t, key, http.MethodPost, a.tokenURL, now, func(h map[string]any, c jwt.MapClaims) {
			c["nonce"] = a.nonce
			if edit != nil {
				edit(h, c)
			}
		})
	}
	replayed := proof(nil)
	tests := []struct {
		name   string
		proofs []string
		want   string
	}{
		{"right", []string{replayed}, ""},
		{"replayed", []string{replayed}, "jti"},
		{"htu with a query", []string{proof(func(_ map[string]any, c jwt.MapClaims) { c["htu"] = a.tokenURL + "?x=1" })}, ""},
		{"two proofs", []string{proof(nil), proof(nil)}, "header"},
		{"typ JWT", []string{proof(func(h map[string]any, _ jwt.MapClaims) { h["typ"] = "JWT" })}, "typ"},
		{"no jwk", []string{proof(func(h map[string]any, _ jwt.MapClaims) { h["jwk"] = nil })}, "jwk"},
		{"a private jwk", []string{proof(func(h map[string]any, _ jwt.MapClaims) { h["jwk"].(map[string]any)["d"] = "AAAA" })}, "jwk"},
		{"another curve's jwk", []string{proof(func(h map[string]any, _ jwt.MapClaims) { h["jwk"].(map[string]any)["crv"] = "P-384" })}, "jwk"},
		{"a weak RSA key", []string{proofFor(t, weak, http.MethodPost, a.tokenURL, now, func(_ map[string]any, c jwt.MapClaims) { c["nonce"] = a.nonce })}, "jwk"},
		{"the jwk of another key", []string{proof(func(h map[string]any, _ jwt.MapClaims) { h["jwk"] = jwkOf(t, other) })}, "signature"},
		{"alg none", []string{func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"jti": randomID(), "htm": "POST", "htu": a.tokenURL, "iat": now.Unix(), "nonce": a.nonce})
			tok.Header["typ"], tok.Header["jwk"] = "dpop+jwt", jwkOf(t, key)
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}()}, "signature"},
		{"not a JWT", []string{"proof"}, "malformed"},
		{"no jti", []string{proof(func(_ map[string]any, c jwt.MapClaims) { delete(c, "jti") })}, "jti"},
		{"htm GET", []string{proof(func(_ map[string]any, c jwt.MapClaims) { c["htm"] = "GET" })}, "htm"},
		{"htu of another path", []string{proof(func(_ map[string]any, c jwt.MapClaims) { c["htu"] = a.issuer + "/other" })}, "htu"},
		{"htu of another host", []string{proof(func(_ map[string]any, c jwt.MapClaims) { c["htu"] = "https://other.test/token" })}, "htu"},
		{"no iat", []string{proof(func(_ map[string]any, c jwt.MapClaims) { delete(c, "iat") })}, "iat"},
		{"an old iat", []string{proof(func(_ map[string]any, c jwt.MapClaims) { c["iat"] = now.Add(-maxProofAge - time.Second).Unix() })}, "iat"},
		{"an iat ahead", []string{proof(func(_ map[string]any, c jwt.MapClaims) { c["iat"] = now.Add(maxSkew + time.Second).Unix() })}, "iat"},
		{"no nonce", []string{proof(func(_ map[string]any, c jwt.MapClaims) { delete(c, "nonce") })}, "nonce"},
		{"another nonce", []string{proof(func(_ map[string]any, c jwt.MapClaims) { c["nonce"] = "other" })}, "nonce"},
	}
	for _, tt := range tests {
		r := tokenRequest(a, url.Values{"grant_type": {"client_credentials"}})
		r.SetBasicAuth(clientID, a.client.secret)
		r.Header["Dpop"] = tt.proofs
		_, ref := a.tokenResponse(r)
		if got := check(ref); got != tt.want {
			t.Errorf("%s: got refusal %q (%v), want %q", tt.name, got, ref, tt.want)
			continue
		}
		switch {
		case tt.want == "nonce" && (ref.code != "use_dpop_nonce" || ref.header.Get("DPoP-Nonce") != a.nonce):
			t.Errorf("%s: got %s with nonce %q, want use_dpop_nonce with the server's", tt.name, ref.code, ref.header.Get("DPoP-Nonce"))
		case tt.want != "" && tt.want != "nonce" && (ref.code != "invalid_dpop_proof" || ref.status != http.StatusBadRequest):
			t.Errorf("%s: got %d %s, want 400 invalid_dpop_proof", tt.name, ref.status, ref.code)
		}
	}
}
