package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// burstSize requests start at once, over one HTTP/2 connection (the
	// server allows 2000 concurrent streams), so that no handshake lands in
	// the latencies.
	burstSize = 1000
	// refreshDelay is how long Refresh takes, as a slow token endpoint would.
	refreshDelay = 200 * time.Millisecond
)

// stampede is one timeline of BenchmarkRefreshStampede. Every time is an
// offset from the first token's iat, which is a whole second (JWT claims
// are whole seconds), so the timeline is exact.
//
// The rules, from tokenstore.go: a token of lifetime L = exp-iat is usable
// until exp - skew, with skew = min(L/10, 5 s); it is due for a background
// refresh from exp - window, where window is Bearer.RefreshWindow or, when
// that is zero, min(max(L/10, 30 s), 5 min, L/2). A request with a usable
// token never waits; one without waits for the single refresh in flight.
type stampede struct {
	name     string
	lifetime time.Duration // L of the first token
	window   time.Duration // Bearer.RefreshWindow; 0 means the default
	quiet    time.Duration // warm-up and baseline must end before this: the window opens
	burstAt  time.Duration // when the measured burst starts
}

var stampedes = []stampede{
	// The token expires on an idle client. L = 5 s: skew = 500 ms, so the
	// token is unusable from 4.5 s; the default window is L/2 = 2.5 s, so
	// it opens at 2.5 s, but no request comes between 2.5 s and the burst
	// at 4.55 s, so no refresh ran ahead. All 1000 requests need a token
	// that does not exist yet: the target is that they share one refresh
	// (they are delayed by it by design: no request goes out expired).
	{name: "expiry", lifetime: 5 * time.Second, quiet: 2500 * time.Millisecond, burstAt: 4550 * time.Millisecond},
	// The burst comes inside the refresh-ahead window. L = 40 s: skew =
	// 4 s, so the token is usable until 36 s; RefreshWindow = 37 s opens the
	// window at 3 s (the default would open it at 20 s, too long to wait).
	// The burst at 3.05 s starts one background refresh and every request
	// goes on with the current token: the target is 1 refresh and 0
	// requests delayed.
	{name: "window", lifetime: 40 * time.Second, window: 37 * time.Second, quiet: 3 * time.Second, burstAt: 3050 * time.Millisecond},
}

// errTimeline reports a warm-up that ran into the refresh window, on a
// machine too busy at that moment; the timeline is then run again.
var errTimeline = errors.New("the timeline is invalid")

// BenchmarkRefreshStampede sends bursts of 1000 concurrent requests through
// securehttp (pins, bearer and retries on) whose Refresh takes 200 ms, at
// token expiry and inside the refresh-ahead window. Each op is one whole
// timeline (run it with -benchtime=1x; it takes 4 to 6 s). It reports:
//
//	refreshes       Refresh calls (target 1)
//	delayed         requests that waited for the refresh (target 0 in the window)
//	p50-ms, p99-ms  latency of the burst's requests
//	base-p50-ms...  the same burst on the same client before the window opened
//	extra-p50-ms... the difference: what the refresh cost the requests
//
// A request waited for the refresh when it started before Refresh returned
// and still carried the refreshed token (the server echoes the end of the
// token it got): a request that does not wait is sent with the current
// token, which is the old one until the refresh is over.
//
// ns/op is suppressed: it would be the timeline's length, sleeps included.
func BenchmarkRefreshStampede(b *testing.B) {
	f := server(b)
	for _, sc := range stampedes {
		b.Run("at="+sc.name, func(b *testing.B) {
			var sum stampedeResult
			for range b.N {
				for try := 1; ; try++ {
					r, err := runStampede(b, f, sc)
					if err == nil {
						sum.add(r)
						break
					}
					if try == 3 {
						b.Fatal(err)
					}
					b.Logf("%v; running it again", err)
				}
			}
			n := float64(b.N)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(sum.refreshes/n, "refreshes")
			b.ReportMetric(sum.delayed/n, "delayed")
			b.ReportMetric(ms(sum.p50)/n, "p50-ms")
			b.ReportMetric(ms(sum.p99)/n, "p99-ms")
			b.ReportMetric(ms(sum.baseP50)/n, "base-p50-ms")
			b.ReportMetric(ms(sum.baseP99)/n, "base-p99-ms")
			b.ReportMetric(ms(sum.p50-sum.baseP50)/n, "extra-p50-ms")
			b.ReportMetric(ms(sum.p99-sum.baseP99)/n, "extra-p99-ms")
		})
	}
}

type stampedeResult struct {
	refreshes, delayed         float64
	p50, p99, baseP50, baseP99 time.Duration
}

func (s *stampedeResult) add(r stampedeResult) {
	s.refreshes += r.refreshes
	s.delayed += r.delayed
	s.p50 += r.p50
	s.p99 += r.p99
	s.baseP50 += r.baseP50
	s.baseP99 += r.baseP99
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runStampede runs one timeline. It returns an error wrapping errTimeline
// when the warm-up overran, and fails b on any other error.
func runStampede(b *testing.B, f *fixture, sc stampede) (stampedeResult, error) {
	b.Helper()
	// Start on a whole second, so that the token's iat is now.
	iat := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(iat))

	// refreshed receives the new token's tail and the time Refresh returned
	// it, once.
	type refreshEnd struct {
		tail string
		at   time.Time
	}
	var refreshes atomic.Int64
	refreshed := make(chan refreshEnd, 1)
	refresh := func(ctx context.Context) (string, error) {
		refreshes.Add(1)
		t := time.NewTimer(refreshDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		now := time.Now()
		tok := mintJWT(now, now.Add(time.Hour))
		select {
		case refreshed <- refreshEnd{tail: tok[len(tok)-tokenTail:], at: time.Now()}:
		default:
		}
		return tok, nil
	}
	hc := f.secureClient(b, secureOptions{
		pins:    true,
		token:   mintJWT(iat, iat.Add(sc.lifetime)),
		refresh: refresh,
		window:  sc.window,
	})
	defer hc.CloseIdleConnections()
	ctx := b.Context()
	url := "https://" + hostH2 + "/auth"

	// The first request opens the connection and loads the token from the
	// store (no Refresh: it is usable). A first burst, discarded, warms up
	// what 1000 concurrent requests need (goroutine stacks, HTTP/2 stream
	// state), so that the baseline burst costs what the measured one would
	// without a refresh.
	if _, err := getOnce(ctx, hc, url); err != nil {
		b.Fatal(err)
	}
	if _, err := burst(ctx, hc, url); err != nil {
		b.Fatal(err)
	}
	base, err := burst(ctx, hc, url)
	if err != nil {
		b.Fatal(err)
	}
	if at := time.Since(iat); at >= sc.quiet {
		return stampedeResult{}, fmt.Errorf("%w: warm-up and baseline ended %v after iat, past %v when the refresh window opens",
			errTimeline, at.Round(time.Millisecond), sc.quiet)
	}
	if n := refreshes.Load(); n != 0 {
		b.Fatalf("got %d refreshes before the burst, want 0", n)
	}

	time.Sleep(time.Until(iat.Add(sc.burstAt)))
	lat, err := burst(ctx, hc, url)
	if err != nil {
		b.Fatal(err)
	}
	var end refreshEnd
	select {
	case end = <-refreshed:
	case <-time.After(10 * refreshDelay):
		b.Fatal("no refresh ended after the burst")
	}

	r := stampedeResult{
		refreshes: float64(refreshes.Load()),
		p50:       quantile(lat, 0.50),
		p99:       quantile(lat, 0.99),
		baseP50:   quantile(base, 0.50),
		baseP99:   quantile(base, 0.99),
	}
	for _, s := range lat {
		if s.start.Before(end.at) && s.tail == end.tail {
			r.delayed++
		}
	}
	return r, nil
}

// sample is one request of a burst.
type sample struct {
	start time.Time
	lat   time.Duration // from start to the end of the response body
	tail  string        // the end of the token the server received
}

// burst sends burstSize GETs at once and returns them, by latency.
func burst(ctx context.Context, hc *http.Client, url string) ([]sample, error) {
	samples := make([]sample, burstSize)
	errs := make([]error, burstSize)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range samples {
		wg.Go(func() {
			<-start
			s := &samples[i]
			s.start = time.Now()
			s.tail, errs[i] = getOnce(ctx, hc, url)
			s.lat = time.Since(s.start)
		})
	}
	close(start)
	wg.Wait()
	failed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if first != nil {
		return nil, fmt.Errorf("burst: %d of %d requests failed, the first with: %w", failed, burstSize, first)
	}
	slices.SortFunc(samples, func(a, b sample) int { return cmp.Compare(a.lat, b.lat) })
	return samples, nil
}

// quantile returns the q-quantile of the latencies of sorted (nearest rank).
func quantile(sorted []sample, q float64) time.Duration {
	i := int(float64(len(sorted))*q+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))].lat
}

// getOnce sends a GET to /auth and returns the X-Token-Tail it answers.
func getOnce(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	return resp.Header.Get("X-Token-Tail"), drain(resp)
}
