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
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// dpopProof is a DPoP proof as an independent JOSE library (go-jose) reads
// it, after checking its signature against the key in its own header.
type dpopProof struct {
	jkt    string // RFC 7638 thumbprint of the proof's jwk
	claims map[string]any
	nonce  string
}

// dpopHTU is the htu a server expects for r: https, its host without the
// default port, its path.
func dpopHTU(r *http.Request) string {
	return "https://" + strings.TrimSuffix(strings.ToLower(r.Host), ":443") + r.URL.EscapedPath()
}

// verifyDPoPProof checks r's DPoP proof as RFC 9449 section 4.3 asks: one
// header, typ dpop+jwt, an asymmetric alg, a public jwk only, a signature
// that verifies with it, htm and htu of r, iat within 60 s of now, a jti of
// at least 96 bits, and ath for accessToken (absent when it is "").
func verifyDPoPProof(r *http.Request, accessToken string, now time.Time) (*dpopProof, error) {
	values := r.Header.Values("DPoP")
	if len(values) != 1 {
		return nil, fmt.Errorf("got %d DPoP headers, want 1", len(values))
	}
	raw := values[0]
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.PS256})
	if err != nil {
		return nil, fmt.Errorf("parsing the proof: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("got %d signatures, want 1", len(jws.Signatures))
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return nil, fmt.Errorf("got typ %q, want dpop+jwt", typ)
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() || !h.JSONWebKey.Valid() {
		return nil, errors.New("no valid public jwk in the header")
	}
	var head map[string]json.RawMessage
	seg, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err := json.Unmarshal(seg, &head); err != nil || len(head) != 3 {
		return nil, fmt.Errorf("got header members %v, want exactly typ, alg and jwk", slices.Collect(maps.Keys(head)))
	}
	var jwk map[string]any
	if err := json.Unmarshal(head["jwk"], &jwk); err != nil {
		return nil, err
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, ok := jwk[private]; ok {
			return nil, fmt.Errorf("the jwk carries the private member %q", private)
		}
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return nil, fmt.Errorf("signature: %v", err)
	}
	tp, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	p := &dpopProof{jkt: base64.RawURLEncoding.EncodeToString(tp)}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&p.claims); err != nil {
		return nil, fmt.Errorf("claims: %v", err)
	}
	want := map[string]bool{"jti": true, "htm": true, "htu": true, "iat": true, "ath": accessToken != "", "nonce": false}
	for k := range p.claims {
		if _, known := want[k]; !known {
			return nil, fmt.Errorf("unexpected claim %q", k)
		}
	}
	jti, _ := p.claims["jti"].(string)
	if b, err := base64.RawURLEncoding.DecodeString(jti); err != nil || len(b) < 12 {
		return nil, fmt.Errorf("got jti of %d bytes, want at least 12 (96 bits)", len(b))
	}
	if htm := p.claims["htm"]; htm != r.Method {
		return nil, fmt.Errorf("got htm %v, want %s", htm, r.Method)
	}
	if htu := p.claims["htu"]; htu != dpopHTU(r) {
		return nil, fmt.Errorf("got htu %v, want %s", htu, dpopHTU(r))
	}
	iatNum, _ := p.claims["iat"].(json.Number)
	iat, err := iatNum.Int64()
	if err != nil {
		return nil, fmt.Errorf("got iat %v, want a whole number", p.claims["iat"])
	}
	if d := now.Sub(time.Unix(iat, 0)); d > 60*time.Second || d < -60*time.Second {
		return nil, fmt.Errorf("got iat %v away from now, want within 60 s", d)
	}
	ath, hasATH := p.claims["ath"]
	switch {
	case accessToken == "" && hasATH:
		return nil, errors.New("ath on a request without an access token")
	case accessToken != "":
		sum := sha256.Sum256([]byte(accessToken))
		if ath != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return nil, errors.New("ath is not the hash of the access token")
		}
	}
	if n, ok := p.claims["nonce"]; ok {
		if p.nonce, _ = n.(string); p.nonce == "" {
			return nil, errors.New("empty nonce claim")
		}
	}
	return p, nil
}

// dpopServer is an authorization server on other.test (POST /token,
// client credentials with private_key_jwt) and a resource server on
// api.test, behind one TLS listener. Both verify every DPoP proof with
// go-jose and demand their own nonce; the resource server rotates its nonce
// once, after rotateAfter accepted requests. Access tokens are JWTs bound
// to the proof's key by cnf.jkt.
type dpopServer struct {
	srv         *httptest.Server
	clientKey   *ecdsa.PrivateKey
	tokenType   string // the token_type issued; "DPoP" unless a test lies
	rotateAfter int64  // resource requests accepted before the nonce rotates; 0: never
	lifetime    time.Duration
	// rotateASNonce makes the authorization server ask for a new nonce on
	// every token request.
	rotateASNonce bool
	api           func(w http.ResponseWriter, r *http.Request, n int64) bool // optional: true when it answered

	mu       sync.Mutex
	jtis     map[string]bool // every proof jti and assertion jti seen
	problems []string
	rsNonce  string
	asNonce  string
	rotated  bool
	jkts     map[string]bool // the thumbprints of every proof key seen

	tokenReqs, tokenNonceErrs atomic.Int64
	apiReqs, apiNonceErrs     atomic.Int64
	apiOK                     atomic.Int64
}

func newDPoPServer(t *testing.T) *dpopServer {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &dpopServer{clientKey: key, tokenType: "DPoP", lifetime: time.Hour, jtis: map[string]bool{},
		jkts: map[string]bool{}, rsNonce: "rs-" + rand.Text(), asNonce: "as-" + rand.Text()}
	s.srv = testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(s.serve))
	return s
}

func (s *dpopServer) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

func (s *dpopServer) checkNoProblems(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.problems) > 0 {
		t.Fatalf("the servers saw %d problems, want none: %q", len(s.problems), s.problems)
	}
}

// fresh records jti and reports whether it is new in this run.
func (s *dpopServer) fresh(jti string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jtis[jti] {
		return false
	}
	s.jtis[jti] = true
	return true
}

func (s *dpopServer) tokenURL() string { return testutil.HostURL(s.srv, hostOther, "/token") }

func (s *dpopServer) url(path string) string { return testutil.HostURL(s.srv, hostAPI, path) }

func (s *dpopServer) serve(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.Host)
	switch {
	case host == hostOther && r.URL.Path == "/token":
		s.serveToken(w, r)
	case host == hostAPI:
		s.serveAPI(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *dpopServer) serveToken(w http.ResponseWriter, r *http.Request) {
	s.tokenReqs.Add(1)
	if r.Header.Get("Authorization") != "" {
		s.problem("the token request carried an Authorization header")
	}
	p, err := verifyDPoPProof(r, "", time.Now())
	if err != nil {
		s.problem("token request proof: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_dpop_proof"}`)
		return
	}
	if !s.fresh(p.claims["jti"].(string)) {
		s.problem("token request proof jti reused")
	}
	if err := r.ParseForm(); err != nil {
		s.problem("token form: %v", err)
	}
	// RFC 7523: the assertion is verified and its jti accepted once, so a
	// nonce retry needs a new assertion.
	var ac jwt.RegisteredClaims
	if _, err := jwt.ParseWithClaims(r.PostForm.Get("client_assertion"), &ac, func(*jwt.Token) (any, error) {
		return &s.clientKey.PublicKey, nil
	}, jwt.WithValidMethods([]string{"ES256"})); err != nil {
		s.problem("client assertion: %v", err)
	} else if !s.fresh(ac.ID) {
		s.problem("client assertion jti reused")
	}
	s.mu.Lock()
	if s.rotateASNonce {
		s.asNonce = "as-" + rand.Text()
	}
	nonce := s.asNonce
	s.mu.Unlock()
	if p.nonce != nonce {
		s.tokenNonceErrs.Add(1)
		w.Header().Set("DPoP-Nonce", nonce)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}`)
		return
	}
	now := time.Now()
	at, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://" + hostOther, "sub": "client", "iat": now.Unix(), "exp": now.Add(s.lifetime).Unix(),
		"jti": rand.Text(), "cnf": map[string]string{"jkt": p.jkt},
	}).SignedString(tokKey())
	if err != nil {
		s.problem("minting: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": at, "token_type": s.tokenType, "expires_in": int(s.lifetime / time.Second)})
}

// serveAPI is the resource server: RFC 9449 sections 7 and 9.
func (s *dpopServer) serveAPI(w http.ResponseWriter, r *http.Request) {
	n := s.apiReqs.Add(1)
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if scheme != "DPoP" {
		s.problem("request %d: got Authorization scheme %q, want DPoP", n, scheme)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var claims struct {
		jwt.RegisteredClaims
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if _, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return tokKey(), nil },
		jwt.WithValidMethods([]string{"HS256"})); err != nil {
		s.problem("request %d: access token: %v", n, err)
		w.Header().Set("WWW-Authenticate", `DPoP error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	p, err := verifyDPoPProof(r, tok, time.Now())
	if err != nil {
		s.problem("request %d: proof: %v", n, err)
		w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if !s.fresh(p.claims["jti"].(string)) {
		s.problem("request %d: proof jti reused", n)
	}
	if claims.Cnf.JKT != p.jkt {
		s.problem("request %d: token cnf.jkt is not the proof key's thumbprint", n)
	}
	s.mu.Lock()
	s.jkts[p.jkt] = true
	if !s.rotated && s.rotateAfter > 0 && s.apiOK.Load() >= s.rotateAfter {
		s.rotated = true
		s.rsNonce = "rs-" + rand.Text()
	}
	nonce := s.rsNonce
	s.mu.Unlock()
	w.Header().Set("DPoP-Nonce", nonce)
	if p.nonce != nonce {
		s.apiNonceErrs.Add(1)
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if s.api != nil && s.api(w, r, n) {
		return
	}
	s.apiOK.Add(1)
	body, _ := io.ReadAll(r.Body)
	w.Write(body)
}

// config returns a Config whose Bearer obtains DPoP-bound tokens from s
// with private_key_jwt, with the DPoP key d.
func (s *dpopServer) config(t *testing.T, d *DPoP) Config {
	cfg := testConfig(t)
	cfg.Bearer = &Bearer{
		ClientCredentials: &ClientCredentials{TokenURL: s.tokenURL(), ClientID: "dpop-client", Key: s.clientKey},
		Hosts:             []string{hostAPI},
		RefreshTimeout:    5 * time.Second,
		DPoP:              d,
	}
	return cfg
}

// dpopGet sends a request and returns the status and body.
func dpopDo(t *testing.T, c *http.Client, method, u string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	status, got, err := tokDo(c, req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return status, got
}

// TestDPoPEndToEnd obtains a DPoP-bound token with client credentials
// (the authorization server demands a nonce first) and calls a resource
// server that verifies every proof with go-jose, demands its own nonce
// first and rotates it once mid-run. A request that is retried, one that is
// redirected, one answered 401 invalid_token and a POST whose body must be
// replayed each get a fresh proof per attempt: the servers refuse any jti
// seen before.
func TestDPoPEndToEnd(t *testing.T) {
	t.Parallel()
	s := newDPoPServer(t)
	s.rotateAfter = 10
	var retried, invalidated atomic.Bool
	s.api = func(w http.ResponseWriter, r *http.Request, _ int64) bool {
		switch r.URL.Path {
		case "/retry":
			if retried.CompareAndSwap(false, true) {
				w.WriteHeader(http.StatusServiceUnavailable)
				return true
			}
		case "/redirect":
			http.Redirect(w, r, "/landed", http.StatusFound)
			return true
		case "/invalid":
			if invalidated.CompareAndSwap(false, true) {
				w.Header().Set("WWW-Authenticate", `DPoP error="invalid_token"`)
				w.WriteHeader(http.StatusUnauthorized)
				return true
			}
		}
		return false
	}
	cfg := s.config(t, &DPoP{})
	logger, logs := testutil.NewLogger()
	cfg.Logger = logger
	c := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}

	for i := range 20 {
		if status, _ := dpopDo(t, c, http.MethodGet, s.url(fmt.Sprintf("/v1/%d?q=secret#frag", i)), nil); status != http.StatusOK {
			t.Fatalf("GET %d: got status %d, want 200", i, status)
		}
	}
	payload := "body to replay " + rand.Text()
	if status, got := dpopDo(t, c, http.MethodPost, s.url("/echo"), strings.NewReader(payload)); status != http.StatusOK || got != payload {
		t.Fatalf("POST: got %d %q, want 200 %q", status, got, payload)
	}
	for _, path := range []string{"/retry", "/redirect", "/invalid"} {
		if status, _ := dpopDo(t, c, http.MethodGet, s.url(path), nil); status != http.StatusOK {
			t.Fatalf("GET %s: got status %d, want 200", path, status)
		}
	}
	s.checkNoProblems(t)

	// Token requests: use_dpop_nonce, then the token; after invalid_token,
	// one more, with the nonce already known.
	if got, nerr := s.tokenReqs.Load(), s.tokenNonceErrs.Load(); got != 3 || nerr != 1 {
		t.Fatalf("got %d token requests with %d use_dpop_nonce, want 3 with 1", got, nerr)
	}
	// Resource nonce errors: the first request, and the rotation.
	if got := s.apiNonceErrs.Load(); got != 2 {
		t.Fatalf("got %d use_dpop_nonce answers from the resource server, want 2 (first request, rotation)", got)
	}
	// 20 GETs, the POST, /retry, /landed and /invalid are accepted: 24;
	// with 2 nonce errors, the 503, the 302 and the 401: 29 in all.
	if ok, all := s.apiOK.Load(), s.apiReqs.Load(); ok != 24 || all != 29 {
		t.Fatalf("got %d accepted of %d resource requests, want 24 of 29", ok, all)
	}
	s.mu.Lock()
	keys, jtis := len(s.jkts), len(s.jtis)
	s.mu.Unlock()
	if keys != 1 {
		t.Fatalf("got proofs from %d keys, want 1 key per Transport", keys)
	}
	// Every request carried its own proof (29 + 3), and every token
	// request its own assertion (3).
	if jtis != 35 {
		t.Fatalf("got %d distinct jti, want 35", jtis)
	}
	for _, secret := range []string{s.rsNonce, s.asNonce, "secret"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the log shows a secret (nonce or query): %q", secret)
		}
	}
	if strings.Contains(logs.String(), "eyJ") {
		t.Fatal("the log shows a JWT (proof or token)")
	}
}

// TestDPoPNonceRetryBounded: a resource server that asks for a new nonce
// every time gets exactly one retry, with the body replayed through
// GetBody; a body that cannot be replayed is not retried; a refused proof
// (invalid_dpop_proof) does not condemn the token.
func TestDPoPNonceRetryBounded(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		challenge  string
		body       func() io.Reader
		wantReqs   int
		wantTokens int64
	}{
		{"nonce every time, replayable body", `DPoP error="use_dpop_nonce"`, func() io.Reader { return strings.NewReader("payload") }, 2, 1},
		{"nonce every time, no GetBody", `DPoP error="use_dpop_nonce"`, func() io.Reader { return io.MultiReader(strings.NewReader("payload")) }, 1, 1},
		{"invalid_dpop_proof", `DPoP error="invalid_dpop_proof"`, func() io.Reader { return strings.NewReader("payload") }, 1, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newDPoPServer(t)
			var mu sync.Mutex
			var bodies, jtis []string
			var nonce atomic.Int64
			api := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				p, err := verifyDPoPProof(r, strings.TrimPrefix(r.Header.Get("Authorization"), "DPoP "), time.Now())
				if err != nil {
					s.problem("proof: %v", err)
				}
				mu.Lock()
				bodies = append(bodies, string(b))
				if p != nil {
					jtis = append(jtis, p.claims["jti"].(string))
				}
				mu.Unlock()
				w.Header().Set("DPoP-Nonce", fmt.Sprintf("n-%d", nonce.Add(1)))
				w.Header().Set("WWW-Authenticate", tt.challenge)
				w.WriteHeader(http.StatusUnauthorized)
			}))
			c := &http.Client{Transport: newTestTransport(t, s.config(t, &DPoP{}))}
			status, _ := dpopDo(t, c, http.MethodPost, testutil.HostURL(api, hostAPI, "/v1"), tt.body())
			if status != http.StatusUnauthorized {
				t.Fatalf("got status %d, want 401", status)
			}
			s.checkNoProblems(t)
			mu.Lock()
			defer mu.Unlock()
			if len(bodies) != tt.wantReqs {
				t.Fatalf("the server got %d requests, want %d", len(bodies), tt.wantReqs)
			}
			for i, b := range bodies {
				if b != "payload" {
					t.Fatalf("request %d: got body %q, want %q", i, b, "payload")
				}
			}
			if len(jtis) == 2 && jtis[0] == jtis[1] {
				t.Fatal("the nonce retry reused the proof")
			}
			// The token was never condemned: one token request pair
			// (use_dpop_nonce, then the token).
			if got := s.tokenReqs.Load() - s.tokenNonceErrs.Load(); got != tt.wantTokens {
				t.Fatalf("got %d tokens issued, want %d", got, tt.wantTokens)
			}
		})
	}
}

// TestDPoPTokenEndpoint: a bearer token from a DPoP token request is a
// downgrade and refused, nothing reaching the resource server; an
// authorization server that asks for a nonce twice in a row gets two token
// requests and the request fails with its OAuthError.
func TestDPoPTokenEndpoint(t *testing.T) {
	t.Parallel()
	t.Run("bearer token refused", func(t *testing.T) {
		t.Parallel()
		s := newDPoPServer(t)
		s.tokenType = "Bearer"
		c := &http.Client{Transport: newTestTransport(t, s.config(t, &DPoP{}))}
		_, err := c.Get(s.url("/v1"))
		tokWantRefused(t, err, int(s.apiReqs.Load()))
		if got := s.tokenReqs.Load(); got != 2 {
			t.Fatalf("got %d token requests, want 2 (use_dpop_nonce, then the bearer token)", got)
		}
		s.checkNoProblems(t)
	})
	t.Run("nonce asked twice", func(t *testing.T) {
		t.Parallel()
		s := newDPoPServer(t)
		s.rotateASNonce = true
		c := &http.Client{Transport: newTestTransport(t, s.config(t, &DPoP{}))}
		_, err := c.Get(s.url("/v1"))
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Code != "use_dpop_nonce" {
			t.Fatalf("got error %v, want an *OAuthError use_dpop_nonce", err)
		}
		if !errors.Is(err, ErrNoToken) {
			t.Fatalf("got error %v, want it to match ErrNoToken", err)
		}
		if got := s.tokenReqs.Load(); got != 2 {
			t.Fatalf("got %d token requests, want 2 (never a loop)", got)
		}
		if got := s.apiReqs.Load(); got != 0 {
			t.Fatalf("the resource server got %d requests, want 0", got)
		}
		s.checkNoProblems(t)
	})
}

// TestDPoPOwnRefresh: a Refresh of the user's own obtains tokens bound to
// DPoP.Key, using DPoP.Thumbprint, and the transport sends them with
// proofs of that key only.
func TestDPoPOwnRefresh(t *testing.T) {
	t.Parallel()
	s := newDPoPServer(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := &DPoP{Key: key}
	jkt, err := d.Thumbprint()
	if err != nil {
		t.Fatal(err)
	}
	var refreshes atomic.Int64
	cfg := testConfig(t)
	cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, DPoP: d, Refresh: func(context.Context) (Token, error) {
		refreshes.Add(1)
		at, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"exp": time.Now().Add(time.Hour).Unix(), "cnf": map[string]string{"jkt": jkt},
		}).SignedString(tokKey())
		return Token{Value: at}, err
	}}
	c := &http.Client{Transport: newTestTransport(t, cfg)}
	for i := range 3 {
		if status, _ := dpopDo(t, c, http.MethodGet, s.url("/v1"), nil); status != http.StatusOK {
			t.Fatalf("GET %d: got status %d, want 200", i, status)
		}
	}
	s.checkNoProblems(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.jkts[jkt] || len(s.jkts) != 1 {
		t.Fatalf("got proofs from keys %v, want only %s", s.jkts, jkt)
	}
	if got := refreshes.Load(); got != 1 {
		t.Fatalf("got %d refreshes, want 1", got)
	}
}

// failingSigner is a crypto.Signer whose Sign fails or signs with another
// key.
type failingSigner struct {
	crypto.Signer
	other crypto.Signer // signs instead, when set
}

func (f failingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if f.other != nil {
		return f.other.Sign(r, digest, opts)
	}
	return nil, errors.New("hardware token unplugged")
}

// TestDPoPKeyPolicy: P-256, Ed25519 and RSA of 2048 bits are accepted;
// weak RSA, other curves, keys that cannot sign and keys whose signatures
// do not verify with their public key are a *ConfigError at NewTransport.
func TestDPoPKeyPolicy(t *testing.T) {
	t.Parallel()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	refresh := func(context.Context) (Token, error) { return Token{Value: "t"}, nil }
	cc := &ClientCredentials{TokenURL: "https://" + hostOther + "/token", ClientID: "c", ClientSecret: "s"}
	for _, tt := range []struct {
		name    string
		bearer  Bearer
		wantErr bool
	}{
		{"P-256", Bearer{Refresh: refresh, DPoP: &DPoP{Key: p256}}, false},
		{"Ed25519", Bearer{Refresh: refresh, DPoP: &DPoP{Key: ed}}, false},
		{"RSA 2048", Bearer{Refresh: refresh, DPoP: &DPoP{Key: rsa2048}}, false},
		{"nil key with ClientCredentials", Bearer{ClientCredentials: cc, DPoP: &DPoP{}}, false},
		{"RSA 1024", Bearer{Refresh: refresh, DPoP: &DPoP{Key: rsa1024}}, true},
		{"P-384", Bearer{Refresh: refresh, DPoP: &DPoP{Key: p384}}, true},
		{"signer that fails", Bearer{Refresh: refresh, DPoP: &DPoP{Key: failingSigner{Signer: p256}}}, true},
		{"signer that signs with another key", Bearer{Refresh: refresh, DPoP: &DPoP{Key: failingSigner{Signer: p256, other: other}}}, true},
		{"nil key with Refresh", Bearer{Refresh: refresh, DPoP: &DPoP{}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			b := tt.bearer
			b.Hosts = []string{hostAPI}
			cfg.Bearer = &b
			tr, err := newTransport(cfg)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				tr.CloseIdleConnections()
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != "Bearer.DPoP.Key" {
				t.Fatalf("got error %v, want a *ConfigError for Bearer.DPoP.Key", err)
			}
		})
	}
}

// TestDPoPThumbprint checks the RFC 7638 section 3.1 example and agrees
// with go-jose for each key type; a nil Key has no thumbprint.
func TestDPoPThumbprint(t *testing.T) {
	t.Parallel()
	n, _ := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	rfcKey := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	jwk, err := publicJWK(rfcKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jwkThumbprint(jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("RFC 7638 example: got %s, want %s", got, want)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, key := range []crypto.Signer{p256, ed, rsa2048} {
		t.Run(fmt.Sprintf("%T", key), func(t *testing.T) {
			t.Parallel()
			got, err := (&DPoP{Key: key}).Thumbprint()
			if err != nil {
				t.Fatal(err)
			}
			tp, err := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if want := base64.RawURLEncoding.EncodeToString(tp); got != want {
				t.Fatalf("got %s, want go-jose's %s", got, want)
			}
		})
	}
	if _, err := (&DPoP{}).Thumbprint(); err == nil {
		t.Fatal("got a thumbprint for a nil Key, want an error")
	}
}

// TestDPoPProofClaims checks htu (no query or fragment, no default port,
// host in lower case, "/" for an empty path), ath and nonce, verified by
// go-jose, and that nonces are remembered per origin.
func TestDPoPProofClaims(t *testing.T) {
	t.Parallel()
	k, err := newDPoPKey(&DPoP{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ in, want string }{
		{"https://API.test/a/b?q=1#f", "https://api.test/a/b"},
		{"https://api.test:443/x", "https://api.test/x"},
		{"https://api.test:8443/x", "https://api.test:8443/x"},
		{"https://api.test", "https://api.test/"},
		{"https://[::1]:443/p%20q", "https://[::1]/p%20q"},
	} {
		u, _ := url.Parse(tt.in)
		proof, err := k.proof(http.MethodPut, u, "")
		if err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		payload, err := jws.Verify(jws.Signatures[0].Protected.JSONWebKey)
		if err != nil {
			t.Fatalf("%s: signature: %v", tt.in, err)
		}
		var c map[string]any
		json.Unmarshal(payload, &c)
		if c["htu"] != tt.want || c["htm"] != http.MethodPut {
			t.Fatalf("%s: got htu %v htm %v, want %s PUT", tt.in, c["htu"], c["htm"], tt.want)
		}
		if _, ok := c["ath"]; ok {
			t.Fatalf("%s: got ath without a token", tt.in)
		}
	}

	a, _ := url.Parse("https://api.test/x")
	b, _ := url.Parse("https://other.test/x")
	k.observe(a, http.Header{"Dpop-Nonce": {"nonce-a"}})
	k.observe(b, http.Header{"Dpop-Nonce": {`bad"nonce`}}) // not an NQCHAR string: ignored
	for _, tt := range []struct {
		u         *url.URL
		wantNonce any
	}{{a, "nonce-a"}, {b, nil}} {
		proof, err := k.proof(http.MethodGet, tt.u, tokenHash("tok"))
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, tt.u.String(), nil)
		req.Header.Set("DPoP", proof)
		p, err := verifyDPoPProof(req, "tok", time.Now())
		if err != nil {
			t.Fatalf("%s: %v", tt.u, err)
		}
		if got := p.claims["nonce"]; got != tt.wantNonce {
			t.Fatalf("%s: got nonce %v, want %v", tt.u, got, tt.wantNonce)
		}
		if p.jkt != k.jkt {
			t.Fatalf("got jkt %s, want %s", p.jkt, k.jkt)
		}
	}
}

// TestDPoPNotFormatted: a DPoP, by pointer or by value, and a Bearer
// holding one print no key material with any verb, nor as JSON.
func TestDPoPNotFormatted(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := &DPoP{Key: key}
	raw, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{base64.RawURLEncoding.EncodeToString(raw), fmt.Sprint(raw), fmt.Sprintf("%x", raw), new(big.Int).SetBytes(raw).String()}
	k, err := newDPoPKey(d, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	type holder struct{ D DPoP }
	for _, v := range []any{d, *d, holder{*d}, &Bearer{DPoP: d, Hosts: []string{hostAPI}}, k} {
		j, err := json.Marshal(v)
		if err == nil {
			for _, secret := range secrets {
				if strings.Contains(string(j), secret) {
					t.Fatalf("JSON of %T shows the private key", v)
				}
			}
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
			out := fmt.Sprintf(verb, v)
			for _, secret := range secrets {
				if strings.Contains(out, secret) {
					t.Fatalf("%s of %T shows the private key", verb, v)
				}
			}
		}
	}
}

// BenchmarkDPoPProof measures one proof for a resource request: claims,
// encoding and an ES256 signature. Compare with BenchmarkECDSASign, the
// signature alone.
func BenchmarkDPoPProof(b *testing.B) {
	k, err := newDPoPKey(&DPoP{}, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse("https://api.example.com/v1/things?page=2")
	k.observe(u, http.Header{"Dpop-Nonce": {"eyJ7S_zG.eyJH0-Z.HX4w-7v"}})
	ath := tokenHash("an access token of a realistic length, say a JWT of a few hundred bytes")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.proof(http.MethodGet, u, ath); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkECDSASign is the physical limit of a proof: one P-256 signature
// of a SHA-256 digest.
func BenchmarkECDSASign(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := sha256.Sum256([]byte("proof"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ecdsa.SignASN1(rand.Reader, key, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDPoPForeignBoundToken: a token bound (cnf.jkt) to another key, as
// another process with its own key may leave in a shared store, is never
// sent: the store's token is passed over for a Refresh, and a Refresh that
// returns one fails without sending anything. A bound token is never sent
// as a bearer token either.
func TestDPoPForeignBoundToken(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ours, _ := (&DPoP{Key: key}).Thumbprint()
	theirs, _ := (&DPoP{Key: otherKey}).Thumbprint()
	bound := func(jkt string) string {
		at, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"exp": time.Now().Add(time.Hour).Unix(), "jti": rand.Text(), "cnf": map[string]string{"jkt": jkt},
		}).SignedString(tokKey())
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	for _, tt := range []struct {
		name      string
		refreshed string
		dpop      *DPoP
		wantOK    bool
	}{
		{"stored token of another key is replaced", ours, &DPoP{Key: key}, true},
		{"refresh returning another key's token fails", theirs, &DPoP{Key: key}, false},
		{"a bound token is never sent as a bearer token", ours, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newDPoPServer(t)
			var refreshes atomic.Int64
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, DPoP: tt.dpop,
				Store: NewMemoryStore(Token{Value: bound(theirs)}),
				Refresh: func(context.Context) (Token, error) {
					refreshes.Add(1)
					return Token{Value: bound(tt.refreshed)}, nil
				}}
			c := &http.Client{Transport: newTestTransport(t, cfg)}
			resp, err := c.Get(s.url("/v1"))
			if !tt.wantOK {
				tokWantRefused(t, err, int(s.apiReqs.Load()))
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			s.checkNoProblems(t)
			if got := refreshes.Load(); got != 1 {
				t.Fatalf("got %d refreshes, want 1", got)
			}
		})
	}
}

// FuzzDPoPProof: whatever the method, host, path and nonce, the proof's
// claims are one JSON object whose htm, htu and nonce say exactly what was
// asked, or the nonce is ignored when it is not an RFC 9449 nonce.
func FuzzDPoPProof(f *testing.F) {
	for _, s := range [][4]string{
		{"GET", "api.test", "/v1/things", "n-1"},
		{"POST", "API.test:443", "", "eyJ7S_zG.eyJH0-Z.HX4w-7v"},
		{"PATCH", "[::1]:8443", "/a%22b/%E2%82%AC", `quote"nonce`},
		{"M\"\\\x00", "h", "/\u2028", "back\\slash"},
		{"", "h:", "/x", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	k, err := newDPoPKey(&DPoP{}, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, host, path, nonce string) {
		u := &url.URL{Scheme: "https", Host: host, Path: path}
		k := &dpopKey{key: k.key, method: k.method, head: k.head, jkt: k.jkt, now: k.now, nonces: map[string]string{}}
		k.observe(u, http.Header{"Dpop-Nonce": {nonce}})
		proof, err := k.proof(method, u, "")
		if err != nil {
			if isHTTPToken(method) && method != "" && utf8.ValidString(originHost(u)) {
				t.Fatalf("no proof for a valid method and host: %v", err)
			}
			return
		}
		parts := strings.Split(proof, ".")
		if len(parts) != 3 {
			t.Fatalf("got %d parts, want 3", len(parts))
		}
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatalf("claims are not JSON: %v", err)
		}
		wantMethod := method
		if wantMethod == "" {
			wantMethod = http.MethodGet
		}
		if c["htm"] != wantMethod {
			t.Fatalf("got htm %q, want %q", c["htm"], wantMethod)
		}
		wantPath := u.EscapedPath()
		if wantPath == "" {
			wantPath = "/"
		}
		if want := "https://" + originHost(u) + wantPath; c["htu"] != want {
			t.Fatalf("got htu %q, want %q", c["htu"], want)
		}
		if got, ok := c["nonce"]; validNonce(nonce) != ok || (ok && got != nonce) {
			t.Fatalf("got nonce %q (present %t) for %q, valid %t", got, ok, nonce, validNonce(nonce))
		}
	})
}

// TestDPoPConcurrent: 32 goroutines share one Transport from a cold start
// (no token, no nonce): every request succeeds, one token is obtained, and
// every proof is fresh. Rotation is left to TestDPoPEndToEnd: here a
// rotation between a request's nonce error and its retry would rightly end
// in a second nonce error, returned as it is. The retry budget is off: a
// cold start's 32 nonce replays in one second go past its floor, which
// TestDPoPNonceRetrySpendsBudget covers.
func TestDPoPConcurrent(t *testing.T) {
	t.Parallel()
	s := newDPoPServer(t)
	cfg := s.config(t, &DPoP{})
	cfg.Retry.Budget = -1
	c := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}
	const workers, each = 32, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				resp, err := c.Get(s.url(fmt.Sprintf("/v1/%d/%d", w, i)))
				if err != nil {
					errs <- err
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("got status %d, want 200", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s.checkNoProblems(t)
	if got := s.apiOK.Load(); got != workers*each {
		t.Fatalf("got %d accepted requests, want %d", got, workers*each)
	}
	if got := s.tokenReqs.Load(); got != 2 {
		t.Fatalf("got %d token requests, want 2 (use_dpop_nonce, then one token for all)", got)
	}
	// Each refused request was answered by exactly one nonce retry.
	if all, nonce := s.apiReqs.Load(), s.apiNonceErrs.Load(); all != workers*each+nonce {
		t.Fatalf("got %d requests with %d nonce errors, want %d + nonce errors", all, nonce, workers*each)
	}
}

// TestDPoPKeyPerTransport: a nil DPoP.Key is a fresh P-256 key for each
// Transport, the same for all of that Transport's requests; a set Key is
// used as it is.
func TestDPoPKeyPerTransport(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var jkts []string
	var algs []string
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := verifyDPoPProof(r, "static-token", time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		jws, _ := jose.ParseSignedCompact(r.Header.Get("DPoP"), []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.PS256})
		mu.Lock()
		jkts = append(jkts, p.jkt)
		algs = append(algs, jws.Signatures[0].Protected.Algorithm)
		mu.Unlock()
	}))
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	d := &DPoP{Key: ed}
	want, _ := d.Thumbprint()
	for _, dp := range []*DPoP{{}, {}, d} {
		cfg := testConfig(t)
		cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, DPoP: dp, Refresh: tokStaticT("static-token")}
		c := &http.Client{Transport: newTestTransport(t, cfg)}
		for range 2 {
			if status, body := dpopDo(t, c, http.MethodGet, testutil.HostURL(srv, hostAPI, "/"), nil); status != http.StatusOK {
				t.Fatalf("got status %d (%s), want 200", status, body)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(jkts) != 6 {
		t.Fatalf("got %d proofs, want 6", len(jkts))
	}
	if jkts[0] != jkts[1] || jkts[2] != jkts[3] || jkts[0] == jkts[2] {
		t.Fatalf("got thumbprints %q, want one key per Transport and two Transports' keys apart", jkts[:4])
	}
	if algs[0] != "ES256" || algs[2] != "ES256" || algs[4] != "EdDSA" {
		t.Fatalf("got algs %q, want ES256 for generated keys and EdDSA for the Ed25519 key", algs)
	}
	if jkts[4] != want || jkts[5] != want {
		t.Fatalf("got thumbprints %q for the set key, want %s", jkts[4:], want)
	}
}

// BenchmarkDPoPProofDIY builds the same proof as BenchmarkDPoPProof the way
// a user of jwt/v5 would write it: MapClaims, a JWK map in the header, and
// jwt/v5's own ES256.
func BenchmarkDPoPProofDIY(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := key.PublicKey.ECDH()
	pt := pub.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	jwk := map[string]any{"kty": "EC", "crv": "P-256", "x": enc(pt[1:33]), "y": enc(pt[33:])}
	ath := tokenHash("an access token of a realistic length, say a JWT of a few hundred bytes")
	u, _ := url.Parse("https://api.example.com/v1/things?page=2")
	b.ReportAllocs()
	for b.Loop() {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
			"jti": rand.Text(), "htm": http.MethodGet, "htu": u.Scheme + "://" + u.Host + u.Path,
			"iat": time.Now().Unix(), "ath": ath, "nonce": "eyJ7S_zG.eyJH0-Z.HX4w-7v",
		})
		tok.Header["typ"] = "dpop+jwt"
		tok.Header["jwk"] = jwk
		if _, err := tok.SignedString(key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDPoPProofPaired alternates, in blocks of 32, the library's proof,
// one bare P-256 signature and the jwt/v5 proof of BenchmarkDPoPProofDIY,
// so that load from elsewhere falls on all three alike, and reports each
// one's time and the ratios proof ÷ sign and proof ÷ DIY.
func BenchmarkDPoPProofPaired(b *testing.B) {
	k, err := newDPoPKey(&DPoP{}, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	key := k.key.(*ecdsa.PrivateKey)
	u, _ := url.Parse("https://api.example.com/v1/things?page=2")
	k.observe(u, http.Header{"Dpop-Nonce": {"eyJ7S_zG.eyJH0-Z.HX4w-7v"}})
	ath := tokenHash("an access token of a realistic length, say a JWT of a few hundred bytes")
	pub, _ := key.PublicKey.ECDH()
	pt := pub.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	jwk := map[string]any{"kty": "EC", "crv": "P-256", "x": enc(pt[1:33]), "y": enc(pt[33:])}
	digest := sha256.Sum256([]byte("proof"))
	ops := [3]func() error{
		func() error { _, err := k.proof(http.MethodGet, u, ath); return err },
		func() error { _, err := ecdsa.SignASN1(rand.Reader, key, digest[:]); return err },
		func() error {
			tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
				"jti": rand.Text(), "htm": http.MethodGet, "htu": u.Scheme + "://" + u.Host + u.Path,
				"iat": time.Now().Unix(), "ath": ath, "nonce": "eyJ7S_zG.eyJH0-Z.HX4w-7v",
			})
			tok.Header["typ"] = "dpop+jwt"
			tok.Header["jwk"] = jwk
			_, err := tok.SignedString(key)
			return err
		},
	}
	var wall [3]time.Duration
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		n := min(32, b.N-done)
		for j := range ops {
			i := (j + round) % len(ops)
			start := time.Now()
			for range n {
				if err := ops[i](); err != nil {
					b.Fatal(err)
				}
			}
			wall[i] += time.Since(start)
		}
		done += n
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d) / float64(b.N) }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(per(wall[0]), "proof-ns/op")
	b.ReportMetric(per(wall[1]), "sign-ns/op")
	b.ReportMetric(per(wall[2]), "diy-ns/op")
	b.ReportMetric(float64(wall[0])/float64(wall[1]), "proof-÷-sign")
	b.ReportMetric(float64(wall[0])/float64(wall[2]), "proof-÷-diy")
}

// TestDPoPNonceFromAnyResponse: a nonce that arrives on a 503 is used by the
// retry that follows, so the server never has to ask for it.
func TestDPoPNonceFromAnyResponse(t *testing.T) {
	t.Parallel()
	s := newDPoPServer(t)
	var rotated atomic.Bool
	s.api = func(w http.ResponseWriter, r *http.Request, _ int64) bool {
		if r.URL.Path != "/busy" || !rotated.CompareAndSwap(false, true) {
			return false
		}
		s.mu.Lock()
		s.rsNonce = "rs-" + rand.Text()
		w.Header().Set("DPoP-Nonce", s.rsNonce)
		s.mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}
	c := &http.Client{Transport: newTestTransport(t, s.config(t, &DPoP{}))}
	for _, path := range []string{"/first", "/busy"} {
		if status, _ := dpopDo(t, c, http.MethodGet, s.url(path), nil); status != http.StatusOK {
			t.Fatalf("GET %s: got status %d, want 200", path, status)
		}
	}
	s.checkNoProblems(t)
	// /first: use_dpop_nonce, then 200; /busy: 503 with a new nonce, then
	// 200 with it.
	if all, nerr := s.apiReqs.Load(), s.apiNonceErrs.Load(); all != 4 || nerr != 1 {
		t.Fatalf("got %d requests with %d nonce errors, want 4 with 1", all, nerr)
	}
}

// BenchmarkDPoPRoundTrip is a keep-alive GET over HTTP/2 to an in-process
// server, with a bearer token and with DPoP. allocs/op counts the server's
// allocations too (it reads one more header with DPoP), so the difference
// between the two is an upper bound on what DPoP adds to the client.
func BenchmarkDPoPRoundTrip(b *testing.B) {
	srv := testutil.StartServer(b, sharedPKI(b).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("DPoP-Nonce", "eyJ7S_zG.eyJH0-Z.HX4w-7v")
	}))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok := tokFresh(b, time.Now(), time.Hour)
	for _, tt := range []struct {
		name string
		dpop *DPoP
	}{{"bearer", nil}, {"dpop", &DPoP{Key: key}}} {
		b.Run(tt.name, func(b *testing.B) {
			cfg := testConfig(b)
			cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, DPoP: tt.dpop, Store: NewMemoryStore(Token{Value: tok})}
			c := &http.Client{Transport: newTestTransport(b, cfg)}
			url := testutil.HostURL(srv, hostAPI, "/v1")
			get := func() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("got status %d, want 200", resp.StatusCode)
				}
			}
			get() // the connection
			b.ReportAllocs()
			for b.Loop() {
				get()
			}
		})
	}
}

// TestDPoPNonceRetrySpendsBudget: nonce replays are paid from the host's
// retry budget. With the clock stopped, every resend falls in one second:
// the budget's floor of 10 allows ten replays, and the later requests get
// their 401 back with no replay, each reported to the BudgetExhausted hook.
func TestDPoPNonceRetrySpendsBudget(t *testing.T) {
	t.Parallel()
	var hits, n atomic.Int64
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("DPoP-Nonce", fmt.Sprintf("n-%d", n.Add(1)))
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var mu sync.Mutex
	var refused []string
	cfg := testConfig(t)
	cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, DPoP: &DPoP{Key: key}, Refresh: tokStaticT("static-token")}
	cfg.Hooks = &Hooks{BudgetExhausted: func(_ context.Context, e AttemptEvent) {
		mu.Lock()
		defer mu.Unlock()
		refused = append(refused, e.Resend)
	}}
	tr := newTestTransport(t, cfg)
	stopped := time.Now()
	tr.now = func() time.Time { return stopped }
	c := &http.Client{Transport: tr}
	const requests = 15
	for range requests {
		if status, _ := dpopDo(t, c, http.MethodGet, testutil.HostURL(srv, hostAPI, "/v1"), nil); status != http.StatusUnauthorized {
			t.Fatalf("got status %d, want 401", status)
		}
	}
	if got, want := hits.Load(), int64(requests+budgetFloor); got != want {
		t.Fatalf("the server got %d requests, want %d (%d, and %d replays)", got, want, requests, budgetFloor)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != requests-budgetFloor || slices.ContainsFunc(refused, func(r string) bool { return r != resendNonce.String() }) {
		t.Fatalf("got budget refusals %q, want %d for %q", refused, requests-budgetFloor, resendNonce)
	}
}

// bindingStore is a SharedTokenStore that records the bindings asked for
// and keeps one MemoryStore per binding.
type bindingStore struct {
	*MemoryStore
	mu     sync.Mutex
	asked  []string
	stores map[string]*MemoryStore
}

func (s *bindingStore) TryLease(context.Context) (Lease, error) {
	return memoryLease{s.MemoryStore}, nil
}

func (s *bindingStore) ForBinding(binding string) SharedTokenStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, binding)
	if s.stores[binding] == nil {
		s.stores[binding] = NewMemoryStore(Token{})
	}
	return memoryShared{s.stores[binding]}
}

// memoryShared is a SharedTokenStore in memory, for one process: every
// lease is granted.
type memoryShared struct{ *MemoryStore }

func (m memoryShared) TryLease(context.Context) (Lease, error) {
	return memoryLease(m), nil
}
func (m memoryShared) ForBinding(string) SharedTokenStore { return m }

// memoryLease saves into its MemoryStore.
type memoryLease struct{ *MemoryStore }

func (memoryLease) Release(context.Context) error { return nil }

// TestDPoPBindingStore: with DPoP, a BindingStore is asked for the store of
// "dpop:" and the key's thumbprint, and the token is saved there, apart
// from the plain bearer tokens of the same store.
func TestDPoPBindingStore(t *testing.T) {
	t.Parallel()
	s := newDPoPServer(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := &DPoP{Key: key}
	jkt, _ := d.Thumbprint()
	store := &bindingStore{MemoryStore: NewMemoryStore(Token{}), stores: map[string]*MemoryStore{}}
	cfg := s.config(t, d)
	cfg.Bearer.Store = store
	c := &http.Client{Transport: newTestTransport(t, cfg)}
	if status, _ := dpopDo(t, c, http.MethodGet, s.url("/v1"), nil); status != http.StatusOK {
		t.Fatalf("got status %d, want 200", status)
	}
	s.checkNoProblems(t)
	store.mu.Lock()
	defer store.mu.Unlock()
	want := "dpop:" + jkt
	if !slices.Contains(store.asked, want) {
		t.Fatalf("got bindings %q, want %q among them", store.asked, want)
	}
	bound, _ := store.stores[want].Load(t.Context())
	var plain Token
	if s := store.stores[""]; s != nil {
		plain, _ = s.Load(t.Context())
	}
	if p, _ := store.MemoryStore.Load(t.Context()); p.Value != "" {
		plain = p
	}
	if bound.Value == "" || plain.Value != "" {
		t.Fatalf("got a token in the bound store: %t, in the plain one: %t; want only the bound one", bound.Value != "", plain.Value != "")
	}
}

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
