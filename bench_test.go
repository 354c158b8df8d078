package securehttp

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"

	"github.com/securehttp/securehttp/internal/testutil"
)

// rtPatternReader produces size bytes of a repeating pattern without holding
// them: an upload body of any size in constant memory, with no GetBody.
type rtPatternReader struct {
	size, off int64
}

func (r *rtPatternReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.size-r.off)]
	for i := range p {
		p[i] = byte(r.off + int64(i))
	}
	r.off += int64(len(p))
	return len(p), nil
}

// BenchmarkStreamingUpload128MiB uploads 128 MiB whose body has no GetBody,
// so it must be streamed, never buffered. B/op (and MiB-alloc/op, the same
// measure in MiB) counts every allocation in the process during the loop:
// the in-process server's as well as the client's, so the client's share is
// at most that. Buffering the body, as go-retryablehttp's own RoundTripper
// does, would show at least 128 MiB/op.
func BenchmarkStreamingUpload128MiB(b *testing.B) {
	const size = 128 << 20
	for _, h2 := range []bool{false, true} {
		name := "HTTP1"
		if h2 {
			name = "HTTP2"
		}
		b.Run(name, func(b *testing.B) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, err := io.Copy(io.Discard, r.Body)
				if err != nil || n != size {
					http.Error(w, "short body: "+strconv.FormatInt(n, 10), http.StatusBadRequest)
				}
			}))
			srv.EnableHTTP2 = h2
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{sharedPKI(b).serverCert()}}
			srv.Config.ErrorLog = testutil.QuietLog()
			srv.StartTLS()
			b.Cleanup(srv.Close)
			c, _ := rtNewClient(b, testConfig(b))
			url := testutil.HostURL(srv, hostAPI, "/upload")

			upload := func() {
				req, err := http.NewRequestWithContext(b.Context(), http.MethodPut, url, io.NopCloser(&rtPatternReader{size: size}))
				if err != nil {
					b.Fatal(err)
				}
				req.ContentLength = size
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("got status %d, want 200", resp.StatusCode)
				}
			}
			upload() // connection and handshake outside the measurement

			var before, after runtime.MemStats
			b.SetBytes(size)
			b.ReportAllocs()
			runtime.ReadMemStats(&before)
			ops := 0
			for b.Loop() {
				upload()
				ops++
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(ops)/(1<<20), "MiB-alloc/op")
		})
	}
}

// BenchmarkKeepAliveGET compares a keep-alive GET through a bare, tuned
// http.Transport with the same GET through securehttp with pins, a bearer
// token and retries all on. The difference in allocs/op is the per-request
// cost of the hardening; the pin check belongs to the handshake.
func BenchmarkKeepAliveGET(b *testing.B) {
	p := sharedPKI(b)
	srv := testutil.StartServer(b, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	url := testutil.HostURL(srv, hostAPI, "/")
	bare := &http.Transport{
		DialContext:         testutil.LoopbackDial,
		TLSClientConfig:     &tls.Config{RootCAs: p.root.Pool()},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
	}
	b.Cleanup(bare.CloseIdleConnections)
	cfg := testConfig(b)
	cfg.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin()}}}
	cfg.Bearer = &Bearer{Store: NewMemoryStore(Token{Value: "opaque-benchmark-token"}), Hosts: []string{hostAPI}}
	hardened := newTestTransport(b, cfg)
	for _, tt := range []struct {
		name string
		rt   http.RoundTripper
	}{{"net-http", bare}, {"securehttp", hardened}} {
		b.Run(tt.name, func(b *testing.B) {
			client := &http.Client{Transport: tt.rt}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
