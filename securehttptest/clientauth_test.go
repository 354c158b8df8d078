package securehttptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestTokenEndpointChecksAssertion: the token endpoint accepts a client
// assertion that is right in every respect once, and refuses, as
// invalid_client, one that is wrong in any.
func TestTokenEndpointChecksAssertion(t *testing.T) {
	t.Parallel()
	as := NewAuthServer(t, ClientAuth("private_key_jwt"))
	a := as.a
	now := time.Now()
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": clientID, "sub": clientID, "aud": a.issuer, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": randomID()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	sign := func(edit func(jwt.MapClaims)) string {
		return signJWT(t, jwt.SigningMethodES256, a.client.key, map[string]any{"kid": a.client.keyID}, claims(edit))
	}
	replayed := sign(nil)
	form := func(assertion string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID},
			"client_assertion_type": {assertionType}, "client_assertion": {assertion}}
	}
	tests := []struct {
		name string
		form url.Values
		want string // the check that fails; "" for none
	}{
		{"right", form(replayed), ""},
		{"replayed", form(replayed), "jti"},
		{"signed by another key", form(signJWT(t, jwt.SigningMethodES256, other, nil, claims(nil))), "signature"},
		{"not a JWT", form("not-a-jwt"), "malformed"},
		{"another kid", form(signJWT(t, jwt.SigningMethodES256, a.client.key, map[string]any{"kid": "other"}, claims(nil))), "kid"},
		{"no kid", form(signJWT(t, jwt.SigningMethodES256, a.client.key, nil, claims(nil))), ""},
		{"iss", form(sign(func(c jwt.MapClaims) { c["iss"] = "other" })), "iss"},
		{"sub", form(sign(func(c jwt.MapClaims) { c["sub"] = "other" })), "sub"},
		{"aud the token endpoint", form(sign(func(c jwt.MapClaims) { c["aud"] = a.tokenURL })), "aud"},
		{"aud the issuer and another", form(sign(func(c jwt.MapClaims) { c["aud"] = []string{a.issuer, "https://other.test"} })), "aud"},
		{"aud the issuer in an array", form(sign(func(c jwt.MapClaims) { c["aud"] = []string{a.issuer} })), ""},
		{"no exp", form(sign(func(c jwt.MapClaims) { delete(c, "exp") })), "exp"},
		{"expired", form(sign(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Second).Unix() })), "exp"},
		{"not valid yet", form(sign(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), "nbf"},
		{"issued in the future", form(sign(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })), "iat"},
		{"no jti", form(sign(func(c jwt.MapClaims) { delete(c, "jti") })), "jti"},
		{"another assertion type", func() url.Values {
			f := form(sign(nil))
			f.Set("client_assertion_type", "urn:other")
			return f
		}(), "assertion_type"},
		{"another client_id", func() url.Values {
			f := form(sign(nil))
			f.Set("client_id", "other")
			return f
		}(), "client_id"},
		{"no assertion", url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}}, "method"},
	}
	for _, tt := range tests {
		_, ref := a.tokenResponse(tokenRequest(a, tt.form))
		if got := check(ref); got != tt.want {
			t.Errorf("%s: got refusal %q (%v), want %q", tt.name, got, ref, tt.want)
		}
		if ref != nil && ref.code == "invalid_client" && ref.status != http.StatusUnauthorized {
			t.Errorf("%s: got status %d for invalid_client, want 401", tt.name, ref.status)
		}
	}
}

// TestTokenEndpointChecksBasic: client_secret_basic takes the client's ID
// and secret, form-encoded, in Basic and nothing else.
func TestTokenEndpointChecksBasic(t *testing.T) {
	t.Parallel()
	a := NewAuthServer(t).a
	form := url.Values{"grant_type": {"client_credentials"}}
	tests := []struct {
		name         string
		id, secret   string
		basic        bool
		form         url.Values
		want         string
		wantInvalids bool // a Basic challenge is sent
	}{
		{"right", clientID, a.client.secret, true, form, "", false},
		{"form-encoded", url.QueryEscape(clientID), url.QueryEscape(a.client.secret), true, form, "", false},
		{"wrong secret", clientID, a.client.secret + "x", true, form, "secret", true},
		{"unknown client", "other", a.client.secret, true, form, "secret", true},
		{"no Basic", "", "", false, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {a.client.secret}}, "method", true},
		{"client_id of another", clientID, a.client.secret, true, url.Values{"grant_type": {"client_credentials"}, "client_id": {"other"}}, "client_id", false},
		{"an assertion as well", clientID, a.client.secret, true, url.Values{"grant_type": {"client_credentials"}, "client_assertion": {"x"}}, "methods", false},
	}
	for _, tt := range tests {
		r := tokenRequest(a, tt.form)
		if tt.basic {
			r.SetBasicAuth(tt.id, tt.secret)
		}
		_, ref := a.tokenResponse(r)
		if got := check(ref); got != tt.want {
			t.Errorf("%s: got refusal %q (%v), want %q", tt.name, got, ref, tt.want)
		}
		if got := ref != nil && ref.header.Get("WWW-Authenticate") != ""; got != tt.wantInvalids {
			t.Errorf("%s: got a challenge %t, want %t", tt.name, got, tt.wantInvalids)
		}
	}
}

// TestTokenEndpointChecksClientCert: tls_client_auth takes the client's ID
// in the form and a certificate whose subject is that ID, and nothing else.
func TestTokenEndpointChecksClientCert(t *testing.T) {
	t.Parallel()
	as := NewAuthServer(t, ClientAuth("tls_client_auth"))
	a := as.a
	good := as.ClientCert(t).Leaf()
	stranger := as.CA().Issue(t, Hosts("other")).Leaf()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}}
	tests := []struct {
		name string
		r    *http.Request
		want string
	}{
		{"right", withCert(tokenRequest(a, form), good), ""},
		{"no certificate", tokenRequest(a, form), "certificate"},
		{"another subject", withCert(tokenRequest(a, form), stranger), "subject"},
		{"no client_id", withCert(tokenRequest(a, url.Values{"grant_type": {"client_credentials"}}), good), "client_id"},
		{"Basic as well", func() *http.Request {
			r := withCert(tokenRequest(a, form), good)
			r.SetBasicAuth(clientID, "secret")
			return r
		}(), "method"},
	}
	for _, tt := range tests {
		body, ref := a.tokenResponse(tt.r)
		if got := check(ref); got != tt.want {
			t.Errorf("%s: got refusal %q (%v), want %q", tt.name, got, ref, tt.want)
		}
		if ref == nil {
			c, ref := a.parseToken(body["access_token"].(string))
			if ref != nil || c.Cnf.X5TS256 != certThumbprint(good.Raw) {
				t.Errorf("%s: got a token bound to %q (%v), want one bound to the certificate", tt.name, c.Cnf.X5TS256, ref)
			}
		}
	}
}

// TestTokenEndpointChecksRequest: a token request is a POSTed form, with
// each parameter once, for a grant the server supports, and resource
// indicators that are absolute URIs.
func TestTokenEndpointChecksRequest(t *testing.T) {
	t.Parallel()
	a := NewAuthServer(t).a
	request := func(method, contentType string, form url.Values) *http.Request {
		r := tokenRequest(a, form)
		r.Method = method
		r.Header.Set("Content-Type", contentType)
		r.SetBasicAuth(clientID, a.client.secret)
		return r
	}
	const formType = "application/x-www-form-urlencoded"
	grant := url.Values{"grant_type": {"client_credentials"}}
	tests := []struct {
		name string
		r    *http.Request
		want string
	}{
		{"right", request(http.MethodPost, formType, grant), ""},
		{"resources", request(http.MethodPost, formType, url.Values{"grant_type": {"client_credentials"}, "resource": {"https://a.test/", "https://b.test/"}}), ""},
		{"GET", request(http.MethodGet, formType, grant), "method"},
		{"JSON", request(http.MethodPost, "application/json", grant), "content_type"},
		{"scope twice", request(http.MethodPost, formType, url.Values{"grant_type": {"client_credentials"}, "scope": {"a", "b"}}), "repeated"},
		{"another grant", request(http.MethodPost, formType, url.Values{"grant_type": {"password"}}), "grant_type"},
		{"a relative resource", request(http.MethodPost, formType, url.Values{"grant_type": {"client_credentials"}, "resource": {"/api"}}), "resource"},
	}
	for _, tt := range tests {
		_, ref := a.tokenResponse(tt.r)
		if got := check(ref); got != tt.want {
			t.Errorf("%s: got refusal %q (%v), want %q", tt.name, got, ref, tt.want)
		}
	}
}
