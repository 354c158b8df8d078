package testutil

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/securehttp/securehttp/internal/testpki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestServerUnderTestNames reaches one StartServer server under two names
// through LoopbackDial, directly and through ConnectProxy, with TLS
// verifying each name, and counts the connections and tunnels.
func TestServerUnderTestNames(t *testing.T) {
	t.Parallel()
	root := testpki.Must(testpki.NewRoot("testutil root", testpki.Options{}))
	leaf := testpki.Must(root.NewLeaf("api.test", testpki.Options{DNSNames: []string{"api.test", "other.test"}}))
	srv := StartServer(t, testpki.TLSCertificate(leaf), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Host)
	}))
	proxyURL, tunnels := ConnectProxy(t)
	for _, tt := range []struct {
		name        string
		proxied     bool
		wantTunnels int64
	}{
		{"direct", false, 0},
		{"through the proxy", true, 2}, // one per name
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{DialContext: LoopbackDial, TLSClientConfig: &tls.Config{RootCAs: root.Pool()}}
			if tt.proxied {
				tr.Proxy = http.ProxyURL(proxyURL)
			}
			defer tr.CloseIdleConnections()
			before := tunnels.Load()
			for _, host := range []string{"api.test", "other.test"} {
				resp, err := (&http.Client{Transport: tr}).Get(HostURL(srv, host, "/"))
				if err != nil {
					t.Fatalf("GET %s: %v", host, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.HasPrefix(string(body), host+":") {
					t.Errorf("got Host %q, want %s with the server's port", body, host)
				}
			}
			if got := tunnels.Load() - before; got != tt.wantTunnels {
				t.Errorf("got %d tunnels, want %d", got, tt.wantTunnels)
			}
		})
	}
}

// TestCountingListener counts every accepted connection.
func TestCountingListener(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &CountingListener{Listener: ln}
	defer cl.Close()
	const n = 3
	var wg sync.WaitGroup
	wg.Go(func() {
		for range n {
			c, err := cl.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	wg.Wait()
	if got := cl.N.Load(); got != n {
		t.Errorf("got %d connections counted, want %d", got, n)
	}
}

// TestLoggerCollectsConcurrentRecords logs from several goroutines at Debug
// and finds every record whole in the buffer.
func TestLoggerCollectsConcurrentRecords(t *testing.T) {
	t.Parallel()
	logger, logs := NewLogger()
	const n = 50
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { logger.Debug("event", "k", "v") })
	}
	wg.Wait()
	if got := strings.Count(logs.String(), "level=DEBUG msg=event k=v\n"); got != n {
		t.Errorf("got %d whole records, want %d:\n%s", got, n, logs)
	}
}

// TestClock moves only when told to.
func TestClock(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := NewClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Errorf("got %v, want %v", got, start)
	}
	c.Add(time.Hour)
	if got, want := c.Now(), start.Add(time.Hour); !got.Equal(want) {
		t.Errorf("after Add: got %v, want %v", got, want)
	}
	c.Set(start)
	if got := c.Now(); !got.Equal(start) {
		t.Errorf("after Set: got %v, want %v", got, start)
	}
}
