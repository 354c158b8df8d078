package bench

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// The paired benchmarks run two clients in alternating blocks of requests
// (A then B, then B then A, and so on), so that load from elsewhere on the
// machine, which drifts over seconds, falls on both alike, and report the
// ratio B ÷ A of their time and CPU time per request. On a shared machine
// that ratio is far steadier than one computed from separate benchmarks.

// BenchmarkGetPaired pairs bare net/http (A) with securehttp (B) on the
// keep-alive GETs of BenchmarkGet: the figure for the "within 3%" target.
// With base=bare-token, A is bare net/http whose caller sets a bearer token
// of the same size: the difference is then securehttp's own cost, without
// the cost of carrying a token at all.
func BenchmarkGetPaired(b *testing.B) {
	f := server(b)
	for _, base := range []string{"bare", "bare-token"} {
		for _, proto := range []struct{ name, host string }{{"h1", hostH1}, {"h2", hostH2}} {
			for _, conc := range []int{1, 64} {
				benchGetPaired(b, f, base, proto.name, proto.host, conc)
			}
		}
	}
}

func benchGetPaired(b *testing.B, f *fixture, base, proto, host string, conc int) {
	clients := [2]*client{comparator(base).new(b, f), comparator("securehttp").new(b, f)}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	url := "https://" + host + "/get"
	b.Run(fmt.Sprintf("base=%s/proto=%s/conc=%d", base, proto, conc), func(b *testing.B) {
		ctx := b.Context()
		var ops [2]func() error
		for i, c := range clients {
			ops[i] = func() error { return c.get(ctx, url) }
			// The connections, before the timer starts.
			if err := concurrently(conc, conc, ops[i]); err != nil {
				b.Fatal(err)
			}
		}
		// Blocks long enough that reading the clocks costs
		// nothing, short enough to alternate many times a second.
		block := max(64, 16*conc)
		alternate(b, conc, block, ops, [2]string{"base", "securehttp"})
	})
}

// BenchmarkHandshakePaired pairs securehttp with pins (B) with another client
// (A) on the new-connection GETs of BenchmarkHandshake. With base=nopins, A is
// the same securehttp configuration without pins: the figure for the "≤ 2%
// apart" target. With base=bare, A is bare net/http: what a new connection
// costs with everything securehttp adds (pins, bearer, retries).
func BenchmarkHandshakePaired(b *testing.B) {
	f := server(b)
	bases := []struct {
		name string
		new  func(b *testing.B) *http.Client
	}{
		{"nopins", func(b *testing.B) *http.Client {
			return f.secureClient(b, secureOptions{token: longJWT(time.Now()), refresh: refuseRefresh})
		}},
		{"bare", func(*testing.B) *http.Client { return &http.Client{Transport: f.baseTransport()} }},
	}
	for _, base := range bases {
		for _, hs := range []struct{ name, host string }{{"full", hostFull}, {"resumed", hostH1}} {
			clients := [2]*http.Client{
				base.new(b),
				f.secureClient(b, secureOptions{pins: true, token: longJWT(time.Now()), refresh: refuseRefresh}),
			}
			url := "https://" + hs.host + "/get"
			b.Run("base="+base.name+"/handshake="+hs.name, func(b *testing.B) {
				ctx := b.Context()
				var ops [2]func() error
				for i, hc := range clients {
					ops[i] = func() error { return getClosing(ctx, hc, url) }
					// Fills the session cache for "resumed".
					if err := ops[i](); err != nil {
						b.Fatal(err)
					}
				}
				alternate(b, 1, 16, ops, [2]string{"base", "securehttp"})
			})
			for _, hc := range clients {
				hc.CloseIdleConnections()
			}
		}
	}
}

// alternate calls each of ops b.N times from conc goroutines, in blocks of
// block calls, A first in even rounds and B first in odd ones, and reports
// each one's time per call as <name>-ns/op and the ratios B ÷ A of time
// (ratio) and of the client process's CPU time (cpu-ratio). ns/op is
// suppressed: it would add both clients' times together.
func alternate(b *testing.B, conc, block int, ops [2]func() error, names [2]string) {
	b.Helper()
	var wall, cpu [2]time.Duration
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		n := min(block, b.N-done)
		for k := range 2 {
			i := k ^ round&1
			w, c := time.Now(), cpuTime()
			if err := concurrently(conc, n, ops[i]); err != nil {
				b.Fatal(err)
			}
			wall[i] += time.Since(w)
			cpu[i] += cpuTime() - c
		}
		done += n
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(wall[0])/n, names[0]+"-ns/op")
	b.ReportMetric(float64(wall[1])/n, names[1]+"-ns/op")
	b.ReportMetric(float64(wall[1])/float64(wall[0]), "ratio")
	b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "cpu-ratio")
}
