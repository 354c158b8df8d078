package securehttp

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testutil"
)

func TestHTTP2(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.ProtoMajor)
	}))
	cfg := testConfig(t)
	cfg.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.leaf.SPKIPin()}}}
	c := &http.Client{Transport: newTestTransport(t, cfg)}
	resp, err := c.Get(testutil.HostURL(srv, hostAPI, "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || string(body) != "2" {
		t.Fatalf("got client protocol %d, server protocol %s, want 2 and 2", resp.ProtoMajor, body)
	}
}

// TestPoolNoChurn sends rounds of 64 concurrent HTTP/1.1 requests to one
// host: the pool keeps the connections, so later rounds handshake no more.
func TestPoolNoChurn(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	var handshakes atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond) // keep requests overlapping
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{p.serverCert()},
		NextProtos:   []string{"http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			handshakes.Add(1)
			return nil, nil
		},
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tr := newTestTransport(t, testConfig(t))
	round := func() {
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				if _, err := get(t, tr, testutil.HostURL(srv, hostAPI, "/")); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	round()
	first := handshakes.Load()
	for range 3 {
		round()
	}
	// A pool of two idle connections per host (net/http's default) would
	// handshake about 62 times a round; a few new connections across three
	// rounds are timing, not churn.
	if got := handshakes.Load(); first > 64 || got-first > 8 {
		t.Fatalf("got %d handshakes in the first round and %d more in the next three, want at most 64 and at most 8", first, got-first)
	}
}

// TestClientsShareNoState shows two clients from one Config keep separate
// pools and session caches: the second client's first connection is a full
// handshake.
func TestClientsShareNoState(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	var resumed atomic.Int64
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.DidResume {
			resumed.Add(1)
		}
	}))
	cfg := testConfig(t)
	a, b := newTestTransport(t, cfg), newTestTransport(t, cfg)
	if a.conns.base == b.conns.base || a.conns.base.TLSClientConfig.ClientSessionCache == b.conns.base.TLSClientConfig.ClientSessionCache {
		t.Fatalf("two transports share a pool or a session cache")
	}
	for _, tr := range []*transport{a, b} {
		if _, err := get(t, tr, testutil.HostURL(srv, hostAPI, "/")); err != nil {
			t.Fatal(err)
		}
	}
	if got := resumed.Load(); got != 0 {
		t.Fatalf("got %d resumed sessions across clients, want 0", got)
	}
}
