package securehttp

import (
	"bytes"
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
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/secrettest"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// asServer is an OAuth 2.0 authorization server for tests, on other.test,
// and a resource server on api.test, behind one TLS listener.
type asServer struct {
	t      *testing.T
	srv    *httptest.Server
	issuer string

	// Configuration, set before the first request.
	clientID, secret string
	pub              crypto.PublicKey // private_key_jwt verification key
	wantAlg          string
	metadataIssuer   func(issuer string) string // nil: the real issuer
	rfc8414          bool                       // serve RFC 8414 metadata (else only OpenID)
	token            func(n int64) (status int, body string)
	lifetime         time.Duration
	now              func() time.Time
	tokenPath        atomic.Value // string: the token endpoint's path in the metadata
	mtlsAlias        string       // mtls_endpoint_aliases.token_endpoint in the metadata; "" for none

	mu        sync.Mutex
	issued    map[string]time.Time // token → expiry
	jtis      map[string]bool
	forms     []url.Values
	problems  []string
	discovery atomic.Int64
	tokenReqs atomic.Int64
	aliasReqs atomic.Int64 // token requests to /mtls/token
	apiReqs   atomic.Int64
	expired   atomic.Int64 // API requests that carried an expired or unknown token
}

func newASServer(t *testing.T) *asServer {
	s := &asServer{t: t, clientID: "svc client:1", secret: "p@ss w+rd/é", rfc8414: true,
		lifetime: time.Hour, now: time.Now, issued: map[string]time.Time{}, jtis: map[string]bool{}}
	s.tokenPath.Store("/token")
	s.srv = testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(s.serve))
	s.issuer = testutil.HostURL(s.srv, hostOther, "")
	return s
}

func (s *asServer) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

func (s *asServer) checkNoProblems(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.problems) > 0 {
		t.Fatalf("the authorization server saw %d problems, want none: %q", len(s.problems), s.problems)
	}
}

func (s *asServer) serve(w http.ResponseWriter, r *http.Request) {
	host := strings.Split(r.Host, ":")[0]
	switch {
	case host == hostAPI:
		s.apiReqs.Add(1)
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		exp, known := s.issued[tok]
		s.mu.Unlock()
		if !ok || !known || !s.now().Before(exp) {
			s.expired.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "api ok")
	case r.URL.Path == "/.well-known/oauth-authorization-server" && s.rfc8414,
		r.URL.Path == "/.well-known/openid-configuration":
		s.discovery.Add(1)
		iss := s.issuer
		if s.metadataIssuer != nil {
			iss = s.metadataIssuer(iss)
		}
		md := map[string]any{"issuer": iss, "token_endpoint": s.issuer + s.tokenPath.Load().(string)}
		if s.mtlsAlias != "" {
			md["mtls_endpoint_aliases"] = map[string]any{"token_endpoint": s.mtlsAlias}
		}
		json.NewEncoder(w).Encode(md)
	case r.URL.Path == "/token":
		s.serveToken(w, r)
	case r.URL.Path == "/mtls/token":
		s.aliasReqs.Add(1)
		s.serveToken(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *asServer) serveToken(w http.ResponseWriter, r *http.Request) {
	n := s.tokenReqs.Add(1)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		s.problem("token request: method %s, content type %q", r.Method, r.Header.Get("Content-Type"))
	}
	if err := r.ParseForm(); err != nil {
		s.problem("token request form: %v", err)
	}
	s.mu.Lock()
	s.forms = append(s.forms, r.PostForm)
	s.mu.Unlock()
	if r.PostForm.Get("grant_type") != "client_credentials" {
		s.problem("grant_type %q", r.PostForm.Get("grant_type"))
	}
	if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer") {
		s.problem("the token request carried an access token")
	}
	if s.pub != nil {
		s.checkAssertion(r.PostForm)
	} else if s.secret != "" {
		id, secret, ok := r.BasicAuth()
		// RFC 6749 section 2.3.1: both are form-encoded inside Basic.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if !ok || id != s.clientID || secret != s.secret {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client","error_description":"bad credentials"}`)
			return
		}
	}
	if s.token != nil {
		if status, body := s.token(n); status != 0 {
			w.WriteHeader(status)
			io.WriteString(w, body)
			return
		}
	}
	tok := "at-" + rand.Text()
	s.mu.Lock()
	s.issued[tok] = s.now().Add(s.lifetime)
	s.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(s.lifetime / time.Second)})
}

// checkAssertion verifies a private_key_jwt client assertion as RFC 7523
// asks, with jwt/v5 and the client's public key.
func (s *asServer) checkAssertion(form url.Values) {
	if form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || form.Get("client_id") != s.clientID {
		s.problem("assertion type %q, client_id %q", form.Get("client_assertion_type"), form.Get("client_id"))
	}
	raw := form.Get("client_assertion")
	var claims jwt.MapClaims
	tok, err := jwt.NewParser(jwt.WithValidMethods([]string{s.wantAlg}), jwt.WithIssuer(s.clientID),
		jwt.WithSubject(s.clientID), jwt.WithAudience(s.issuer), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(s.now)).ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return s.pub, nil })
	if err != nil {
		s.problem("assertion: %v", err)
		return
	}
	if kid, _ := tok.Header["kid"].(string); kid != "key-1" {
		s.problem("assertion kid %q, want key-1", kid)
	}
	if _, ok := claims["aud"].(string); !ok {
		s.problem("assertion aud is %T, want a string", claims["aud"])
	}
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	if exp == nil || iat == nil || exp.Sub(iat.Time) > 2*time.Minute {
		s.problem("assertion lifetime too long or missing")
	}
	jti, _ := claims["jti"].(string)
	if b, err := base64.RawURLEncoding.DecodeString(jti); err != nil || len(b) < 12 {
		s.problem("assertion jti %q has under 96 random bits", jti)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jtis[jti] {
		s.problems = append(s.problems, "assertion jti reused")
	}
	s.jtis[jti] = true
}

// ccConfig returns a Config whose Bearer uses client credentials at s.
func (s *asServer) ccConfig(t *testing.T, cc ClientCredentials) Config {
	cfg := testConfig(t)
	if cc.Issuer == "" && cc.TokenURL == "" {
		cc.Issuer = s.issuer
	}
	if cc.ClientID == "" {
		cc.ClientID = s.clientID
	}
	cfg.Bearer = &Bearer{ClientCredentials: &cc, Hosts: []string{hostAPI}, RefreshTimeout: 5 * time.Second}
	return cfg
}

func (s *asServer) get(t *testing.T, c *http.Client) (int, error) {
	t.Helper()
	resp, err := c.Get(testutil.HostURL(s.srv, hostAPI, "/v1/things"))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestClientCredentialsAuthMethods(t *testing.T) {
	t.Parallel()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tt := range []struct {
		name    string
		key     crypto.Signer
		wantAlg string
	}{
		{"client_secret_basic", nil, ""},
		{"private_key_jwt ES256", ecKey, "ES256"},
		{"private_key_jwt EdDSA", edKey, "EdDSA"},
		{"private_key_jwt PS256", rsaKey, "PS256"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newASServer(t)
			cc := ClientCredentials{Scopes: []string{"read", "write"}, Resource: []string{"https://api.test/", "https://other.test/"}}
			if tt.key != nil {
				s.pub, s.wantAlg, s.secret = tt.key.Public(), tt.wantAlg, ""
				cc.Key, cc.KeyID = tt.key, "key-1"
			} else {
				cc.ClientSecret = s.secret
			}
			c := &http.Client{Transport: newTestTransport(t, s.ccConfig(t, cc))}
			for i := range 3 {
				if status, err := s.get(t, c); err != nil || status != http.StatusOK {
					t.Fatalf("request %d: got status %d and error %v, want 200", i, status, err)
				}
			}
			s.checkNoProblems(t)
			if got := s.tokenReqs.Load(); got != 1 {
				t.Fatalf("got %d token requests for 3 API calls with an hour-long token, want 1", got)
			}
			if got := s.discovery.Load(); got != 1 {
				t.Fatalf("got %d metadata requests, want 1", got)
			}
			form := s.forms[0]
			if got := form.Get("scope"); got != "read write" {
				t.Fatalf("got scope %q, want %q", got, "read write")
			}
			if got := form["resource"]; len(got) != 2 || got[0] != "https://api.test/" {
				t.Fatalf("got resource %q, want both indicators", got)
			}
		})
	}
}

// Tokens with a short lifetime, over many lifetimes of traffic on a fake
// clock: each is refreshed ahead of its expiry (known only from
// expires_in: the tokens are opaque), and the API never sees an expired one.
func TestClientCredentialsOpaqueExpiry(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	s := newASServer(t)
	s.lifetime, s.now = 5*time.Second, clk.Now
	tr := newTestTransport(t, s.ccConfig(t, ClientCredentials{ClientSecret: s.secret}))
	tr.now = clk.Now
	c := &http.Client{Transport: tr}
	const step, total = 250 * time.Millisecond, 15 * time.Second
	for elapsed := time.Duration(0); elapsed < total; elapsed += step {
		if status, err := s.get(t, c); err != nil || status != http.StatusOK {
			t.Fatalf("at %v: got status %d and error %v, want 200", elapsed, status, err)
		}
		tokWaitIdle(t, tr)
		clk.Add(step)
	}
	if n := s.expired.Load(); n != 0 {
		t.Fatalf("the API got %d requests with an expired token, want 0", n)
	}
	// 15 s of 5 s tokens, each refreshed ahead of expiry: at least 3.
	if n := s.tokenReqs.Load(); n < 3 || n > 8 {
		t.Fatalf("got %d token requests over 15 s of 5 s tokens, want 3 to 8", n)
	}
}

func TestClientCredentialsDiscovery(t *testing.T) {
	t.Parallel()
	t.Run("issuer mismatch refused before any token request", func(t *testing.T) {
		t.Parallel()
		s := newASServer(t)
		s.metadataIssuer = func(string) string { return "https://evil.test" }
		c := &http.Client{Transport: newTestTransport(t, s.ccConfig(t, ClientCredentials{ClientSecret: s.secret}))}
		_, err := s.get(t, c)
		tokWantRefused(t, err, int(s.apiReqs.Load()), ErrIssuerMismatch)
		if n := s.tokenReqs.Load(); n != 0 {
			t.Fatalf("got %d token requests, want 0", n)
		}
	})
	t.Run("trailing slash is another issuer", func(t *testing.T) {
		t.Parallel()
		s := newASServer(t)
		s.metadataIssuer = func(iss string) string { return iss + "/" }
		c := &http.Client{Transport: newTestTransport(t, s.ccConfig(t, ClientCredentials{ClientSecret: s.secret}))}
		_, err := s.get(t, c)
		tokWantRefused(t, err, int(s.apiReqs.Load()), ErrIssuerMismatch)
	})
	t.Run("OpenID discovery when RFC 8414 is not served", func(t *testing.T) {
		t.Parallel()
		s := newASServer(t)
		s.rfc8414 = false
		c := &http.Client{Transport: newTestTransport(t, s.ccConfig(t, ClientCredentials{ClientSecret: s.secret}))}
		if status, err := s.get(t, c); err != nil || status != http.StatusOK {
			t.Fatalf("got status %d and error %v, want 200", status, err)
		}
	})
	t.Run("TokenURL skips discovery", func(t *testing.T) {
		t.Parallel()
		s := newASServer(t)
		c := &http.Client{Transport: newTestTransport(t, s.ccConfig(t, ClientCredentials{Issuer: s.issuer, TokenURL: s.issuer + "/token", ClientSecret: s.secret}))}
		if status, err := s.get(t, c); err != nil || status != http.StatusOK {
			t.Fatalf("got status %d and error %v, want 200", status, err)
		}
		if n := s.discovery.Load(); n != 0 {
			t.Fatalf("got %d metadata requests, want 0", n)
		}
	})
	t.Run("metadata read again after the endpoint fails", func(t *testing.T) {
		t.Parallel()
		clk := tokNewClock()
		s := newASServer(t)
		s.tokenPath.Store("/moved")
		tr := newTestTransport(t, s.ccConfig(t, ClientCredentials{ClientSecret: s.secret}))
		tr.now = clk.Now
		c := &http.Client{Transport: tr}
		if _, err := s.get(t, c); err == nil {
			t.Fatal("got no error from a token endpoint that answers 404, want one")
		}
		s.tokenPath.Store("/token")
		clk.Add(2 * time.Minute) // past the refresh backoff
		if status, err := s.get(t, c); err != nil || status != http.StatusOK {
			t.Fatalf("after the metadata changed: got status %d and error %v, want 200", status, err)
		}
		if n := s.discovery.Load(); n != 2 {
			t.Fatalf("got %d metadata requests, want 2: one per token endpoint failure", n)
		}
	})
	t.Run("pin failure on the authorization server", func(t *testing.T) {
		t.Parallel()
		s := newASServer(t)
		cfg := s.ccConfig(t, ClientCredentials{ClientSecret: s.secret})
		cfg.Pins = []PinSet{{Host: hostOther, Pins: []string{"sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}}
		c := &http.Client{Transport: newTestTransport(t, cfg)}
		_, err := s.get(t, c)
		tokWantRefused(t, err, int(s.apiReqs.Load()), ErrPinMismatch)
		if n := s.discovery.Load() + s.tokenReqs.Load(); n != 0 {
			t.Fatalf("the pinned-out server answered %d requests, want 0", n)
		}
	})
}

// With a client certificate, token requests go to the metadata's
// mtls_endpoint_aliases.token_endpoint (RFC 8705 section 5), which is held
// to the rules of token_endpoint: https, no userinfo, and the egress
// policy. Without a client certificate, the alias is not used.
func TestClientCredentialsMTLSEndpointAlias(t *testing.T) {
	t.Parallel()
	cert := testpki.TLSCertificate(newClientLeaf(t, testpki.Options{}))
	for _, tt := range []struct {
		name      string
		alias     func(issuer string) string
		noCert    bool
		allow     []string // Config.AllowHosts
		fails     bool     // the request fails
		wantErr   error    // and its error matches this, when not nil
		wantAlias int64    // token requests at the alias
		wantPlain int64    // token requests at token_endpoint
	}{
		{"alias used", func(iss string) string { return iss + "/mtls/token" }, false, nil, false, nil, 1, 0},
		{"no client certificate", func(iss string) string { return iss + "/mtls/token" }, true, nil, false, nil, 0, 1},
		{"plain HTTP alias", func(iss string) string { return "http" + strings.TrimPrefix(iss, "https") + "/mtls/token" }, false, nil, true, ErrInsecureScheme, 0, 0},
		{"alias with userinfo", func(iss string) string { return strings.Replace(iss, "https://", "https://u:pw@", 1) + "/mtls/token" }, false, nil, true, nil, 0, 0},
		{"alias outside AllowHosts", func(string) string { return "https://elsewhere.test/mtls/token" }, false, []string{hostAPI, hostOther}, true, ErrHostNotAllowed, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newASServer(t)
			s.mtlsAlias = tt.alias(s.issuer)
			cfg := s.ccConfig(t, ClientCredentials{ClientSecret: s.secret})
			cfg.AllowHosts = tt.allow
			if !tt.noCert {
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
			}
			c := &http.Client{Transport: newTestTransport(t, cfg)}
			status, err := s.get(t, c)
			switch {
			case !tt.fails && (err != nil || status != http.StatusOK):
				t.Fatalf("got status %d and error %v, want 200", status, err)
			case tt.fails && err == nil, tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("got status %d and error %v, want an error matching %v", status, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "pw@") {
				t.Fatalf("the error %q shows the alias's userinfo", err)
			}
			if got, want := [2]int64{s.aliasReqs.Load(), s.tokenReqs.Load() - s.aliasReqs.Load()}, [2]int64{tt.wantAlias, tt.wantPlain}; got != want {
				t.Fatalf("got %d token requests at the alias and %d at token_endpoint, want %d and %d", got[0], got[1], want[0], want[1])
			}
			s.checkNoProblems(t)
		})
	}
}

func TestClientCredentialsErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		status    int
		body      string
		wantCode  string // an *OAuthError with this code, or "" for another error
		wantCalls int64
	}{
		{"invalid_client", 401, `{"error":"invalid_client","error_description":"unknown client\u0000\n"}`, "invalid_client", 1},
		{"invalid_grant", 400, `{"error":"invalid_grant"}`, "invalid_grant", 1},
		{"error without JSON", 400, `<html>nope</html>`, "(no OAuth error in the response)", 1},
		{"5xx is retried", 503, `busy`, "", (tokenRequestRetries + 1)},
		{"token_type mac", 200, `{"access_token":"abc","token_type":"mac","expires_in":60}`, "", 1},
		{"no token_type", 200, `{"access_token":"abc","expires_in":60}`, "", 1},
		{"no access_token", 200, `{"token_type":"Bearer","expires_in":60}`, "", 1},
		{"access_token not a string", 200, `{"access_token":42,"token_type":"Bearer"}`, "", 1},
		{"negative expires_in", 200, `{"access_token":"abc","token_type":"Bearer","expires_in":-5}`, "", 1},
		{"trailing data", 200, `{"access_token":"abc","token_type":"Bearer"} {"x":1}`, "", 1},
		{"not JSON", 200, `access_token=abc`, "", 1},
		{"huge body", 200, `{"access_token":"` + strings.Repeat("a", maxTokenResponse) + `","token_type":"Bearer"}`, "", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newASServer(t)
			s.token = func(int64) (int, string) { return tt.status, tt.body }
			c := &http.Client{Transport: newTestTransport(t, s.ccConfig(t, ClientCredentials{ClientSecret: s.secret}))}
			_, err := s.get(t, c)
			tokWantRefused(t, err, int(s.apiReqs.Load()))
			var oe *OAuthError
			if tt.wantCode != "" {
				if !errors.As(err, &oe) || oe.Code != tt.wantCode || oe.StatusCode != tt.status {
					t.Fatalf("got error %v, want an *OAuthError %d %s", err, tt.status, tt.wantCode)
				}
				if strings.ContainsAny(oe.Description, "\x00\n") {
					t.Fatalf("got description %q, want control characters removed", oe.Description)
				}
			} else if errors.As(err, &oe) {
				t.Fatalf("got *OAuthError %v, want another error", oe)
			}
			if got := s.tokenReqs.Load(); got != tt.wantCalls {
				t.Fatalf("got %d token requests, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestClientCredentialsConfig(t *testing.T) {
	t.Parallel()
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, tt := range []struct {
		name, field string
		b           Bearer
	}{
		{"no client id", "Bearer.ClientCredentials.ClientID", Bearer{ClientCredentials: &ClientCredentials{Issuer: "https://as.test", ClientSecret: "s"}}},
		{"no issuer", "Bearer.ClientCredentials.Issuer", Bearer{ClientCredentials: &ClientCredentials{ClientID: "c", ClientSecret: "s"}}},
		{"http issuer", "Bearer.ClientCredentials.Issuer", Bearer{ClientCredentials: &ClientCredentials{Issuer: "http://as.test", ClientID: "c", ClientSecret: "s"}}},
		{"issuer with query", "Bearer.ClientCredentials.Issuer", Bearer{ClientCredentials: &ClientCredentials{Issuer: "https://as.test/?a=b", ClientID: "c", ClientSecret: "s"}}},
		{"http token URL", "Bearer.ClientCredentials.TokenURL", Bearer{ClientCredentials: &ClientCredentials{TokenURL: "http://as.test/token", ClientID: "c", ClientSecret: "s"}}},
		{"RSA-1024 key", "Bearer.ClientCredentials.Key", Bearer{ClientCredentials: &ClientCredentials{Issuer: "https://as.test", ClientID: "c", Key: weak}}},
		{"no authentication", "Bearer.ClientCredentials", Bearer{ClientCredentials: &ClientCredentials{Issuer: "https://as.test", ClientID: "c"}}},
		{"bad scope", "Bearer.ClientCredentials.Scopes[0]", Bearer{ClientCredentials: &ClientCredentials{Issuer: "https://as.test", ClientID: "c", ClientSecret: "s", Scopes: []string{"a b"}}}},
		{"both sources", "Bearer", Bearer{Refresh: tokStaticT("x"), ClientCredentials: &ClientCredentials{Issuer: "https://as.test", ClientID: "c", ClientSecret: "s"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tt.b
			b.Hosts = []string{hostAPI}
			_, err := newTransport(Config{Bearer: &b})
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("got error %v, want a *ConfigError for %s", err, tt.field)
			}
			if strings.Contains(err.Error(), `"s"`) {
				t.Fatalf("the error %q shows the client secret", err)
			}
		})
	}
}

// No secret, assertion or token reaches the logs, the errors or fmt.
func TestClientCredentialsSecretsNotLeaked(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s := newASServer(t)
	s.pub, s.wantAlg, s.secret = key.Public(), "ES256", ""
	var fail atomic.Bool
	s.token = func(int64) (int, string) {
		if fail.Load() {
			return 400, `{"error":"invalid_client"}`
		}
		return 0, ""
	}
	cc := ClientCredentials{Key: key, KeyID: "key-1"}
	cfg := s.ccConfig(t, cc)
	// One way to authenticate is allowed, but a struct printed may hold both.
	printed := ClientCredentials{Key: key, KeyID: "key-1", ClientSecret: "never-printed-secret"}
	logger, logs := testutil.NewLogger()
	cfg.Logger = logger
	tr := newTestTransport(t, cfg)
	c := &http.Client{Transport: tr}
	if status, err := s.get(t, c); err != nil || status != http.StatusOK {
		t.Fatalf("got status %d and error %v, want 200", status, err)
	}
	fail.Store(true)
	tr.bearer.invalidate(tr.bearer.cur.raw)
	_, err := s.get(t, c)
	if err == nil {
		t.Fatal("got no error after the server refused the client, want one")
	}
	s.mu.Lock()
	var secrets []string
	for tok := range s.issued {
		secrets = append(secrets, tok)
	}
	for _, f := range s.forms {
		secrets = append(secrets, f.Get("client_assertion"))
	}
	s.mu.Unlock()
	secrets = append(secrets, printed.ClientSecret)
	text := logs.String() + err.Error() + fmt.Sprintf("%v %+v %#v %v", &printed, &printed, &printed, cfg.Bearer)
	for _, sec := range secrets {
		for _, part := range strings.Split(sec, ".") {
			if len(part) >= 8 && strings.Contains(text, part) {
				t.Fatalf("a secret appears in logs, errors or fmt output:\n%s", text)
			}
		}
	}
	if !strings.Contains(logs.String(), "token request") {
		t.Fatalf("the log has no token request event, want one; log:\n%s", logs.String())
	}
}

// soakSetting reads a duration or a count for TestNoRequestFailsWhileTokenEndpointResetsStreams
// from the environment, for a longer run by hand.
func soakSetting(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n)
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

// A token endpoint that, from 40% to 75% of each token's life, resets the
// HTTP/2 stream of every token request without answering (as a load
// balancer does during a deploy) costs no request: the token requests are
// retried, and the refresh is tried again before the token in use stops
// being usable. Many workers call the API with short-lived tokens: with 2 s
// tokens the refresh is due in the middle of the resets, with 3 s tokens a
// whole token request with its retries falls inside them.
//
// It runs a few seconds; for a longer run by hand, set
// SECUREHTTP_SOAK_DURATION (such as 30s), SECUREHTTP_SOAK_WORKERS (16) and
// SECUREHTTP_SOAK_TOKEN_TTL (6s, whole seconds).
func TestNoRequestFailsWhileTokenEndpointResetsStreams(t *testing.T) {
	t.Parallel()
	duration := soakSetting(t, "SECUREHTTP_SOAK_DURATION", 4*time.Second)
	workers := int(soakSetting(t, "SECUREHTTP_SOAK_WORKERS", 8))
	ttls := []time.Duration{2 * time.Second, 3 * time.Second}
	if os.Getenv("SECUREHTTP_SOAK_TOKEN_TTL") != "" {
		ttls = []time.Duration{soakSetting(t, "SECUREHTTP_SOAK_TOKEN_TTL", 0)}
	}
	for _, ttl := range ttls {
		if ttl < time.Second || ttl%time.Second != 0 || workers < 1 {
			t.Fatalf("token lifetime %v and %d workers: want whole seconds and at least one worker", ttl, workers)
		}
		t.Run(ttl.String()+" tokens", func(t *testing.T) {
			t.Parallel()
			soakTokenResets(t, duration, workers, ttl)
		})
	}
}

func soakTokenResets(t *testing.T, duration time.Duration, workers int, ttl time.Duration) {
	var (
		mu         sync.Mutex
		issued     = map[string]time.Time{} // token → when it stops being accepted
		lastIssued time.Time
		tokenReqs  atomic.Int64
		resets     atomic.Int64
	)
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		if r.URL.Path == "/token" {
			tokenReqs.Add(1)
			mu.Lock()
			age := now.Sub(lastIssued)
			mu.Unlock()
			if age >= ttl*40/100 && age < ttl*75/100 {
				resets.Add(1)
				panic(http.ErrAbortHandler) // RST_STREAM INTERNAL_ERROR, no answer
			}
			tok := "at-" + rand.Text()
			mu.Lock()
			issued[tok], lastIssued = now.Add(ttl), now
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl / time.Second)})
			return
		}
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		exp, ok := issued[tok]
		mu.Unlock()
		if !ok || !now.Before(exp) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	}))
	cfg := testConfig(t)
	cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, RefreshTimeout: 10 * time.Second,
		ClientCredentials: &ClientCredentials{TokenURL: testutil.HostURL(srv, hostOther, "/token"), ClientID: "c", ClientSecret: "s"}}
	c := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}
	api := testutil.HostURL(srv, hostAPI, "/v1")

	var (
		requests, failed atomic.Int64
		firstFailure     atomic.Value
		wg               sync.WaitGroup
	)
	deadline := time.Now().Add(duration)
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				requests.Add(1)
				resp, err := c.Get(api)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	tokens := len(issued)
	mu.Unlock()
	t.Logf("%d workers, %v, %v tokens: %d requests, %d failed; %d token requests, %d reset, %d tokens issued",
		workers, duration, ttl, requests.Load(), failed.Load(), tokenReqs.Load(), resets.Load(), tokens)
	if n := failed.Load(); n != 0 {
		t.Errorf("got %d failed requests of %d (first: %v), want 0", n, requests.Load(), firstFailure.Load())
	}
	// Without resets and refreshes, the run proves nothing.
	if resets.Load() == 0 || tokens < int(duration/ttl) {
		t.Errorf("got %d token requests reset and %d tokens issued in %v of %v tokens, want resets and at least %d tokens",
			resets.Load(), tokens, duration, ttl, int(duration/ttl))
	}
}

// A ClientCredentials prints its Issuer and TokenURL as it logs a URL:
// without userinfo, query or fragment, which may hold a password or a key
// put there by mistake, before NewTransport refuses it or not.
func TestClientCredentialsPrintsNoURLSecret(t *testing.T) {
	t.Parallel()
	var (
		password = secrettest.Canary("issuer-password", 24)
		query    = secrettest.Canary("token-url-query", 24)
		fragment = secrettest.Canary("token-url-fragment", 24)
	)
	cc := ClientCredentials{
		Issuer:   "https://client:" + password + "@issuer.test",
		TokenURL: "https://issuer.test/token?api_key=" + query + "#" + fragment,
		ClientID: "client",
	}
	secrettest.Check(t, cc, password, query, fragment)
}

// A ClientCredentials held by value, as in an application's own config
// struct, prints no secret either: not the client secret, not the private
// key, with any verb and as an slog value.
func TestClientCredentialsValueRedacted(t *testing.T) {
	t.Parallel()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "app-config-client-secret-value"
	cc := ClientCredentials{Issuer: "https://as.test", ClientID: "svc", Key: key, ClientSecret: secret}
	type appConfig struct {
		Name  string
		OAuth ClientCredentials
	}
	app := appConfig{Name: "app", OAuth: cc}

	var logged bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logged, nil))
	logger.Info("config", "cc", cc, "app", app)
	var jsonLogged bytes.Buffer
	// The JSON handler marshals a struct field by field, and a pointer
	// field with it: LogValue is not consulted there.
	ptr := struct{ OAuth *ClientCredentials }{&cc}
	slog.New(slog.NewJSONHandler(&jsonLogged, nil)).Info("config", "cc", cc, "ptr", ptr)

	outputs := map[string]string{
		"slog text": logged.String(),
		"slog json": jsonLogged.String(),
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		outputs[verb] = fmt.Sprintf(verb, cc)
		outputs[verb+" nested"] = fmt.Sprintf(verb, app)
	}
	// The key as fmt prints a byte slice, in decimal, hex and base64.
	keyForms := []string{
		strings.Trim(fmt.Sprint([]byte(key[:8])), "[]"),
		fmt.Sprintf("%x", []byte(key[:8])),
		base64.StdEncoding.EncodeToString(key[:12]),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) {
			t.Errorf("%s: got %q, want no client secret", name, out)
		}
		for _, k := range keyForms {
			if strings.Contains(out, k) {
				t.Errorf("%s: got %q, want no private key bytes (found %q)", name, out, k)
			}
		}
	}
}

// A lying authorization server: metadata naming a plain-HTTP or userinfo
// token endpoint, or a token endpoint that redirects elsewhere. No client
// secret leaves for anywhere but the token endpoint, and the redirect is
// not followed.
func TestClientCredentialsLyingAuthorizationServer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		endpoint   func(issuer, api string) string // the metadata's token_endpoint
		wantTokens int64                           // requests to /token
	}{
		{"plain-HTTP token endpoint", func(issuer, _ string) string { return strings.Replace(issuer, "https:", "http:", 1) + "/token" }, 0},
		{"token endpoint with userinfo", func(issuer, _ string) string {
			return strings.Replace(issuer, "https://", "https://u:p@", 1) + "/token"
		}, 0},
		{"token endpoint redirects to the API host", func(issuer, _ string) string { return issuer + "/token" }, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var tokens, steals atomic.Int64
			var srv *httptest.Server
			srv = testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				issuer, api := testutil.HostURL(srv, hostOther, ""), testutil.HostURL(srv, hostAPI, "")
				switch {
				case strings.HasPrefix(r.Host, hostAPI):
					steals.Add(1)
				case r.URL.Path == "/.well-known/oauth-authorization-server":
					fmt.Fprintf(w, `{"issuer":%q,"token_endpoint":%q}`, issuer, tt.endpoint(issuer, api))
				case r.URL.Path == "/token":
					tokens.Add(1)
					http.Redirect(w, r, api+"/steal", http.StatusTemporaryRedirect)
				default:
					http.NotFound(w, r)
				}
			}))
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{
				ClientCredentials: &ClientCredentials{Issuer: testutil.HostURL(srv, hostOther, ""), ClientID: "c", ClientSecret: "s"},
				Hosts:             []string{hostAPI},
			}
			_, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/v1"))
			if !errors.Is(err, ErrNoToken) {
				t.Errorf("got %v, want ErrNoToken", err)
			}
			if got := tokens.Load(); got != tt.wantTokens {
				t.Errorf("got %d token requests, want %d", got, tt.wantTokens)
			}
			if got := steals.Load(); got != 0 {
				t.Errorf("the API host got %d requests, want none", got)
			}
		})
	}
}

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

// TestTokenEndpointErrorsNameTheEndpoint: with the API and the authorization
// server on one address, a user must tell which failed. A token endpoint's
// error names it (scheme, host, port and path; never its query) and, for
// invalid_client, the credential to check for the way the client
// authenticates.
func TestTokenEndpointErrorsNameTheEndpoint(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		status     int
		body       string
		cc         func(s *asServer) ClientCredentials
		wantHint   string
		wantOAuth  bool
		wantStatus string
	}{
		{"invalid_client with a secret", 401, `{"error":"invalid_client"}`,
			func(s *asServer) ClientCredentials { return ClientCredentials{ClientSecret: s.secret} },
			"check ClientCredentials.ClientID and ClientSecret", true, "answered 401 invalid_client"},
		{"invalid_client with a key", 401, `{"error":"invalid_client"}`,
			func(s *asServer) ClientCredentials { return ClientCredentials{Key: key, KeyID: "k1"} },
			`the public key of Key (KeyID "k1")`, true, "answered 401 invalid_client"},
		{"404 without an OAuth error", 404, `not here`,
			func(s *asServer) ClientCredentials { return ClientCredentials{ClientSecret: s.secret} },
			"", true, "answered 404"},
		{"5xx", 503, `busy`,
			func(s *asServer) ClientCredentials { return ClientCredentials{ClientSecret: s.secret} },
			"", false, "answered 503"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newASServer(t)
			s.pub = key.Public()
			s.token = func(int64) (int, string) { return tt.status, tt.body }
			cc := tt.cc(s)
			cc.TokenURL = s.issuer + "/token?tenant=QSECRET"
			c := &http.Client{Transport: newTestTransport(t, s.ccConfig(t, cc))}
			_, err := s.get(t, c)
			if !errors.Is(err, ErrNoToken) {
				t.Fatalf("got %v, want a refused token", err)
			}
			msg := err.Error()
			for _, want := range []string{s.issuer + "/token", tt.wantStatus, tt.wantHint} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if strings.Contains(msg, "QSECRET") {
				t.Errorf("error %q quotes the endpoint's query", msg)
			}
			if _, ok := errors.AsType[*OAuthError](err); ok != tt.wantOAuth {
				t.Errorf("got an *OAuthError %v, want %v", ok, tt.wantOAuth)
			}
		})
	}
}

// TestTokenEndpointPinMismatchSaysSoFirst: when the token endpoint's chain
// matches no pin, the error says so first, names the token endpoint's host
// and port, and gives a pins command that works as printed; it does not
// read as a token problem.
func TestTokenEndpointPinMismatchSaysSoFirst(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, role string
		tokenURL   bool
	}{
		{"token endpoint", "the token endpoint", true},
		{"discovery", "the authorization server", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newASServer(t)
			cc := ClientCredentials{ClientSecret: s.secret}
			if tt.tokenURL {
				cc.TokenURL = s.issuer + "/token"
			}
			cfg := s.ccConfig(t, cc)
			cfg.Pins = []PinSet{{Host: hostOther, Pins: []string{fakePin('A'), fakePin('B')}}}
			cfg.Logger = slog.New(slog.DiscardHandler)
			_, err := s.get(t, &http.Client{Transport: newTestTransport(t, cfg)})
			if !errors.Is(err, ErrPinMismatch) || !errors.Is(err, ErrNoToken) {
				t.Fatalf("got %v, want a pin mismatch that left no token", err)
			}
			addr := strings.TrimPrefix(s.issuer, "https://")
			msg := err.Error()
			if _, rest, _ := strings.Cut(msg, ": "); !strings.HasPrefix(rest, "securehttp: certificate pin mismatch") {
				t.Errorf("error %q does not start with the pin mismatch", msg)
			}
			for _, want := range []string{"at " + tt.role + " " + addr, `"securehttp pins --cacert FILE https://` + addr + `/"`} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
		})
	}
}
