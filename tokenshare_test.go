package securehttp

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeShared is a SharedTokenStore in memory whose behaviour each test sets.
type fakeShared struct {
	mu       sync.Mutex
	tok      Token
	loadErr  error
	leaseErr error
	held     bool // another process holds the lease for good
	// After saveAfter loads, another process has saved other.
	saveAfter int
	other     Token
	// A leased Save finds that other was saved first.
	stale bool

	loads, leases, saves, leaseSaves, releases int
}

func (f *fakeShared) Load(context.Context) (Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	if f.loadErr != nil {
		return Token{}, f.loadErr
	}
	if f.saveAfter > 0 && f.loads >= f.saveAfter {
		f.tok = f.other
	}
	return f.tok, nil
}

func (f *fakeShared) Save(_ context.Context, tok Token) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saves++
	if f.loadErr != nil {
		return f.loadErr
	}
	f.tok = tok
	return nil
}

func (f *fakeShared) ForBinding(string) SharedTokenStore { return f }

func (f *fakeShared) TryLease(context.Context) (Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leases++
	if f.leaseErr != nil {
		return nil, f.leaseErr
	}
	if f.held {
		return nil, nil
	}
	return fakeLease{f}, nil
}

type fakeLease struct{ f *fakeShared }

func (l fakeLease) Save(_ context.Context, tok Token) error {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	l.f.leaseSaves++
	if l.f.stale {
		l.f.tok = l.f.other
		return ErrStaleLease
	}
	l.f.tok = tok
	return nil
}

func (l fakeLease) Release(context.Context) error {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	l.f.releases++
	return nil
}

func TestSharedStoreCoordination(t *testing.T) {
	t.Parallel()
	errDown := errors.New("shared store down")
	tests := []struct {
		name string
		// setup configures the store; mine is what Refresh returns, other
		// what another process saves.
		setup func(f *fakeShared, other Token)
		// want is "mine" or "other": the token the request carries.
		want                              string
		refreshes, leaseSaves, releasesAt int
	}{
		{"store down: refresh alone", func(f *fakeShared, _ Token) { f.loadErr = errDown }, "mine", 1, 0, 0},
		{"lease error: refresh alone", func(f *fakeShared, _ Token) { f.leaseErr = errDown }, "mine", 1, 0, 0},
		{"leader refreshes and shares", func(*fakeShared, Token) {}, "mine", 1, 1, 1},
		{"leader re-reads and finds a token", func(f *fakeShared, o Token) { f.saveAfter, f.other = 2, o }, "other", 0, 0, 1},
		{"follower takes the leader's token", func(f *fakeShared, o Token) { f.held, f.saveAfter, f.other = true, 3, o }, "other", 0, 0, 0},
		{"stale lease takes the newer token", func(f *fakeShared, o Token) { f.stale, f.other = true, o }, "other", 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := tokNewClock()
			mine := tokFresh(t, clk.Now(), time.Hour)
			other := tokFresh(t, clk.Now().Add(-time.Second), time.Hour)
			f := &fakeShared{}
			tt.setup(f, Token{Value: other})
			refresh, calls := tokCounted(tokStatic(mine))
			e := tokSetup(t, clk, &Bearer{Store: f, Refresh: refresh, Hosts: []string{hostAPI}}, nil)
			got := e.tokMustGet(t)
			want := map[string]string{"mine": tokBearer(mine), "other": tokBearer(other)}[tt.want]
			if got != want {
				t.Errorf("server got the %s token, want %s", map[bool]string{true: "refreshed", false: "other"}[got == tokBearer(mine)], tt.want)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if c := calls.Load(); c != int64(tt.refreshes) {
				t.Errorf("Refresh calls: got %d, want %d", c, tt.refreshes)
			}
			if f.leaseSaves != tt.leaseSaves {
				t.Errorf("leased saves: got %d, want %d", f.leaseSaves, tt.leaseSaves)
			}
			if f.releases != tt.releasesAt {
				t.Errorf("releases: got %d, want %d", f.releases, tt.releasesAt)
			}
			if tt.refreshes > 0 && tt.leaseSaves == 0 && f.saves != 1 {
				t.Errorf("saves of a token refreshed alone: got %d, want 1", f.saves)
			}
		})
	}
}

// bindingFake is a SharedTokenStore that records the bindings asked for.
type bindingFake struct {
	*MemoryStore
	mu    sync.Mutex
	asked []string
	inner *MemoryStore
}

func (b *bindingFake) TryLease(context.Context) (Lease, error) {
	return memoryLease{b.MemoryStore}, nil
}

func (b *bindingFake) ForBinding(binding string) SharedTokenStore {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked = append(b.asked, binding)
	return memoryShared{b.inner}
}

func TestBindingStoreForPlainBearer(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	outer, inner := tokFresh(t, clk.Now(), time.Hour), tokFresh(t, clk.Now().Add(-time.Second), time.Hour)
	b := &bindingFake{MemoryStore: NewMemoryStore(Token{Value: outer}), inner: NewMemoryStore(Token{Value: inner})}
	e := tokSetup(t, clk, &Bearer{Store: b, Hosts: []string{hostAPI}}, nil)
	if got := e.tokMustGet(t); got != tokBearer(inner) {
		t.Errorf("server got the outer store's token, want the one of ForBinding(\"\")")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.asked) != 1 || b.asked[0] != "" {
		t.Errorf("ForBinding calls: got %q, want one with \"\"", b.asked)
	}
}

// panickingShared is a SharedTokenStore of the user's with a bug in one of
// its methods.
type panickingShared struct {
	*fakeShared
	load, lease bool // which one panics
}

func (s panickingShared) Load(ctx context.Context) (Token, error) {
	if s.load {
		panic("store bug: Load")
	}
	return s.fakeShared.Load(ctx)
}

func (s panickingShared) TryLease(ctx context.Context) (Lease, error) {
	if s.lease {
		panic("store bug: TryLease")
	}
	return s.fakeShared.TryLease(ctx)
}

// A shared store whose methods panic, on the goroutines that bound its
// calls, is a store that fails: the process refreshes without it, as when
// the store is down, and lives on.
func TestSharedStorePanicRefreshesAlone(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	fresh := tokFresh(t, clk.Now(), time.Hour)
	for _, tt := range []struct {
		name        string
		load, lease bool
	}{
		{"Load", true, false},
		{"TryLease", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := panickingShared{fakeShared: &fakeShared{}, load: tt.load, lease: tt.lease}
			e := tokSetup(t, clk, &Bearer{Store: store, Refresh: tokStaticT(fresh), Hosts: []string{hostAPI}}, nil)
			if got := e.tokMustGet(t); got != tokBearer(fresh) {
				t.Errorf("server got %q, want the refreshed token", got)
			}
		})
	}
}

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

// TestSharedStoreStalledLeaseStillRefreshes proves that a shared store that
// stalls on TryLease costs a refresh at most half of RefreshTimeout: the
// process then refreshes on its own, and the request succeeds.
func TestSharedStoreStalledLeaseStillRefreshes(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	mine := tokFresh(t, clk.Now(), time.Hour)
	f := &stallingLease{}
	refresh, calls := tokCounted(tokStatic(mine))
	// The request's success within RefreshTimeout is the proof: a refresh
	// held by the stalled store would end in "did not finish within
	// RefreshTimeout". The bound leaves room for a loaded machine.
	e := tokSetup(t, clk, &Bearer{Store: f, Refresh: refresh, Hosts: []string{hostAPI}, RefreshTimeout: 2 * time.Second}, nil)
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
	if hits := e.rec.all(); len(hits) != 1 || hits[0].auth != tokBearer(mine) {
		t.Errorf("server saw %d requests (want 1) carrying the refreshed token", len(hits))
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

// TestSharedStoreCallsBounded proves that a shared store that ignores its
// context cannot hold a refresh past RefreshTimeout: the process refreshes
// on its own and the request succeeds in time.
func TestSharedStoreCallsBounded(t *testing.T) {
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
			// The deaf store never returns while the test runs: a request
			// that gets its 200 was not held by it.
			code, _, err := e.get("/")
			if err != nil || code != 200 {
				t.Fatalf("request with a store deaf on %s: got %d, %v; want 200", op, code, err)
			}
			if c := calls.Load(); c != 1 {
				t.Errorf("Refresh calls: got %d, want 1", c)
			}
		})
	}
}
