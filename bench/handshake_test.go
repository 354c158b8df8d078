package bench

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// BenchmarkHandshake measures requests that each open a new connection
// (req.Close: keep-alives off), so that the TLS handshake dominates. It
// compares securehttp with pins against the same configuration without pins
// (the pin check is the only difference), and bare net/http.
//
// "full" goes to a server name whose configuration has session tickets off,
// so every handshake verifies the chain; "resumed" goes to one with tickets
// on, so after the first request every handshake resumes a TLS 1.3 session
// (securehttp checks pins on resumed handshakes too). The server reports
// conns/op (want 1) and resumed/op (want 0 and 1) to show that each case
// measures what it says.
func BenchmarkHandshake(b *testing.B) {
	f := server(b)
	clients := []struct {
		name string
		new  func(b *testing.B) *http.Client
	}{
		{"bare", func(*testing.B) *http.Client { return &http.Client{Transport: f.baseTransport()} }},
		{"securehttp-nopins", func(b *testing.B) *http.Client {
			return f.secureClient(b, secureOptions{token: longJWT(time.Now()), refresh: refuseRefresh})
		}},
		{"securehttp", func(b *testing.B) *http.Client {
			return f.secureClient(b, secureOptions{pins: true, token: longJWT(time.Now()), refresh: refuseRefresh})
		}},
	}
	for _, hs := range []struct{ name, host string }{{"full", hostFull}, {"resumed", hostH1}} {
		for _, c := range clients {
			hc := c.new(b)
			url := "https://" + hs.host + "/get"
			b.Run(fmt.Sprintf("handshake=%s/client=%s", hs.name, c.name), func(b *testing.B) {
				ctx := b.Context()
				// The first request fills the session cache for "resumed".
				if err := getClosing(ctx, hc, url); err != nil {
					b.Fatal(err)
				}
				before, err := f.stats()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				cpu := cpuTime()
				b.ResetTimer()
				for range b.N {
					if err := getClosing(ctx, hc, url); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
				after, err := f.stats()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(after.conns-before.conns)/float64(b.N), "conns/op")
				b.ReportMetric(float64(after.resumed-before.resumed)/float64(b.N), "resumed/op")
			})
			hc.CloseIdleConnections()
		}
	}
}

// getClosing sends a GET that closes its connection afterwards.
func getClosing(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Close = true
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	return drain(resp)
}

// refuseRefresh is the Refresh of a client whose day-long token must never
// need one.
func refuseRefresh(context.Context) (string, error) {
	return "", fmt.Errorf("unexpected refresh of a day-long token")
}
