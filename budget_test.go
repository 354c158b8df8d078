package securehttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testutil"
)

// newBudgetClock returns a settable clock for the budget's window.
func newBudgetClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// budgetEnv is a server on api.test that counts the requests it gets and
// answers each with fail(n), n counting from 1; and a Transport using clk,
// retrying at once.
type budgetEnv struct {
	client   *http.Client
	tr       *transport
	url      string
	requests atomic.Int64
	logs     *testutil.LogBuffer
	clk      *testutil.Clock
}

func newBudgetEnv(t *testing.T, policy RetryPolicy, hooks *Hooks, status func(n int64) int) *budgetEnv {
	t.Helper()
	e := &budgetEnv{clk: newBudgetClock()}
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := status(e.requests.Add(1))
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d", code)
	}))
	cfg := testConfig(t)
	policy.MinWait, policy.MaxWait = time.Microsecond, time.Microsecond
	cfg.Retry = policy
	cfg.Hooks = hooks
	cfg.Logger, e.logs = testutil.NewLogger()
	e.tr = newTestTransport(t, cfg)
	e.tr.now = e.clk.Now
	e.client = &http.Client{Transport: e.tr}
	e.url = testutil.HostURL(srv, hostAPI, "/things?key=secret")
	return e
}

// get sends one GET and returns its status and body.
func (e *budgetEnv) get(t *testing.T) (int, string) {
	t.Helper()
	resp, err := e.client.Get(e.url)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp.StatusCode, string(body)
}

func always(code int) func(int64) int { return func(int64) int { return code } }

// TestBudgetAlwaysFailingServer sends 400 requests, all within one second,
// to a server answering 503 to everything: with the budget it gets at most
// 400 × 1.2 attempts plus the floor's first second, without it 4 × 400.
func TestBudgetAlwaysFailingServer(t *testing.T) {
	t.Parallel()
	const requests = 400
	tests := []struct {
		name          string
		budget        float64
		minAttempts   int64
		maxAttempts   int64
		wantExhausted bool
	}{
		{"default budget", 0, requests + 1, requests*12/10 + budgetFloor, true},
		{"budget 0.5", 0.5, requests*15/10 - budgetFloor, requests*15/10 + budgetFloor, true},
		{"no budget", -1, 4 * requests, 4 * requests, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var exhausted atomic.Int64
			hooks := &Hooks{BudgetExhausted: func(_ context.Context, e AttemptEvent) {
				if e.Resend != resendRetry.String() || e.Host != hostAPI || strings.Contains(e.URL, "secret") {
					t.Errorf("got event %+v, want a retry to %s without the query", e, hostAPI)
				}
				exhausted.Add(1)
			}}
			e := newBudgetEnv(t, RetryPolicy{Budget: tt.budget}, hooks, always(http.StatusServiceUnavailable))
			for range requests {
				// The caller gets the last response as it is.
				if status, body := e.get(t); status != http.StatusServiceUnavailable || body != "status 503" {
					t.Fatalf("got %d %q, want 503 %q", status, body, "status 503")
				}
			}
			got := e.requests.Load()
			t.Logf("%d requests to an always-failing server: %d attempts (Budget %v)", requests, got, tt.budget)
			if got < tt.minAttempts || got > tt.maxAttempts {
				t.Errorf("got %d attempts, want %d to %d", got, tt.minAttempts, tt.maxAttempts)
			}
			logged := strings.Contains(e.logs.String(), "retry budget is spent")
			if tt.wantExhausted != (exhausted.Load() > 0) || tt.wantExhausted != logged {
				t.Errorf("got %d BudgetExhausted events, debug event logged %v; want both %v",
					exhausted.Load(), logged, tt.wantExhausted)
			}
		})
	}
}

// TestBudgetOccasionalRetries checks that occasional failures are all
// retried: every 20th request fails once, and every request succeeds.
func TestBudgetOccasionalRetries(t *testing.T) {
	t.Parallel()
	const requests = 400
	var failed atomic.Int64
	e := newBudgetEnv(t, RetryPolicy{}, nil, func(n int64) int {
		if n%21 == 0 {
			failed.Add(1)
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	for range requests {
		if status, _ := e.get(t); status != http.StatusOK {
			t.Fatalf("got status %d, want 200", status)
		}
	}
	if got, want := e.requests.Load(), requests+failed.Load(); got != want || failed.Load() < 15 {
		t.Errorf("got %d attempts with %d failures, want %d (every failure retried)", got, failed.Load(), want)
	}
}

// TestBudgetWindowSlides checks that a spent budget comes back once its
// window has passed, and that hosts have budgets of their own.
func TestBudgetWindowSlides(t *testing.T) {
	t.Parallel()
	e := newBudgetEnv(t, RetryPolicy{}, nil, always(http.StatusServiceUnavailable))
	for range 20 {
		e.get(t)
	}
	spent := e.requests.Load()
	e.get(t)
	if got := e.requests.Load() - spent; got != 1 {
		t.Fatalf("with the budget spent, got %d attempts, want 1", got)
	}
	e.clk.Add(budgetWindow * time.Second)
	before := e.requests.Load()
	e.get(t)
	if got := e.requests.Load() - before; got != 4 {
		t.Errorf("a window later, got %d attempts, want 4 (the first and 3 retries)", got)
	}

	other := e.url
	e.url = strings.Replace(other, hostAPI, hostOther, 1)
	e.clk.Add(-budgetWindow * time.Second) // back in the spent window of api.test
	before = e.requests.Load()
	e.get(t)
	if got := e.requests.Load() - before; got != 4 {
		t.Errorf("another host, got %d attempts, want 4: each host has its own budget", got)
	}
}

// TestBudgetUnauthorizedReplay checks that a 401 replay is paid for from the
// budget: once it is spent, the 401 is returned as it is, without a replay.
func TestBudgetUnauthorizedReplay(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		budget      float64
		wantAuthHit int64
		wantStatus  int
	}{
		{"budget spent", 0, 1, http.StatusUnauthorized},
		{"no budget", -1, 2, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newBudgetClock()
			var authHits atomic.Int64
			var refreshes atomic.Int64
			srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/auth" {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				if authHits.Add(1) == 1 {
					w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
					w.WriteHeader(http.StatusUnauthorized)
					io.WriteString(w, "refused")
					return
				}
				io.WriteString(w, "ok")
			}))
			cfg := testConfig(t)
			cfg.Retry = RetryPolicy{MinWait: time.Microsecond, MaxWait: time.Microsecond, Budget: tt.budget}
			cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, Refresh: func(context.Context) (Token, error) {
				return Token{Value: fmt.Sprintf("token-%d", refreshes.Add(1)), Expiry: clk.Now().Add(time.Hour)}, nil
			}}
			tr := newTestTransport(t, cfg)
			tr.now = clk.Now
			c := &http.Client{Transport: tr}
			if tt.budget == 0 {
				// Spend the budget of api.test: the floor, and a fifth of
				// the requests, which all fail.
				for range 20 {
					resp, err := c.Get(testutil.HostURL(srv, hostAPI, "/fail"))
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
				}
			}
			resp, err := c.Get(testutil.HostURL(srv, hostAPI, "/auth"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || authHits.Load() != tt.wantAuthHit {
				t.Errorf("got %d %q after %d requests to /auth, want %d after %d",
					resp.StatusCode, body, authHits.Load(), tt.wantStatus, tt.wantAuthHit)
			}
		})
	}
}

// TestBudgetCounts checks the arithmetic: the floor, the share, the window
// and the host table's bound.
func TestBudgetCounts(t *testing.T) {
	t.Parallel()
	clk := newBudgetClock()
	b := newRetryBudget(0, clk.Now)
	allowed := func(host string, n int) int {
		got := 0
		for range n {
			if b.allowResend(host) {
				got++
			}
		}
		return got
	}
	if got := allowed("a.test", 50); got != budgetFloor {
		t.Errorf("with no requests, got %d resends allowed, want the floor %d", got, budgetFloor)
	}
	for range 100 {
		b.request("a.test")
	}
	// 10 resends already spent out of 0.2 × 100 = 20.
	if got := allowed("a.test", 50); got != 10 {
		t.Errorf("after 100 requests, got %d more resends allowed, want 10", got)
	}
	clk.Add(time.Second)
	// A new second: the floor again, as the share is spent.
	if got := allowed("a.test", 50); got != budgetFloor {
		t.Errorf("a second later, got %d resends allowed, want %d", got, budgetFloor)
	}
	clk.Add(budgetWindow * time.Second)
	for range 1000 {
		b.request("a.test")
	}
	if got := allowed("a.test", 500); got != 200 {
		t.Errorf("after 1000 requests in a fresh window, got %d resends allowed, want 200", got)
	}
	if got := allowed("b.test", 50); got != budgetFloor {
		t.Errorf("another host: got %d resends allowed, want %d", got, budgetFloor)
	}
	if newRetryBudget(-1, clk.Now) != nil || !(*retryBudget)(nil).allowResend("a.test") {
		t.Error("a negative Budget must mean no budget, allowing every resend")
	}

	for i := range maxBudgetHosts + 10 {
		b.request(fmt.Sprintf("h%d.test", i))
	}
	if got := len(*b.hosts.Load()); got > maxBudgetHosts {
		t.Errorf("got %d hosts in the table, want at most %d", got, maxBudgetHosts)
	}
	clk.Add(budgetWindow * time.Second)
	b.request("fresh.test")
	if got := len(*b.hosts.Load()); got != 1 {
		t.Errorf("a window later, got %d hosts in the table, want 1: idle hosts are forgotten", got)
	}
}

// TestBudgetConcurrent runs requests and resends from many goroutines, for
// the race detector, and checks that no count is lost.
func TestBudgetConcurrent(t *testing.T) {
	t.Parallel()
	clk := newBudgetClock()
	b := newRetryBudget(1, clk.Now)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				b.request("a.test")
				b.allowResend("a.test")
			}
		})
	}
	wg.Wait()
	sec := clk.Now().Unix()
	requests, _ := sum(&b.host("a.test").requests, sec)
	resends, _ := sum(&b.host("a.test").resends, sec)
	if requests != 8000 || resends > 8000+budgetFloor || resends < 7000 {
		t.Errorf("got %d requests and %d resends, want 8000 and about as many", requests, resends)
	}
}

// TestBudgetTokenRequests checks that the token requests of
// ClientCredentials, retried after a 5xx, pay from the budget of the token
// endpoint's host.
func TestBudgetTokenRequests(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		budget     float64
		wantTokens int64
	}{
		{"budget spent", 0, 1},
		{"no budget", -1, (tokenRequestRetries + 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var tokenHits atomic.Int64
			srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/token" {
					tokenHits.Add(1)
				}
				w.WriteHeader(http.StatusServiceUnavailable)
			}))
			cfg := testConfig(t)
			cfg.Retry = RetryPolicy{MinWait: time.Microsecond, MaxWait: time.Microsecond, Budget: tt.budget}
			cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, ClientCredentials: &ClientCredentials{
				ClientID: "client", ClientSecret: "secret", TokenURL: testutil.HostURL(srv, hostOther, "/token"),
			}}
			tr := newTestTransport(t, cfg)
			tr.now = newBudgetClock().Now
			c := &http.Client{Transport: tr}
			if tt.budget == 0 {
				for range 20 {
					resp, err := c.Get(testutil.HostURL(srv, hostOther, "/fail"))
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
				}
			}
			_, err := c.Get(testutil.HostURL(srv, hostAPI, "/"))
			if !errors.Is(err, ErrNoToken) || tokenHits.Load() != tt.wantTokens {
				t.Errorf("got error %v after %d token requests, want ErrNoToken after %d", err, tokenHits.Load(), tt.wantTokens)
			}
		})
	}
}
