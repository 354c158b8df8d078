package securehttp

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

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
