package securehttp

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testutil"
)

// stallingLease is a shared store whose TryLease never answers: it blocks
// until its context ends, as a Redis that accepts the connection and stalls
// would.
type stallingLease struct{ fakeShared }

func (s *stallingLease) ForBinding(string) SharedTokenStore { return s }

func (s *stallingLease) TryLease(ctx context.Context) (Lease, error) {
	s.mu.Lock()
	s.leases++
	s.mu.Unlock()
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestAttack3StalledLeaseStillRefreshes proves that a shared store that
// stalls on TryLease costs a refresh at most half of RefreshTimeout: the
// process then refreshes on its own, and the request succeeds.
func TestAttack3StalledLeaseStillRefreshes(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	mine := tokFresh(t, clk.Now(), time.Hour)
	f := &stallingLease{}
	refresh, calls := tokCounted(tokStatic(mine))
	e := tokSetup(t, clk, &Bearer{Store: f, Refresh: refresh, Hosts: []string{hostAPI}, RefreshTimeout: 600 * time.Millisecond}, nil)
	start := time.Now()
	code, _, err := e.get("/")
	if err != nil {
		t.Fatalf("request with a stalled shared store: got error %v, want the refreshed token sent", err)
	}
	if code != 200 {
		t.Fatalf("status: got %d, want 200", code)
	}
	if c := calls.Load(); c != 1 {
		t.Errorf("Refresh calls: got %d, want 1", c)
	}
	if d := time.Since(start); d > 600*time.Millisecond {
		t.Errorf("request took %v, want at most RefreshTimeout (600ms)", d)
	}
	if hits := e.rec.all(); len(hits) != 1 || hits[0].auth != tokBearer(mine) {
		t.Errorf("server saw %d requests (want 1) carrying the refreshed token", len(hits))
	}
}

// TestAttack3PanickingHooks proves that a hook that panics neither ends the
// process (TokenRefresh and Handshake run on goroutines no caller can
// recover on) nor fails the request, and that the panic is logged by type
// only, never by its value.
func TestAttack3PanickingHooks(t *testing.T) {
	t.Parallel()
	const secret = "panic-value-secret"
	boom := func() { panic(secret) }
	tests := []struct {
		name  string
		hooks *Hooks
	}{
		{"TokenRefresh", &Hooks{TokenRefresh: func(context.Context, TokenEvent) { boom() }}},
		{"Handshake", &Hooks{Handshake: func(context.Context, HandshakeEvent) { boom() }}},
		{"AttemptStart", &Hooks{AttemptStart: func(context.Context, AttemptEvent) context.Context { boom(); return nil }}},
		{"InjectHeader", &Hooks{InjectHeader: func(context.Context, http.Header) { boom() }}},
		{"AttemptDone", &Hooks{AttemptDone: func(context.Context, AttemptEvent) { boom() }}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := tokNewClock()
			mine := tokFresh(t, clk.Now(), time.Hour)
			rec := &tokRecorder{}
			srv := tokStartServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec.record(r)
				io.WriteString(w, "ok")
			}))
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{Refresh: tokStaticT(mine), Hosts: []string{hostAPI}}
			cfg.Hooks = tt.hooks
			var logs *testutil.LogBuffer
			cfg.Logger, logs = testutil.NewLogger()
			tr := newTestTransport(t, cfg)
			tr.now = clk.Now
			req, err := http.NewRequest(http.MethodGet, testutil.HostURL(srv, hostAPI, "/"), nil)
			if err != nil {
				t.Fatal(err)
			}
			code, body, err := tokDo(&http.Client{Transport: tr}, req)
			if err != nil || code != 200 || body != "ok" {
				t.Fatalf("request with a panicking %s hook: got %d %q %v, want 200 \"ok\"", tt.name, code, body, err)
			}
			if n := len(rec.all()); n != 1 {
				t.Errorf("server saw %d requests, want 1", n)
			}
			out := logs.String()
			if !strings.Contains(out, "hook="+tt.name) {
				t.Errorf("log does not name the panicking hook %s:\n%s", tt.name, out)
			}
			if strings.Contains(out, secret) {
				t.Errorf("log quotes the panic's value:\n%s", out)
			}
		})
	}
}

// deafStore is a shared store every call of which ignores its context and
// blocks until the test ends, as go-redis does against a stalled Redis
// (without ContextTimeoutEnabled, it waits out its own ReadTimeout).
type deafStore struct {
	stuck chan struct{}
	// what blocks: "load", "lease" or "save".
	blocks string
	fakeShared
}

func (d *deafStore) block(op string) {
	if d.blocks == op {
		<-d.stuck
	}
}

func (d *deafStore) Load(ctx context.Context) (Token, error) {
	d.block("load")
	return d.fakeShared.Load(ctx)
}

func (d *deafStore) ForBinding(string) SharedTokenStore { return d }

func (d *deafStore) TryLease(ctx context.Context) (Lease, error) {
	d.block("lease")
	return d.fakeShared.TryLease(ctx)
}

func (d *deafStore) Save(ctx context.Context, tok Token) error {
	d.block("save")
	return d.fakeShared.Save(ctx, tok)
}

// TestAttack3DeafStoreBounded proves that a shared store that ignores its
// context cannot hold a refresh past RefreshTimeout: the process refreshes
// on its own and the request succeeds in time.
func TestAttack3DeafStoreBounded(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"load", "lease", "save"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			clk := tokNewClock()
			mine := tokFresh(t, clk.Now(), time.Hour)
			d := &deafStore{stuck: make(chan struct{}), blocks: op}
			d.held = op == "save" // the save without a lease is the one that blocks
			t.Cleanup(func() { close(d.stuck) })
			refresh, calls := tokCounted(tokStatic(mine))
			const timeout = 600 * time.Millisecond
			e := tokSetup(t, clk, &Bearer{Store: d, Refresh: refresh, Hosts: []string{hostAPI}, RefreshTimeout: timeout}, nil)
			start := time.Now()
			code, _, err := e.get("/")
			if err != nil || code != 200 {
				t.Fatalf("request with a store deaf on %s: got %d, %v; want 200", op, code, err)
			}
			if d := time.Since(start); d > timeout {
				t.Errorf("request took %v, want at most RefreshTimeout (%v)", d, timeout)
			}
			if c := calls.Load(); c != 1 {
				t.Errorf("Refresh calls: got %d, want 1", c)
			}
		})
	}
}
