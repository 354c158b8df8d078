package securehttptest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp"
)

// grantTest is an API server, an authorization server that trusts an
// issuer, and the Config of a client of both.
type grantTest struct {
	api  *Server
	auth *AuthServer
	iss  *Issuer
	cfg  securehttp.Config
}

// newGrantTest makes an issuer, an authorization server with opts that
// trusts it, an API server, and the Config of a client of the API whose
// Bearer has its Hosts only, retrying at once.
func newGrantTest(t *testing.T, opts ...Option) *grantTest {
	t.Helper()
	iss := NewIssuer(t, "https://cluster.test")
	gt := &grantTest{
		iss:  iss,
		auth: NewAuthServer(t, append([]Option{TrustIssuer(iss.Name, iss.Key().Public())}, opts...)...),
		api:  NewServer(t, nil),
	}
	gt.cfg = gt.api.Config()
	gt.cfg.Logger = slog.New(slog.DiscardHandler)
	gt.cfg.Retry = securehttp.RetryPolicy{MinWait: time.Millisecond, MaxWait: time.Millisecond}
	gt.cfg.Bearer = &securehttp.Bearer{Hosts: []string{gt.api.Host}}
	return gt
}

// call calls the API with a new client made from gt.cfg, and returns the
// claims of the token the API received, which VerifyRequest checks.
func (gt *grantTest) call(t *testing.T) (*Claims, error) {
	t.Helper()
	client, err := securehttp.NewClient(gt.cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(gt.api.URL + "/v1/things")
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	reqs := gt.api.Requests()
	claims, err := gt.auth.VerifyRequest(reqs[len(reqs)-1])
	if err != nil {
		t.Fatalf("VerifyRequest: got %v, want the token's claims", err)
	}
	return claims, nil
}

// tokenForms returns the forms of the token requests the server received.
func (gt *grantTest) tokenForms(t *testing.T) []url.Values {
	t.Helper()
	var out []url.Values
	for _, r := range gt.auth.Requests() {
		if r.URL.Path != tokenPath {
			continue
		}
		if err := r.ParseForm(); err != nil {
			t.Fatal(err)
		}
		out = append(out, r.PostForm)
	}
	return out
}

// fixed is an Assertion that always gives tok.
func fixed(tok string) securehttp.Assertion {
	return func(context.Context) (string, error) { return tok, nil }
}

// wantOAuthError checks that err is ErrNoToken with the OAuth error code,
// of status.
func wantOAuthError(t *testing.T, err error, status int, code string) {
	t.Helper()
	oe, ok := errors.AsType[*securehttp.OAuthError](err)
	if !errors.Is(err, securehttp.ErrNoToken) || !ok || oe.StatusCode != status || oe.Code != code {
		t.Errorf("got %v, want ErrNoToken with a %d %s", err, status, code)
	}
}

// TestJWTBearerGrant: a securehttp client obtains a token with the JWT
// bearer grant from an assertion of a trusted issuer, made by
// SignedAssertion (for the token endpoint by default, or the issuer) or
// read from a projected token file, with or without client
// authentication; the token is for the assertion's sub, and the assertion
// is the one sent.
func TestJWTBearerGrant(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       []Option
		assertion  func(gt *grantTest, t *testing.T) (securehttp.Assertion, string) // and the file it reads, or ""
		client     bool
		wantClient string // client_id of the token
	}{
		{"SignedAssertion for the token endpoint", nil, func(gt *grantTest, t *testing.T) (securehttp.Assertion, string) {
			return securehttp.SignedAssertion(gt.iss.Key(), securehttp.AssertionClaims{Issuer: gt.iss.Name, Subject: workload, KeyID: gt.iss.KeyID}), ""
		}, true, clientID},
		{"SignedAssertion for the issuer, no client", nil, func(gt *grantTest, t *testing.T) (securehttp.Assertion, string) {
			return securehttp.SignedAssertion(gt.iss.Key(), securehttp.AssertionClaims{Issuer: gt.iss.Name, Subject: workload, Audience: gt.auth.Issuer}), ""
		}, false, ""},
		{"AssertionFile", nil, func(gt *grantTest, t *testing.T) (securehttp.Assertion, string) {
			f := gt.iss.TokenFile(t, workload, gt.auth.Issuer)
			return securehttp.AssertionFile(f.Path), f.Path
		}, true, clientID},
		{"AssertionFile, a private_key_jwt client", []Option{ClientAuth("private_key_jwt")}, func(gt *grantTest, t *testing.T) (securehttp.Assertion, string) {
			f := gt.iss.TokenFile(t, workload, gt.auth.Issuer)
			return securehttp.AssertionFile(f.Path), f.Path
		}, true, clientID},
		{"a public client", []Option{ClientAuth("none")}, func(gt *grantTest, t *testing.T) (securehttp.Assertion, string) {
			return securehttp.SignedAssertion(gt.iss.Key(), securehttp.AssertionClaims{Issuer: gt.iss.Name, Subject: workload}), ""
		}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gt := newGrantTest(t, tc.opts...)
			assertion, file := tc.assertion(gt, t)
			gt.cfg.Bearer.JWTBearer = gt.auth.JWTBearer(assertion)
			if !tc.client {
				gt.cfg.Bearer.JWTBearer.Client = nil
			}
			claims, err := gt.call(t)
			if err != nil {
				t.Fatalf("got %v, want a token", err)
			}
			if claims.Subject != workload || claims.ClientID != tc.wantClient {
				t.Errorf("got sub %q and client_id %q, want %q and %q", claims.Subject, claims.ClientID, workload, tc.wantClient)
			}
			forms := gt.tokenForms(t)
			if len(forms) != 1 {
				t.Fatalf("got %d token requests, want 1", len(forms))
			}
			if got := forms[0].Get("grant_type"); got != grantJWTBearer {
				t.Errorf("got grant_type %q, want %q", got, grantJWTBearer)
			}
			if file != "" {
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				if forms[0].Get("assertion") != string(want) {
					t.Error("the assertion sent is not the file's JWT")
				}
			}
		})
	}
}

// TestJWTBearerGrantRefused: each assertion that the server refuses, and a
// client that fails to authenticate, gives the client the error a
// production server's refusal gives: ErrNoToken with the OAuth error, and
// the API receives nothing.
func TestJWTBearerGrantRefused(t *testing.T) {
	t.Parallel()
	stranger := NewIssuer(t, "https://cluster.test") // the name of a trusted one, another key
	tests := []struct {
		name      string
		assertion func(gt *grantTest, t *testing.T) securehttp.Assertion
		edit      func(b *securehttp.JWTBearer)
		status    int
		code      string
	}{
		{"an untrusted issuer", func(gt *grantTest, t *testing.T) securehttp.Assertion {
			return fixed(NewIssuer(t, "https://elsewhere.test").Token(t, workload, gt.auth.Issuer))
		}, nil, http.StatusBadRequest, "invalid_grant"},
		{"a trusted name, another key", func(gt *grantTest, t *testing.T) securehttp.Assertion {
			return fixed(stranger.Token(t, workload, gt.auth.Issuer))
		}, nil, http.StatusBadRequest, "invalid_grant"},
		{"expired", func(gt *grantTest, t *testing.T) securehttp.Assertion {
			return fixed(gt.iss.Token(t, workload, gt.auth.Issuer, Expired()))
		}, nil, http.StatusBadRequest, "invalid_grant"},
		{"for another audience", func(gt *grantTest, t *testing.T) securehttp.Assertion {
			return fixed(gt.iss.Token(t, workload, "https://other.test"))
		}, nil, http.StatusBadRequest, "invalid_grant"},
		{"a wrong client secret", func(gt *grantTest, t *testing.T) securehttp.Assertion {
			return fixed(gt.iss.Token(t, workload, gt.auth.Issuer))
		}, func(b *securehttp.JWTBearer) { b.Client.ClientSecret = "a guess" }, http.StatusUnauthorized, "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gt := newGrantTest(t)
			gt.cfg.Bearer.JWTBearer = gt.auth.JWTBearer(tc.assertion(gt, t))
			if tc.edit != nil {
				tc.edit(gt.cfg.Bearer.JWTBearer)
			}
			_, err := gt.call(t)
			wantOAuthError(t, err, tc.status, tc.code)
			if n := len(gt.api.Requests()); n != 0 {
				t.Errorf("the API received %d requests, want 0", n)
			}
		})
	}
}

// TestJWTBearerAssertionReplayed: the assertion of a projected token file
// obtains one token; a second token request with the same JWT, from a
// second client reading the file, is refused as invalid_grant, and one
// after the file's rotation succeeds with the new JWT.
func TestJWTBearerAssertionReplayed(t *testing.T) {
	t.Parallel()
	gt := newGrantTest(t)
	f := gt.iss.TokenFile(t, workload, gt.auth.Issuer)
	gt.cfg.Bearer.JWTBearer = gt.auth.JWTBearer(securehttp.AssertionFile(f.Path))
	if _, err := gt.call(t); err != nil {
		t.Fatalf("first client: got %v, want a token", err)
	}
	_, err := gt.call(t)
	wantOAuthError(t, err, http.StatusBadRequest, "invalid_grant")
	f.Rotate(t)
	if _, err := gt.call(t); err != nil {
		t.Fatalf("after the rotation: got %v, want a token", err)
	}
	forms := gt.tokenForms(t)
	if len(forms) != 3 || forms[0].Get("assertion") != forms[1].Get("assertion") || forms[1].Get("assertion") == forms[2].Get("assertion") {
		t.Errorf("got %d token requests, want 3: two with the first JWT, one with the rotated one", len(forms))
	}
}

// TestTokenExchangeGrant: a securehttp client trades a subject token from
// a projected token file, and an actor token, for a token of the subject
// for the audience asked for, with the actor in act; asked for a JWT, it
// gets one with token_type N_A, or bound to its DPoP key.
func TestTokenExchangeGrant(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      []Option
		requested string
		dpop      bool
		client    string // the client_id of the token
	}{
		{"an access token", nil, "", false, clientID},
		{"a JWT", nil, tokenTypeJWT, false, clientID},
		{"a JWT bound to a DPoP key", nil, tokenTypeJWT, true, clientID},
		{"an access token for a public client", []Option{ClientAuth("none")}, "", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			agent := NewIssuer(t, "https://agents.test")
			gt := newGrantTest(t, append([]Option{TrustIssuer(agent.Name, agent.Key().Public())}, tc.opts...)...)
			f := gt.iss.TokenFile(t, workload, gt.auth.Issuer)
			te := gt.auth.TokenExchange(securehttp.AssertionFile(f.Path))
			te.ActorToken = securehttp.SignedAssertion(agent.Key(), securehttp.AssertionClaims{Issuer: agent.Name, Subject: "agent-7", Audience: gt.auth.Issuer})
			te.ActorTokenType = tokenTypeJWT
			te.Audience = []string{gt.api.URL}
			te.Scopes = []string{"things:read"}
			te.RequestedTokenType = tc.requested
			gt.cfg.Bearer.TokenExchange = te
			if tc.dpop {
				key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				gt.cfg.Bearer.DPoP = &securehttp.DPoP{Key: key}
			}
			claims, err := gt.call(t)
			if err != nil {
				t.Fatalf("got %v, want a token", err)
			}
			if claims.Subject != workload || claims.Act.Subject != "agent-7" || claims.ClientID != tc.client || claims.Scope != "things:read" {
				t.Errorf("got sub %q, act.sub %q, client_id %q, scope %q; want %q, agent-7, %q, things:read", claims.Subject, claims.Act.Subject, claims.ClientID, claims.Scope, workload, tc.client)
			}
			if !slices.Equal(claims.Audience, jwt.ClaimStrings{gt.api.URL}) {
				t.Errorf("got aud %q, want the API's URL", []string(claims.Audience))
			}
			if bound := claims.Cnf.JKT != ""; bound != tc.dpop {
				t.Errorf("got a token bound to a DPoP key: %t, want %t", bound, tc.dpop)
			}
			forms := gt.tokenForms(t)
			if len(forms) != 1 {
				t.Fatalf("got %d token requests, want 1", len(forms))
			}
			want, err := os.ReadFile(f.Path)
			if err != nil {
				t.Fatal(err)
			}
			if forms[0].Get("subject_token") != string(want) || forms[0].Get("actor_token") == "" {
				t.Error("the token request does not carry the file's JWT as subject_token and an actor_token")
			}
		})
	}
}

// TestTokenExchangeRefused: a subject or actor token that the server
// refuses gives the client ErrNoToken with invalid_request (RFC 8693
// section 2.2.2), and a client that does not authenticate invalid_client;
// the API receives nothing.
func TestTokenExchangeRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		edit   func(gt *grantTest, t *testing.T, te *securehttp.TokenExchange)
		status int
		code   string
	}{
		{"an untrusted subject token", func(gt *grantTest, t *testing.T, te *securehttp.TokenExchange) {
			te.SubjectToken = fixed(NewIssuer(t, "https://elsewhere.test").Token(t, workload, gt.auth.Issuer))
		}, http.StatusBadRequest, "invalid_request"},
		{"an expired subject token", func(gt *grantTest, t *testing.T, te *securehttp.TokenExchange) {
			te.SubjectToken = fixed(gt.iss.Token(t, workload, gt.auth.Issuer, Expired()))
		}, http.StatusBadRequest, "invalid_request"},
		{"an untrusted actor token", func(gt *grantTest, t *testing.T, te *securehttp.TokenExchange) {
			te.ActorToken, te.ActorTokenType = fixed(NewIssuer(t, "https://elsewhere.test").Token(t, "agent-7", gt.auth.Issuer)), tokenTypeJWT
		}, http.StatusBadRequest, "invalid_request"},
		{"a subject token of an unsupported type", func(gt *grantTest, t *testing.T, te *securehttp.TokenExchange) {
			te.SubjectTokenType = "urn:ietf:params:oauth:token-type:saml2"
		}, http.StatusBadRequest, "invalid_request"},
		{"no client authentication", func(gt *grantTest, t *testing.T, te *securehttp.TokenExchange) {
			te.Client = nil
		}, http.StatusUnauthorized, "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gt := newGrantTest(t)
			te := gt.auth.TokenExchange(fixed(gt.iss.Token(t, workload, gt.auth.Issuer)))
			tc.edit(gt, t, te)
			gt.cfg.Bearer.TokenExchange = te
			_, err := gt.call(t)
			wantOAuthError(t, err, tc.status, tc.code)
			if n := len(gt.api.Requests()); n != 0 {
				t.Errorf("the API received %d requests, want 0", n)
			}
		})
	}
}

// TestTokenEndpointChecksJWTBearer: the JWT bearer grant takes an
// assertion that is right in every respect once, and refuses, as
// invalid_grant, one that is wrong in any; client authentication is
// optional, and checked when sent.
func TestTokenEndpointChecksJWTBearer(t *testing.T) {
	t.Parallel()
	iss := NewIssuer(t, "https://cluster.test")
	edKey, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	as := NewAuthServer(t, TrustIssuer(iss.Name, iss.Key().Public()), TrustIssuer("https://ed.test", edKey))
	a := as.a
	now := time.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": iss.Name, "sub": workload, "aud": a.tokenURL, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": randomID()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	sign := func(edit func(jwt.MapClaims)) string {
		return signJWT(t, jwt.SigningMethodES256, iss.key, map[string]any{"kid": iss.KeyID}, claims(edit))
	}
	form := func(assertion string) url.Values {
		return url.Values{"grant_type": {grantJWTBearer}, "assertion": {assertion}}
	}
	replayed := sign(nil)
	unsigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		form  url.Values
		basic string // the client secret sent with Basic, if any
		want  string // the check that fails; "" for none
	}{
		{"right", form(replayed), "", ""},
		{"replayed", form(replayed), "", "jti"},
		{"replayed by another client", form(replayed), a.client.secret, "jti"},
		{"aud the issuer", form(sign(func(c jwt.MapClaims) { c["aud"] = a.issuer })), "", ""},
		{"aud the issuer among others", form(sign(func(c jwt.MapClaims) { c["aud"] = []string{"https://other.test", a.issuer} })), "", ""},
		{"signed with EdDSA by another trusted issuer", form(signJWT(t, jwt.SigningMethodEdDSA, edPriv, nil, claims(func(c jwt.MapClaims) { c["iss"] = "https://ed.test" }))), "", ""},
		{"an untrusted issuer", form(sign(func(c jwt.MapClaims) { c["iss"] = "https://other.test" })), "", "iss"},
		{"signed by another key", form(NewIssuer(t, iss.Name).Token(t, workload, a.issuer)), "", "signature"},
		{"unsigned", form(unsigned), "", "signature"},
		{"not a JWT", form("not-a-jwt"), "", "malformed"},
		{"no sub", form(sign(func(c jwt.MapClaims) { delete(c, "sub") })), "", "sub"},
		{"aud another server", form(sign(func(c jwt.MapClaims) { c["aud"] = "https://other.test" })), "", "aud"},
		{"no aud", form(sign(func(c jwt.MapClaims) { delete(c, "aud") })), "", "aud"},
		{"no exp", form(sign(func(c jwt.MapClaims) { delete(c, "exp") })), "", "exp"},
		{"expired", form(sign(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Second).Unix() })), "", "exp"},
		{"not valid yet", form(sign(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), "", "nbf"},
		{"issued in the future", form(sign(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })), "", "iat"},
		{"no jti", form(sign(func(c jwt.MapClaims) { delete(c, "jti") })), "", "jti"},
		{"no assertion", url.Values{"grant_type": {grantJWTBearer}}, "", "assertion"},
		{"an authenticated client", form(sign(nil)), a.client.secret, ""},
		{"a wrong client secret", form(sign(nil)), "a guess", "secret"},
		{"a client_id without authentication", func() url.Values {
			f := form(sign(nil))
			f.Set("client_id", clientID)
			return f
		}(), "", "method"},
		{"a malformed scope", func() url.Values {
			f := form(sign(nil))
			f.Set("scope", "read  write")
			return f
		}(), "", "scope"},
	}
	for _, tt := range tests {
		r := tokenRequest(a, tt.form)
		if tt.basic != "" {
			r.SetBasicAuth(clientID, tt.basic)
		}
		body, ref := a.tokenResponse(r)
		if got := check(ref); got != tt.want {
			t.Errorf("%s: got refusal %q (%v), want %q", tt.name, got, ref, tt.want)
		}
		wantCode := map[string]string{"": "", "assertion": "invalid_request", "secret": "invalid_client", "method": "invalid_client", "scope": "invalid_scope"}[tt.want]
		if wantCode == "" && tt.want != "" {
			wantCode = "invalid_grant"
		}
		if ref != nil && ref.code != wantCode {
			t.Errorf("%s: got error %q, want %q", tt.name, ref.code, wantCode)
		}
		if ref == nil {
			c, ref := a.parseToken(body["access_token"].(string))
			if ref != nil {
				t.Errorf("%s: the token issued does not verify: %v", tt.name, ref)
			} else if c.Subject != workload || body["token_type"] != "Bearer" || body["issued_token_type"] != nil {
				t.Errorf("%s: got a token for %q, token_type %v, issued_token_type %v; want one for %q, Bearer, none", tt.name, c.Subject, body["token_type"], body["issued_token_type"], workload)
			}
		}
	}
}

// TestTokenEndpointChecksTokenExchange: token exchange takes a subject
// token, and an actor token if any, of a JWT's type and from a trusted
// issuer, and issues the type of token asked for; whatever is wrong is
// invalid_request, and the client must authenticate.
func TestTokenEndpointChecksTokenExchange(t *testing.T) {
	t.Parallel()
	iss := NewIssuer(t, "https://cluster.test")
	as := NewAuthServer(t, TrustIssuer(iss.Name, iss.Key().Public()))
	a := as.a
	subject := iss.Token(t, workload, a.issuer)
	actorToken := iss.Token(t, "agent-7", a.tokenURL)
	form := func(edit func(url.Values)) url.Values {
		f := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {subject}, "subject_token_type": {tokenTypeJWT}}
		if edit != nil {
			edit(f)
		}
		return f
	}
	tests := []struct {
		name          string
		form          url.Values
		anonymous     bool   // no client authentication
		want          string // the check that fails; "" for none
		issued, typ   string // issued_token_type and token_type of the answer
		actor         string
		aud           []string
		wantErrorCode string
	}{
		{"right", form(nil), false, "", tokenTypeAccess, "Bearer", "", nil, ""},
		{"an access token asked for", form(func(f url.Values) { f.Set("requested_token_type", tokenTypeAccess) }), false, "", tokenTypeAccess, "Bearer", "", nil, ""},
		{"a JWT asked for", form(func(f url.Values) { f.Set("requested_token_type", tokenTypeJWT) }), false, "", tokenTypeJWT, "N_A", "", nil, ""},
		{"an actor", form(func(f url.Values) { f.Set("actor_token", actorToken); f.Set("actor_token_type", tokenTypeJWT) }), false, "", tokenTypeAccess, "Bearer", "agent-7", nil, ""},
		{"audiences and a resource", form(func(f url.Values) {
			f["audience"] = []string{"https://a.test", "urn:b"}
			f.Set("resource", "https://c.test/api")
		}), false, "", tokenTypeAccess, "Bearer", "", []string{"https://a.test", "urn:b", "https://c.test/api"}, ""},
		{"an ID token as the subject token", form(func(f url.Values) { f.Set("subject_token_type", tokenTypeIDToken) }), false, "", tokenTypeAccess, "Bearer", "", nil, ""},
		{"no subject token", form(func(f url.Values) { f.Del("subject_token"); f.Del("subject_token_type") }), false, "subject_token", "", "", "", nil, "invalid_request"},
		{"no subject_token_type", form(func(f url.Values) { f.Del("subject_token_type") }), false, "subject_token_type", "", "", "", nil, "invalid_request"},
		{"a SAML subject token", form(func(f url.Values) { f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:saml2") }), false, "subject_token_type", "", "", "", nil, "invalid_request"},
		{"an untrusted subject token", form(func(f url.Values) {
			f.Set("subject_token", NewIssuer(t, "https://other.test").Token(t, workload, a.issuer))
		}), false, "iss", "", "", "", nil, "invalid_request"},
		{"an expired subject token", form(func(f url.Values) { f.Set("subject_token", iss.Token(t, workload, a.issuer, Expired())) }), false, "exp", "", "", "", nil, "invalid_request"},
		{"a subject token for another server", form(func(f url.Values) { f.Set("subject_token", iss.Token(t, workload, "https://other.test")) }), false, "aud", "", "", "", nil, "invalid_request"},
		{"an actor token without its type", form(func(f url.Values) { f.Set("actor_token", actorToken) }), false, "actor_token_type", "", "", "", nil, "invalid_request"},
		{"an actor_token_type alone", form(func(f url.Values) { f.Set("actor_token_type", tokenTypeJWT) }), false, "actor_token_type", "", "", "", nil, "invalid_request"},
		{"an expired actor token", form(func(f url.Values) {
			f.Set("actor_token", iss.Token(t, "agent-7", a.issuer, Expired()))
			f.Set("actor_token_type", tokenTypeJWT)
		}), false, "exp", "", "", "", nil, "invalid_request"},
		{"an ID token asked for", form(func(f url.Values) { f.Set("requested_token_type", tokenTypeIDToken) }), false, "requested_token_type", "", "", "", nil, "invalid_request"},
		{"an empty audience", form(func(f url.Values) { f.Set("audience", "") }), false, "audience", "", "", "", nil, "invalid_request"},
		{"no client authentication", form(nil), true, "method", "", "", "", nil, "invalid_client"},
	}
	for _, tt := range tests {
		r := tokenRequest(a, tt.form)
		if !tt.anonymous {
			r.SetBasicAuth(clientID, a.client.secret)
		}
		body, ref := a.tokenResponse(r)
		if got := check(ref); got != tt.want {
			t.Errorf("%s: got refusal %q (%v), want %q", tt.name, got, ref, tt.want)
			continue
		}
		if ref != nil {
			if ref.code != tt.wantErrorCode {
				t.Errorf("%s: got error %q, want %q", tt.name, ref.code, tt.wantErrorCode)
			}
			continue
		}
		if body["issued_token_type"] != tt.issued || body["token_type"] != tt.typ {
			t.Errorf("%s: got issued_token_type %v and token_type %v, want %s and %s", tt.name, body["issued_token_type"], body["token_type"], tt.issued, tt.typ)
		}
		c, ref := a.parseToken(body["access_token"].(string))
		if ref != nil {
			t.Errorf("%s: the token issued does not verify: %v", tt.name, ref)
		} else if c.Subject != workload || c.Act.Subject != tt.actor || c.ClientID != clientID || !slices.Equal([]string(c.Audience), tt.aud) {
			t.Errorf("%s: got a token of sub %q, act %q, client_id %q, aud %q; want %q, %q, %q, %q", tt.name, c.Subject, c.Act.Subject, c.ClientID, []string(c.Audience), workload, tt.actor, clientID, tt.aud)
		}
	}
}

// TestPublicClient: a public client (ClientAuth "none") exchanges a token
// without authenticating, identified by its client_id or not at all; it
// may not authenticate, nor use the client credentials grant.
func TestPublicClient(t *testing.T) {
	t.Parallel()
	iss := NewIssuer(t, "https://cluster.test")
	a := NewAuthServer(t, ClientAuth("none"), TrustIssuer(iss.Name, iss.Key().Public())).a
	exchange := func(edit func(url.Values)) url.Values {
		f := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {iss.Token(t, workload, a.issuer)}, "subject_token_type": {tokenTypeJWT}}
		if edit != nil {
			edit(f)
		}
		return f
	}
	tests := []struct {
		name       string
		form       url.Values
		basic      bool
		want, code string
		client     string // the token's client_id
	}{
		{"anonymous", exchange(nil), false, "", "", ""},
		{"identified", exchange(func(f url.Values) { f.Set("client_id", clientID) }), false, "", "", clientID},
		{"another client_id", exchange(func(f url.Values) { f.Set("client_id", "other") }), false, "client_id", "invalid_client", ""},
		{"authenticated", exchange(nil), true, "method", "invalid_client", ""},
		{"client credentials", url.Values{"grant_type": {grantClientCredentials}, "client_id": {clientID}}, false, "grant_type", "unauthorized_client", ""},
	}
	for _, tt := range tests {
		r := tokenRequest(a, tt.form)
		if tt.basic {
			r.SetBasicAuth(clientID, "secret")
		}
		body, ref := a.tokenResponse(r)
		if got := check(ref); got != tt.want || ref != nil && ref.code != tt.code {
			t.Errorf("%s: got refusal %q (%v), want %q (%s)", tt.name, got, ref, tt.want, tt.code)
			continue
		}
		if ref == nil {
			if c, ref := a.parseToken(body["access_token"].(string)); ref != nil {
				t.Errorf("%s: the token issued does not verify: %v", tt.name, ref)
			} else if c.ClientID != tt.client {
				t.Errorf("%s: got a token of client_id %q, want %q", tt.name, c.ClientID, tt.client)
			}
		}
	}
	if cc := (&AuthServer{a: a}).grantClient(); cc != nil {
		t.Errorf("got a grant Client %v for a public client, want nil", cc)
	}
}
