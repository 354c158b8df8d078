package securehttp

import (
	"context"
	"testing"
	"time"
)

// stallingLease is a shared store whose TryLease never answers: it blocks
// until its context ends, as a Redis that accepts the connection and stalls
// would.
type stallingLease struct{ fakeShared }

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
