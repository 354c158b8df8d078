package securehttp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Test host names. Every one of them resolves to the loopback test server
// through testutil.LoopbackDial, and the shared leaf is valid for all of them.
const (
	hostAPI   = "api.test"
	hostOther = "other.test"
	hostSub   = "v1.api.test"
)

// chainPKI is a root, an intermediate and a leaf for the test hosts and for
// 127.0.0.1, generated once per test binary.
type chainPKI struct {
	root, inter, leaf *testpki.Cert
}

var (
	pkiOnce sync.Once
	pkiVal  *chainPKI
)

func sharedPKI(t testing.TB) *chainPKI {
	t.Helper()
	pkiOnce.Do(func() {
		root := testpki.Must(testpki.NewRoot("securehttp test root", testpki.Options{}))
		inter := testpki.Must(root.NewIntermediate("securehttp test intermediate", testpki.Options{}))
		leaf := testpki.Must(inter.NewLeaf(hostAPI, testpki.Options{
			DNSNames: []string{hostAPI, hostOther, hostSub},
			IPs:      []net.IP{net.IPv4(127, 0, 0, 1)},
		}))
		pkiVal = &chainPKI{root: root, inter: inter, leaf: leaf}
	})
	return pkiVal
}

// serverCert serves the shared leaf and intermediate.
func (p *chainPKI) serverCert() tls.Certificate {
	return testpki.TLSCertificate(p.leaf, p.inter)
}

// testConfig returns a Config that trusts the shared root, dials loopback,
// uses no proxy and retries quickly.
func testConfig(t testing.TB) Config {
	return Config{
		RootCAs:     sharedPKI(t).root.Pool(),
		DialContext: testutil.LoopbackDial,
		Proxy:       func(*http.Request) (*url.URL, error) { return nil, nil },
		Retry:       RetryPolicy{MinWait: time.Millisecond, MaxWait: 5 * time.Millisecond},
	}
}

// newTestTransport builds a Transport from cfg and closes its idle
// connections when the test ends.
func newTestTransport(t testing.TB, cfg Config) *transport {
	t.Helper()
	tr, err := newTransport(cfg)
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// newTestTokenSource makes the token source of b, checked as NewClient
// checks it, for a client without a client certificate.
func newTestTokenSource(b *Bearer, now func() time.Time) (*tokenSource, error) {
	plan, err := checkBearer(b, false, now)
	if err != nil {
		return nil, err
	}
	t := &transport{logger: slog.New(slog.DiscardHandler), now: now, conns: &connections{}}
	return newTokenSource(b, plan, t), nil
}

// The token fixtures below serve the tests of the token source, of token
// parsing and sharing, of the hooks and of the OAuth adapters: JWTs signed
// in code, a recording test server, and a Transport with a Bearer, a
// settable clock and a Debug logger.

// tokKey is the HS256 key of the test JWTs. The client never needs it
// unless a test sets Bearer.Keyfunc.
func tokKey() []byte { return []byte("securehttp token tests: HS256 key of 32+ bytes") }

// tokNewClock returns a settable clock for Transport.now, at the current
// second.
func tokNewClock() *testutil.Clock { return testutil.NewClock(time.Now().Truncate(time.Second)) }

// tokJWT signs claims with HS256 and key. Every token gets a unique ID, so
// that no two tokens are equal.
func tokJWT(t testing.TB, key []byte, c jwt.RegisteredClaims) string {
	t.Helper()
	if c.ID == "" {
		c.ID = rand.Text()
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
	if err != nil {
		// Errorf, not Fatalf: fake Refresh functions call this from
		// goroutines of their own.
		t.Errorf("signing a test JWT: %v", err)
	}
	return s
}

// tokFresh returns a JWT issued at now that expires after lifetime.
func tokFresh(t testing.TB, now time.Time, lifetime time.Duration) string {
	t.Helper()
	return tokJWT(t, tokKey(), jwt.RegisteredClaims{
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(lifetime)),
	})
}

// tokOpaque returns a unique opaque token.
func tokOpaque(prefix string) string { return prefix + "-" + rand.Text() }

// tokCounted counts the calls to fn, a Refresh that returns only the
// token's value.
func tokCounted(fn func(context.Context) (string, error)) (func(context.Context) (Token, error), *atomic.Int64) {
	n := new(atomic.Int64)
	return func(ctx context.Context) (Token, error) {
		n.Add(1)
		v, err := fn(ctx)
		return Token{Value: v}, err
	}, n
}

// tokStatic is a Refresh that always returns tok.
func tokStatic(tok string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return tok, nil }
}

// tokStaticT is tokStatic as a Bearer.Refresh.
func tokStaticT(tok string) func(context.Context) (Token, error) { return refreshOf(tokStatic(tok)) }

// refreshOf adapts a Refresh that returns only the token's value.
func refreshOf(fn func(context.Context) (string, error)) func(context.Context) (Token, error) {
	return func(ctx context.Context) (Token, error) {
		v, err := fn(ctx)
		return Token{Value: v}, err
	}
}

// tokHit is one request as the test server saw it.
type tokHit struct {
	host, path, method, auth, body string
	proto                          int
}

// tokRecorder records what the test server receives.
type tokRecorder struct {
	mu   sync.Mutex
	hits []tokHit
}

func (r *tokRecorder) record(req *http.Request) tokHit {
	body, _ := io.ReadAll(req.Body)
	host, _, err := net.SplitHostPort(req.Host)
	if err != nil {
		host = req.Host
	}
	h := tokHit{host: host, path: req.URL.Path, method: req.Method,
		auth: req.Header.Get("Authorization"), body: string(body), proto: req.ProtoMajor}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hits = append(r.hits, h)
	return h
}

func (r *tokRecorder) all() []tokHit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hits)
}

// auths returns the Authorization header of every request, in order.
func (r *tokRecorder) auths() []string {
	var out []string
	for _, h := range r.all() {
		out = append(out, h.auth)
	}
	return out
}

// tokWantRefused checks that a request failed with a *RefreshError wrapping
// each of causes, and that the server received nothing.
func tokWantRefused(t *testing.T, err error, received int, causes ...error) {
	t.Helper()
	var re *RefreshError
	if !errors.As(err, &re) {
		t.Fatalf("got error %v, want a *RefreshError", err)
	}
	for _, c := range causes {
		if !errors.Is(err, c) {
			t.Fatalf("got error %v, want it to wrap %v", err, c)
		}
	}
	if received != 0 {
		t.Fatalf("server got %d requests, want 0", received)
	}
}

func (r *tokRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hits)
}

// tokEnv is a test server that records requests, and a Transport with a
// bearer, a fake clock and a Debug logger.
type tokEnv struct {
	srv    *httptest.Server
	tr     *transport
	client *http.Client
	clk    *testutil.Clock
	rec    *tokRecorder
	logs   *testutil.LogBuffer
}

// tokStartServer is testutil.StartServer with room for 2000 concurrent HTTP/2
// streams. With the default 250, a burst of 1000 requests makes net/http
// dial a new TLS connection for nearly every request beyond the limit.
func tokStartServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{sharedPKI(t).serverCert()}}
	srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 2000}
	srv.Config.ErrorLog = testutil.QuietLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// tokSetup starts the server, which answers with h after recording the
// request (nil h: 200 "ok"), and a Transport for b using clk.
func tokSetup(t *testing.T, clk *testutil.Clock, b *Bearer, h func(http.ResponseWriter, *http.Request, tokHit)) *tokEnv {
	t.Helper()
	e := &tokEnv{clk: clk, rec: &tokRecorder{}}
	e.srv = tokStartServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit := e.rec.record(r)
		if h != nil {
			h(w, r, hit)
			return
		}
		io.WriteString(w, "ok")
	}))
	cfg := testConfig(t)
	cfg.Bearer = b
	cfg.Logger, e.logs = testutil.NewLogger()
	cfg.ExpiryWarning = -1 // only token events are logged
	e.tr = newTestTransport(t, cfg)
	e.tr.now = clk.Now
	e.client = &http.Client{Transport: e.tr}
	return e
}

func (e *tokEnv) url(host, path string) string { return testutil.HostURL(e.srv, host, path) }

// get sends a GET for path to api.test.
func (e *tokEnv) get(path string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, e.url(hostAPI, path), nil)
	if err != nil {
		return 0, "", err
	}
	return tokDo(e.client, req)
}

// tokDo sends req and returns the status and body of the response.
func tokDo(c *http.Client, req *http.Request) (int, string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// tokMustGet fails the test unless a GET to api.test answers 200, and
// returns the Authorization header the server received for it.
func (e *tokEnv) tokMustGet(t *testing.T) string {
	t.Helper()
	before := e.rec.count()
	status, _, err := e.get("/")
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET: got status %d and error %v, want 200 and no error", status, err)
	}
	hits := e.rec.all()[before:]
	if len(hits) != 1 {
		t.Fatalf("server got %d requests, want 1", len(hits))
	}
	return hits[0].auth
}

// tokPatience bounds every wait in these tests. It is generous, since a
// loaded machine running -race is slow; a passing run waits far less.
const tokPatience = 15 * time.Second

// tokWaitIdle waits, for at most tokPatience, until no refresh is in flight.
func tokWaitIdle(t *testing.T, tr *transport) {
	t.Helper()
	deadline := time.Now().Add(tokPatience)
	for {
		tr.bearer.mu.Lock()
		idle := tr.bearer.flight == nil
		tr.bearer.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a refresh is still in flight after %v, want none", tokPatience)
		}
		time.Sleep(time.Millisecond)
	}
}

// tokWait waits for ch to be closed or to deliver, for at most tokPatience.
func tokWait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(tokPatience):
		t.Fatalf("%s: still waiting after %v", what, tokPatience)
		panic("unreachable")
	}
}

func tokBearer(tok string) string { return "Bearer " + tok }

// fakePin returns a well-formed SPKI pin that matches no key.
func fakePin(c byte) string { return "sha256/" + strings.Repeat(string(c), 42) + "A=" }

func okHandler(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }

// get performs a GET through tr and returns the body, or the error.
func get(t testing.TB, tr http.RoundTripper, rawURL string) (string, error) {
	t.Helper()
	c := &http.Client{Transport: tr}
	resp, err := c.Get(rawURL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Tests against real third-party peers (nginx, openssl s_server, tinyproxy,
// redis-server, oidc-provider) start private instances on 127.0.0.1 through
// internal/peers. Without the binaries they skip locally; with CI=true they
// fail.

// peerURL is the URL of a peer under the test host name; testutil.LoopbackDial
// sends it to the peer's port on 127.0.0.1.
func peerURL(p *peers.Peer, host, path string) string {
	return fmt.Sprintf("https://%s:%d%s", host, p.Port, path)
}

// peerGet is get with retries off, so that every failure is one handshake.
func peerGet(t *testing.T, cfg Config, rawURL string) (string, error) {
	t.Helper()
	cfg.Retry.MaxRetries = -1
	return get(t, newTestTransport(t, cfg), rawURL)
}
