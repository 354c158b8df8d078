package securehttp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"github.com/securehttp/securehttp/internal/testutil"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/secrettest"
)

// grantServer is a token endpoint on other.test that records what each
// token request carried and answers as answer says, and an API on api.test
// that takes any token it issued. It stands beside the real peers of the
// grants (Hydra, zitadel/oidc, oidc-provider), to see the exact bytes sent.
type grantServer struct {
	srv    *httptest.Server
	answer func(n int64, form url.Values) (status int, body string) // nil: a Bearer token for an hour

	mu       sync.Mutex
	forms    []url.Values
	headers  []http.Header
	issued   map[string]bool
	requests atomic.Int64
}

func newGrantServer(t *testing.T) *grantServer {
	s := &grantServer{issued: map[string]bool{}}
	s.srv = testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Host, hostAPI) {
			s.mu.Lock()
			ok := s.issued[strings.TrimPrefix(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "DPoP ")]
			s.mu.Unlock()
			if !ok {
				w.WriteHeader(http.StatusUnauthorized)
			}
			return
		}
		n := s.requests.Add(1)
		_ = r.ParseForm()
		s.mu.Lock()
		s.forms = append(s.forms, r.PostForm)
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		if s.answer != nil {
			if status, body := s.answer(n, r.PostForm); status != 0 {
				w.WriteHeader(status)
				io.WriteString(w, body)
				return
			}
		}
		tok := "at-" + rand.Text()
		s.mu.Lock()
		s.issued[tok] = true
		s.mu.Unlock()
		typ := "Bearer"
		if r.Header.Get("DPoP") != "" {
			typ = "DPoP"
		}
		resp := map[string]any{"access_token": tok, "token_type": typ, "expires_in": 3600}
		if r.PostForm.Get("grant_type") == grantTypeTokenExchange {
			resp["issued_token_type"] = r.PostForm.Get("requested_token_type")
		}
		json.NewEncoder(w).Encode(resp)
	}))
	return s
}

func (s *grantServer) tokenURL() string { return testutil.HostURL(s.srv, hostOther, "/token") }

// get sends one API request with cfg and returns its error, or nil after a
// 200.
func (s *grantServer) get(t *testing.T, cfg Config) error {
	t.Helper()
	c := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 10 * time.Second}
	resp, err := c.Get(testutil.HostURL(s.srv, hostAPI, "/v1"))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d, want 200", resp.StatusCode)
	}
	return nil
}

func (s *grantServer) form(i int) url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forms[i]
}

// The JWT bearer grant sends the assertion as the grant (RFC 7523 section
// 2.1), with its scopes and resources, and a new assertion for each
// attempt: a token request retried after a 503 carries another jti. The
// client authenticates as Client says, apart from the grant.
func TestJWTBearerSendsAFreshAssertionPerAttempt(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	clientKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tt := range []struct {
		name   string
		client *ClientCredentials
		check  func(t *testing.T, form url.Values, h http.Header)
	}{
		{"no client authentication", nil, func(t *testing.T, form url.Values, h http.Header) {
			if form.Has("client_id") || form.Has("client_assertion") || h.Get("Authorization") != "" {
				t.Fatalf("got client_id %q and Authorization %q, want no client authentication", form.Get("client_id"), h.Get("Authorization"))
			}
		}},
		{"client_secret_basic", &ClientCredentials{ClientID: "app", ClientSecret: "s3cret"}, func(t *testing.T, form url.Values, h http.Header) {
			r := &http.Request{Header: h}
			if id, secret, ok := r.BasicAuth(); !ok || id != "app" || secret != "s3cret" || form.Has("client_assertion") {
				t.Fatalf("got Basic %q:%q, want app:s3cret", id, secret)
			}
		}},
		{"client assertion from elsewhere", &ClientCredentials{ClientID: "app",
			Assertion: SignedAssertion(clientKey, AssertionClaims{Issuer: "app", Subject: "app"})}, func(t *testing.T, form url.Values, h http.Header) {
			c := claimsOf(t, form.Get("client_assertion"))
			if form.Get("client_id") != "app" || form.Get("client_assertion_type") != assertionTypeJWTBearr || c["sub"] != "app" ||
				!strings.HasSuffix(c["aud"].(string), "/token") {
				t.Fatalf("got client_id %q, type %q, claims %v, want app's assertion for the token endpoint",
					form.Get("client_id"), form.Get("client_assertion_type"), c)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newGrantServer(t)
			s.answer = func(n int64, _ url.Values) (int, string) {
				if n == 1 {
					return http.StatusServiceUnavailable, `{"error":"temporarily_unavailable"}`
				}
				return 0, ""
			}
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, JWTBearer: &JWTBearer{TokenURL: s.tokenURL(),
				Assertion: SignedAssertion(key, AssertionClaims{Issuer: "svc@example", Subject: "user-7"}),
				Scopes:    []string{"read", "write"}, Resource: []string{"https://api.test/"}, Client: tt.client}}
			if err := s.get(t, cfg); err != nil {
				t.Fatal(err)
			}
			if n := s.requests.Load(); n != 2 {
				t.Fatalf("got %d token requests, want 2 (a 503, then a retry)", n)
			}
			jtis := map[any]bool{}
			for i := range 2 {
				form := s.form(i)
				if form.Get("grant_type") != grantTypeJWTBearer || form.Get("scope") != "read write" ||
					form.Get("resource") != "https://api.test/" {
					t.Fatalf("attempt %d: got form %v, want the JWT bearer grant with scope and resource", i, form)
				}
				c := claimsOf(t, form.Get("assertion"))
				if c["iss"] != "svc@example" || c["sub"] != "user-7" || c["aud"] != s.tokenURL() {
					t.Fatalf("attempt %d: got claims %v, want iss, sub and the token endpoint as aud", i, c)
				}
				jtis[c["jti"]] = true
				s.mu.Lock()
				h := s.headers[i]
				s.mu.Unlock()
				tt.check(t, form, h)
			}
			if len(jtis) != 2 {
				t.Fatalf("got %d distinct jti over 2 attempts, want 2", len(jtis))
			}
		})
	}
}

// An Assertion that fails fails the refresh with its error, typed, and no
// token request is sent; nor is one sent for an empty assertion.
func TestJWTBearerAssertionFailureSendsNothing(t *testing.T) {
	t.Parallel()
	errPlatform := errors.New("the platform has no token for this pod")
	for _, tt := range []struct {
		name string
		a    Assertion
		want error
	}{
		{"error", func(context.Context) (string, error) { return "", errPlatform }, errPlatform},
		{"empty", func(context.Context) (string, error) { return "", nil }, ErrNoToken},
		{"missing file", AssertionFile("/nonexistent/token"), ErrNoToken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newGrantServer(t)
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, JWTBearer: &JWTBearer{TokenURL: s.tokenURL(), Assertion: tt.a}}
			c := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 10 * time.Second}
			_, err := c.Get(testutil.HostURL(s.srv, hostAPI, "/v1"))
			if !errors.Is(err, ErrNoToken) || !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want ErrNoToken and %v", err, tt.want)
			}
			if n := s.requests.Load(); n != 0 {
				t.Fatalf("got %d token requests, want none", n)
			}
		})
	}
}

// A server that echoes the assertion, the subject token or the actor token
// in its error response, whole, in part or encoded, has the echo redacted
// from the *OAuthError and from everything that prints it.
func TestGrantErrorRedactsEchoedAssertion(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signed := SignedAssertion(key, AssertionClaims{Issuer: "svc", Subject: "svc"})
	for _, param := range []string{"assertion", "subject_token", "actor_token", "client_assertion"} {
		for _, echo := range []struct {
			name string
			of   func(string) string
		}{
			{"whole", func(s string) string { return s }},
			{"signature", func(s string) string { return s[strings.LastIndexByte(s, '.')+1:] }},
			{"percent-encoded", url.QueryEscape},
		} {
			t.Run(param+" "+echo.name, func(t *testing.T) {
				t.Parallel()
				s := newGrantServer(t)
				s.answer = func(_ int64, form url.Values) (int, string) {
					body, _ := json.Marshal(map[string]string{"error": "invalid_grant",
						"error_description": "we did not like " + echo.of(form.Get(param))})
					return http.StatusBadRequest, string(body)
				}
				cfg := testConfig(t)
				client := &ClientCredentials{ClientID: "app", Assertion: signed}
				if param == "assertion" {
					cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, JWTBearer: &JWTBearer{TokenURL: s.tokenURL(), Assertion: signed}}
				} else {
					cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, TokenExchange: &TokenExchange{TokenURL: s.tokenURL(),
						SubjectToken: signed, ActorToken: signed, ActorTokenType: tokenTypeJWT, Client: client}}
				}
				logger, logs := testutil.NewLogger()
				cfg.Logger = logger
				c := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 10 * time.Second}
				_, err := c.Get(testutil.HostURL(s.srv, hostAPI, "/v1"))
				oe, ok := errors.AsType[*OAuthError](err)
				if !ok || oe.Code != "invalid_grant" || oe.Description != echoRedacted {
					t.Fatalf("got %v, want an *OAuthError invalid_grant with its description redacted", err)
				}
				sent := s.form(0).Get(param)
				sig := sent[strings.LastIndexByte(sent, '.')+1:]
				if strings.Contains(err.Error()+logs.String(), sig) {
					t.Fatalf("the error or the log shows the %s", param)
				}
			})
		}
	}
}

// Every misconfigured JWTBearer, and every Bearer with more than one source
// of tokens, is a *ConfigError that names the field.
func TestJWTBearerConfigErrors(t *testing.T) {
	t.Parallel()
	a := func(context.Context) (string, error) { return "x", nil }
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jb := func(j JWTBearer) Bearer {
		if j.Issuer == "" && j.TokenURL == "" {
			j.Issuer = "https://as.test"
		}
		return Bearer{JWTBearer: &j}
	}
	cc := &ClientCredentials{Issuer: "https://as.test", ClientID: "c", ClientSecret: "s"}
	te := &TokenExchange{Issuer: "https://as.test", SubjectToken: a}
	for _, tt := range []struct {
		name, field string
		b           Bearer
	}{
		{"no assertion", "Bearer.JWTBearer.Assertion", jb(JWTBearer{})},
		{"no issuer", "Bearer.JWTBearer.Issuer", Bearer{JWTBearer: &JWTBearer{Assertion: a}}},
		{"http token URL", "Bearer.JWTBearer.TokenURL", jb(JWTBearer{TokenURL: "http://as.test/token", Assertion: a})},
		{"bad scope", "Bearer.JWTBearer.Scopes[0]", jb(JWTBearer{Assertion: a, Scopes: []string{"a b"}})},
		{"bad resource", "Bearer.JWTBearer.Resource[0]", jb(JWTBearer{Assertion: a, Resource: []string{"api"}})},
		{"client without id", "Bearer.JWTBearer.Client.ClientID", jb(JWTBearer{Assertion: a, Client: &ClientCredentials{ClientSecret: "s"}})},
		{"client with scopes", "Bearer.JWTBearer.Client.Scopes", jb(JWTBearer{Assertion: a, Client: &ClientCredentials{ClientID: "c", ClientSecret: "s", Scopes: []string{"x"}}})},
		{"client with an issuer", "Bearer.JWTBearer.Client.Issuer", jb(JWTBearer{Assertion: a, Client: &ClientCredentials{ClientID: "c", ClientSecret: "s", Issuer: "https://as.test"}})},
		{"client with two authentications", "Bearer.JWTBearer.Client", jb(JWTBearer{Assertion: a, Client: &ClientCredentials{ClientID: "c", ClientSecret: "s", Key: key}})},
		{"client with no authentication", "Bearer.JWTBearer.Client", jb(JWTBearer{Assertion: a, Client: &ClientCredentials{ClientID: "c"}})},
		{"client credentials with key and assertion", "Bearer.ClientCredentials", Bearer{ClientCredentials: &ClientCredentials{Issuer: "https://as.test", ClientID: "c", Key: key, Assertion: a}}},
		{"client credentials with secret and assertion", "Bearer.ClientCredentials", Bearer{ClientCredentials: &ClientCredentials{Issuer: "https://as.test", ClientID: "c", ClientSecret: "s", Assertion: a}}},
		{"two grants", "Bearer", Bearer{ClientCredentials: cc, JWTBearer: &JWTBearer{Issuer: "https://as.test", Assertion: a}}},
		{"grant and refresh", "Bearer", Bearer{Refresh: tokStaticT("t"), TokenExchange: te}},
		{"exchange and bearer", "Bearer", Bearer{JWTBearer: &JWTBearer{Issuer: "https://as.test", Assertion: a}, TokenExchange: te}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tt.b
			b.Hosts = []string{hostAPI}
			_, err := NewClient(Config{Bearer: &b})
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok || ce.Field != tt.field {
				t.Fatalf("got %v, want a *ConfigError for %s", err, tt.field)
			}
		})
	}
}

// A JWTBearer and a TokenExchange print their URLs as ClientCredentials
// does, without userinfo, query or fragment, and none of their Client's
// secrets.
func TestGrantsPrintNoURLSecret(t *testing.T) {
	t.Parallel()
	var (
		password = secrettest.Canary("issuer-password", 24)
		query    = secrettest.Canary("token-url-query", 24)
		fragment = secrettest.Canary("token-url-fragment", 24)
		secret   = secrettest.Canary("client-secret", 24)
	)
	issuer := "https://client:" + password + "@issuer.test"
	tokenURL := "https://issuer.test/token?api_key=" + query + "#" + fragment
	client := &ClientCredentials{ClientID: "c", ClientSecret: secret}
	secrettest.Check(t, JWTBearer{Issuer: issuer, TokenURL: tokenURL, Client: client}, password, query, fragment, secret)
	secrettest.Check(t, TokenExchange{Issuer: issuer, TokenURL: tokenURL, Client: client}, password, query, fragment, secret)
	secrettest.Check(t, AssertionClaims{Issuer: "i", Audience: tokenURL}, query, fragment)
}

// With DPoP, a JWT bearer token request carries a proof for the token
// endpoint, and the token obtained is sent as a DPoP token.
func TestJWTBearerWithDPoP(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s := newGrantServer(t)
	var apiScheme atomic.Value
	api := s.srv.Config.Handler
	s.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Host, hostAPI) {
			scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			apiScheme.Store(scheme)
		}
		api.ServeHTTP(w, r)
	})
	cfg := testConfig(t)
	cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, DPoP: &DPoP{}, JWTBearer: &JWTBearer{TokenURL: s.tokenURL(),
		Assertion: SignedAssertion(key, AssertionClaims{Issuer: "svc", Subject: "svc"})}}
	if err := s.get(t, cfg); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	proof := s.headers[0].Get("DPoP")
	s.mu.Unlock()
	c := claimsOf(t, proof)
	if c["htm"] != http.MethodPost || c["htu"] != s.tokenURL() {
		t.Fatalf("got a proof for %v %v, want POST %s", c["htm"], c["htu"], s.tokenURL())
	}
	if got := apiScheme.Load(); got != "DPoP" {
		t.Fatalf("got the API request's scheme %v, want DPoP", got)
	}
}
