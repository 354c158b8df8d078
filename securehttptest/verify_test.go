package securehttptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestVerifyRequest: VerifyRequest accepts a token of the server's, sent
// as its binding requires, and refuses one wrong in any respect.
func TestVerifyRequest(t *testing.T) {
	t.Parallel()
	as := NewAuthServer(t)
	a := as.a
	now := time.Now()
	a.now = fixedClock(now)
	const target = "https://api.test/v1/things"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt := thumbprint(must(publicJWK(key.Public())))
	cert := as.ClientCert(t).Leaf()
	issue := func(jkt, x5t string, resources ...string) string {
		tok, err := a.issue(grant{subject: clientID, clientID: clientID}, "read", resources, jkt, x5t)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	bearer, bound, certBound := issue("", ""), issue(jkt, ""), issue("", certThumbprint(cert.Raw))
	request := func(auth ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, target+"?page=2", nil)
		r.Header["Authorization"] = auth
		return r
	}
	withProof := func(r *http.Request, proof string) *http.Request {
		r.Header.Set("DPoP", proof)
		return r
	}
	proof := func(key *ecdsa.PrivateKey, tok string, edit func(jwt.MapClaims)) string {
		return proofFor(t, key, http.MethodGet, target, now, func(_ map[string]any, c jwt.MapClaims) {
			c["ath"] = tokenHash(tok)
			if edit != nil {
				edit(c)
			}
		})
	}
	// signed returns a token signed by the server's key with claims, and
	// typ as its typ.
	signed := func(typ string, claims jwt.MapClaims) string {
		return signJWT(t, jwt.SigningMethodES256, a.key, map[string]any{"typ": typ}, claims)
	}
	registered := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": a.issuer, "sub": clientID, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		edit(c)
		return c
	}
	otherServer := NewAuthServer(t).a
	otherToken, err := otherServer.issue(grant{subject: clientID, clientID: clientID}, "", nil, "", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		r    *http.Request
		want string
	}{
		{"a bearer token", request("Bearer " + bearer), ""},
		{"the scheme in lower case", request("bearer " + bearer), ""},
		{"no Authorization", request(), "authorization"},
		{"two Authorization fields", request("Bearer "+bearer, "Bearer "+bearer), "authorization"},
		{"Basic", request("Basic " + bearer), "scheme"},
		{"no token", request("Bearer "), "scheme"},
		{"another server's token", request("Bearer " + otherToken), "signature"},
		{"not a JWT", request("Bearer opaque"), "malformed"},
		{"typ JWT", request("Bearer " + signed("JWT", registered(func(jwt.MapClaims) {}))), "typ"},
		{"another issuer", request("Bearer " + signed("at+jwt", registered(func(c jwt.MapClaims) { c["iss"] = "https://other.test" }))), "iss"},
		{"no exp", request("Bearer " + signed("at+jwt", registered(func(c jwt.MapClaims) { delete(c, "exp") }))), "exp"},
		{"expired", request("Bearer " + signed("at+jwt", registered(func(c jwt.MapClaims) { c["exp"] = now.Unix() }))), "exp"},
		{"not valid yet", request("Bearer " + signed("at+jwt", registered(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() }))), "nbf"},
		{"for this API", request("Bearer " + issue("", "", "https://API.test")), ""},
		{"for this path", request("Bearer " + issue("", "", "https://api.test/v1/")), ""},
		{"for another API", request("Bearer " + issue("", "", "https://other.test", "https://api.test/v2")), "aud"},
		{"for a host that begins with this one's", request("Bearer " + issue("", "", "https://api.tes")), "aud"},
		{"DPoP-bound, with its proof", withProof(request("DPoP "+bound), proof(key, bound, nil)), ""},
		{"DPoP-bound, as a bearer token", withProof(request("Bearer "+bound), proof(key, bound, nil)), "scheme"},
		{"unbound, with the DPoP scheme", withProof(request("DPoP "+bearer), proof(key, bearer, nil)), "scheme"},
		{"DPoP-bound, without a proof", request("DPoP " + bound), "header"},
		{"DPoP-bound, a proof by another key", withProof(request("DPoP "+bound), proof(other, bound, nil)), "jkt"},
		{"DPoP-bound, a proof for another token", withProof(request("DPoP "+bound), proof(key, bearer, nil)), "ath"},
		{"DPoP-bound, a proof without ath", withProof(request("DPoP "+bound), proof(key, bound, func(c jwt.MapClaims) { delete(c, "ath") })), "ath"},
		{"DPoP-bound, a proof for another URL", withProof(request("DPoP "+bound), proof(key, bound, func(c jwt.MapClaims) { c["htu"] = "https://api.test/v1/other" })), "htu"},
		{"certificate-bound, over its connection", withCert(request("Bearer "+certBound), cert), ""},
		{"certificate-bound, no certificate", request("Bearer " + certBound), "x5t"},
		{"certificate-bound, another certificate", withCert(request("Bearer "+certBound), as.ClientCert(t).Leaf()), "x5t"},
	}
	for _, tt := range tests {
		c, err := as.VerifyRequest(tt.r)
		var ref *refusal
		if err != nil && !errors.As(err, &ref) {
			t.Fatalf("%s: got %T %v, want a refusal", tt.name, err, err)
		}
		if got := check(ref); got != tt.want {
			t.Errorf("%s: got refusal %q (%v), want %q", tt.name, got, err, tt.want)
		}
		if err == nil && (c.Subject != clientID || c.Scope != "read" && c.Scope != "") {
			t.Errorf("%s: got claims sub %q, scope %q; want the token's", tt.name, c.Subject, c.Scope)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestVerifyRequestAgain: a request that a server of the kit received may
// be verified by its handler and again from Requests, but its DPoP proof
// on another request is a replay.
func TestVerifyRequestAgain(t *testing.T) {
	t.Parallel()
	as := NewAuthServer(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := as.a.issue(grant{subject: clientID, clientID: clientID}, "", nil, thumbprint(must(publicJWK(key.Public()))), "")
	if err != nil {
		t.Fatal(err)
	}
	handlerErr := make(chan error, 1)
	api := NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := as.VerifyRequest(r)
		handlerErr <- err
	}))
	proof := proofFor(t, key, http.MethodGet, api.URL+"/", time.Now(), func(_ map[string]any, c jwt.MapClaims) { c["ath"] = tokenHash(tok) })
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: api.CA().Pool()}}}
	t.Cleanup(client.CloseIdleConnections)
	req, err := http.NewRequest(http.MethodGet, api.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set("DPoP", proof)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-handlerErr; err != nil {
		t.Errorf("in the handler: got %v, want the token verified", err)
	}
	recorded := api.Requests()[0]
	if _, err := as.VerifyRequest(recorded); err != nil {
		t.Errorf("from Requests: got %v, want the token verified again", err)
	}
	replay := httptest.NewRequest(http.MethodGet, api.URL+"/", nil)
	replay.Header = recorded.Header.Clone()
	replay.Host = recorded.Host
	var ref *refusal
	if _, err := as.VerifyRequest(replay); !errors.As(err, &ref) || ref.check != "jti" {
		t.Errorf("the proof on another request: got %v, want a replayed jti", err)
	}
}
