package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestDemoServeMetadata: demo --serve publishes RFC 8414 metadata for its
// issuer, its base URL, naming its token endpoint and what it supports.
func TestDemoServeMetadata(t *testing.T) {
	t.Parallel()
	s := startServed(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: servedTLS(t, s)}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(s.base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		Issuer        string   `json:"issuer"`
		TokenEndpoint string   `json:"token_endpoint"`
		Grants        []string `json:"grant_types_supported"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
		DPoPAlgs      []string `json:"dpop_signing_alg_values_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("got %s (%v), want 200 and a JSON document", resp.Status, err)
	}
	if md.Issuer != s.base || md.TokenEndpoint != s.base+"/token" {
		t.Errorf("got issuer %q and token endpoint %q, want %q and %q", md.Issuer, md.TokenEndpoint, s.base, s.base+"/token")
	}
	if !slices.Contains(md.Grants, "client_credentials") || !slices.Contains(md.AuthMethods, "client_secret_basic") ||
		!slices.Contains(md.AuthMethods, "private_key_jwt") || !slices.Contains(md.DPoPAlgs, "ES256") {
		t.Errorf("got %+v, want client_credentials, client_secret_basic, private_key_jwt and ES256 for DPoP", md)
	}
}

// TestDemoServeTokenEndpoint: the token endpoint authenticates the client
// by its secret (client_secret_basic) or by an assertion signed with its
// key (private_key_jwt: issuer, subject, audience, expiry, signature and a
// jti used once checked), and with a valid DPoP proof issues a token bound
// to the proof's key.
func TestDemoServeTokenEndpoint(t *testing.T) {
	t.Parallel()
	s := startServed(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: servedTLS(t, s)}}
	defer client.CloseIdleConnections()
	tokenURL := s.base + "/token"
	clientKey := readPKCS8(t, s.keyFile)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	assertion := func(key crypto.Signer, edit func(jwt.MapClaims)) string {
		now := time.Now()
		c := jwt.MapClaims{"iss": serveClientID, "sub": serveClientID, "aud": s.base, "iat": now.Unix(),
			"exp": now.Add(time.Minute).Unix(), "jti": randomJTI(t)}
		if edit != nil {
			edit(c)
		}
		a, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	withAssertion := func(a string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {serveClientID},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	}
	replayed := assertion(clientKey, nil)
	dpopKey := newProofKey(t, "ES256")
	form := url.Values{"grant_type": {"client_credentials"}}
	tests := []struct {
		name       string
		form       url.Values
		secret     string // client_secret_basic when not empty
		dpop       string
		wantStatus int
		wantType   string // token_type, or the error code
	}{
		{"secret", form, s.secret, "", http.StatusOK, "Bearer"},
		{"wrong secret", form, "wrong", "", http.StatusUnauthorized, "invalid_client"},
		{"no authentication", form, "", "", http.StatusUnauthorized, "invalid_client"},
		{"other grant", url.Values{"grant_type": {"password"}}, s.secret, "", http.StatusBadRequest, "unsupported_grant_type"},
		{"assertion for the issuer", withAssertion(replayed), "", "", http.StatusOK, "Bearer"},
		{"assertion replayed", withAssertion(replayed), "", "", http.StatusUnauthorized, "invalid_client"},
		{"assertion for the token endpoint", withAssertion(assertion(clientKey, func(c jwt.MapClaims) { c["aud"] = tokenURL })), "", "", http.StatusOK, "Bearer"},
		{"assertion for another audience", withAssertion(assertion(clientKey, func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.test" })), "", "", http.StatusUnauthorized, "invalid_client"},
		{"assertion expired", withAssertion(assertion(clientKey, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), "", "", http.StatusUnauthorized, "invalid_client"},
		{"assertion for an hour", withAssertion(assertion(clientKey, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(time.Hour).Unix() })), "", "", http.StatusUnauthorized, "invalid_client"},
		{"assertion of another client", withAssertion(assertion(clientKey, func(c jwt.MapClaims) { c["iss"], c["sub"] = "other", "other" })), "", "", http.StatusUnauthorized, "invalid_client"},
		{"assertion without jti", withAssertion(assertion(clientKey, func(c jwt.MapClaims) { delete(c, "jti") })), "", "", http.StatusUnauthorized, "invalid_client"},
		{"assertion signed by another key", withAssertion(assertion(otherKey, nil)), "", "", http.StatusUnauthorized, "invalid_client"},
		{"secret and DPoP proof", form, s.secret, dpopKey.proof(t, "POST", tokenURL, "", nil), http.StatusOK, "DPoP"},
		{"DPoP proof for another URL", form, s.secret, dpopKey.proof(t, "POST", s.base+"/v1/me", "", nil), http.StatusBadRequest, "invalid_dpop_proof"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(tt.form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tt.secret != "" {
			req.SetBasicAuth(serveClientID, tt.secret)
		}
		if tt.dpop != "" {
			req.Header.Set("DPoP", tt.dpop)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			Error       string `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		got := body.TokenType
		if resp.StatusCode != http.StatusOK {
			got = body.Error
		}
		if resp.StatusCode != tt.wantStatus || err != nil || got != tt.wantType {
			t.Errorf("%s: got %s and %q (%v), want %d and %q", tt.name, resp.Status, got, err, tt.wantStatus, tt.wantType)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			continue
		}
		claims, err := s.tokens.verify(body.AccessToken)
		if err != nil {
			t.Errorf("%s: the token does not verify: %v", tt.name, err)
			continue
		}
		var jkt string
		if claims.Cnf != nil {
			jkt = claims.Cnf.JKT
		}
		if want := map[bool]string{true: dpopKey.jkt, false: ""}[tt.dpop != ""]; jkt != want {
			t.Errorf("%s: got a token bound to %q, want %q", tt.name, jkt, want)
		}
	}
}

// readPKCS8 reads the PKCS #8 private key of a PEM file.
func readPKCS8(t *testing.T, path string) crypto.Signer {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return key.(crypto.Signer)
}
