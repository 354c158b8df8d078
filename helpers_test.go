package securehttp

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/securehttp/securehttp/internal/testpki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Test host names. Every one of them resolves to the loopback test server
// through loopbackDial, and the shared leaf is valid for all of them.
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

// startServer starts an HTTP/2-capable TLS server on 127.0.0.1 serving cert,
// closed when the test ends.
func startServer(t testing.TB, cert tls.Certificate, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = quietLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// loopbackDial sends every dial, whatever its host name, to the same port
// on 127.0.0.1, so tests can use several host names on one server while
// TLS still verifies the name in the URL.
func loopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
}

// hostURL returns srv's URL with host in place of 127.0.0.1.
func hostURL(srv *httptest.Server, host, path string) string {
	return strings.Replace(srv.URL, "127.0.0.1", host, 1) + path
}

// testConfig returns a Config that trusts the shared root, dials loopback,
// uses no proxy and retries quickly.
func testConfig(t testing.TB) Config {
	return Config{
		RootCAs:     sharedPKI(t).root.Pool(),
		DialContext: loopbackDial,
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

// logBuffer collects log output for assertions, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newLogger returns a Debug-level text logger writing to a new logBuffer.
func newLogger() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// quietLog discards the test servers' own log lines (handshake errors that
// the tests provoke on purpose).
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
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
