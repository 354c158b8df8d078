package securehttp

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	defaultBudget = 0.2
	// budgetWindow is how many one-second slots the budget looks back over.
	budgetWindow = 10
	// budgetFloor is how many resends per second are allowed to a host
	// whatever its share, so that a client sending little can still retry.
	budgetFloor = 10
	// maxBudgetHosts bounds the per-host table; hosts beyond it, when none
	// has been idle for a whole window, share one budget.
	maxBudgetHosts = 1024
)

// retryBudget bounds the resends to each host (retries, 401 replays, DPoP
// nonce replays) to a share of the requests it was sent over the last
// budgetWindow seconds, plus budgetFloor resends per second, so that retries
// cannot multiply the load on a failing server. A nil *retryBudget allows
// every resend.
//
// Recording a request is one map read and one atomic update: the table of
// hosts is copied on write, and each host keeps its counts in one-second
// slots, each a word holding the second and the count together.
type retryBudget struct {
	ratio float64
	now   func() time.Time

	mu       sync.Mutex // serialises writers of hosts
	hosts    atomic.Pointer[map[string]*hostBudget]
	overflow hostBudget   // shared by hosts beyond maxBudgetHosts
	fullAt   atomic.Int64 // the Unix second the table was last found full
}

type hostBudget struct {
	requests [budgetWindow]atomic.Uint64
	resends  [budgetWindow]atomic.Uint64
}

// newRetryBudget returns the budget for ratio, nil for no budget.
func newRetryBudget(ratio float64, now func() time.Time) *retryBudget {
	if ratio < 0 {
		return nil
	}
	if ratio == 0 {
		ratio = defaultBudget
	}
	b := &retryBudget{ratio: ratio, now: now}
	b.hosts.Store(&map[string]*hostBudget{})
	return b
}

// validBudget reports whether v is a usable RetryPolicy.Budget.
func validBudget(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// request records a request sent to host, a normalised host name.
func (b *retryBudget) request(host string) {
	if b == nil {
		return
	}
	sec := b.now().Unix()
	add(&b.host(host).requests, sec)
}

// allowResend reports whether host's budget allows one more resend, and
// spends it if so.
func (b *retryBudget) allowResend(host string) bool {
	if b == nil {
		return true
	}
	sec := b.now().Unix()
	h := b.host(host)
	resends, thisSecond := sum(&h.resends, sec)
	requests, _ := sum(&h.requests, sec)
	if thisSecond >= budgetFloor && float64(resends) >= b.ratio*float64(requests) {
		return false
	}
	add(&h.resends, sec)
	return true
}

// host returns host's counters, adding them on first use.
func (b *retryBudget) host(host string) *hostBudget {
	if h, ok := (*b.hosts.Load())[host]; ok {
		return h
	}
	sec := b.now().Unix()
	if b.fullAt.Load() == sec {
		// Looking again within the same second would copy the whole
		// table for each request to a host beyond the bound.
		return &b.overflow
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.hosts.Load()
	if h, ok := old[host]; ok {
		return h
	}
	// Copy the table, leaving out hosts idle for a whole window: their
	// counts are all out of date, so forgetting them changes nothing.
	m := make(map[string]*hostBudget, len(old)+1)
	for k, h := range old {
		if n, _ := sum(&h.requests, sec); n > 0 {
			m[k] = h
		} else if r, _ := sum(&h.resends, sec); r > 0 {
			m[k] = h
		}
	}
	if len(m) >= maxBudgetHosts {
		b.hosts.Store(&m)
		b.fullAt.Store(sec)
		return &b.overflow
	}
	h := new(hostBudget)
	m[strings.Clone(host)] = h
	b.hosts.Store(&m)
	return h
}

// A slot word holds a Unix second in its high 32 bits and a count in its low
// 32 bits, so that moving a slot to a new second and counting are one
// compare-and-swap.
const countBits = 32

// add counts one event at second sec.
func add(slots *[budgetWindow]atomic.Uint64, sec int64) {
	s := &slots[uint64(sec)%budgetWindow]
	stamp := uint64(uint32(sec)) << countBits
	for {
		v := s.Load()
		next := stamp | 1
		if v&^(1<<countBits-1) == stamp {
			if v&(1<<countBits-1) == 1<<countBits-1 {
				return // saturated
			}
			next = v + 1
		}
		if s.CompareAndSwap(v, next) {
			return
		}
	}
}

// sum returns the count of the window ending at second sec, and that of sec
// alone.
func sum(slots *[budgetWindow]atomic.Uint64, sec int64) (window, now uint64) {
	for i := range slots {
		v := slots[i].Load()
		age := uint32(sec) - uint32(v>>countBits)
		if v == 0 || age >= budgetWindow {
			continue
		}
		n := v & (1<<countBits - 1)
		window += n
		if age == 0 {
			now = n
		}
	}
	return window, now
}

// allowResend reports whether x may be sent again (r says why), and pays
// for it from the budget of x's host. When the budget is spent it says so
// in a Debug event and to the hooks, and the caller must return the last
// outcome as it is.
func (t *transport) allowResend(x *exchange, r resend) bool {
	if t.budget == nil || t.budget.allowResend(x.host) {
		return true
	}
	t.logger.Debug("securehttp: not resending: the host's retry budget is spent",
		"method", x.req.Method, "url", redactURL(x.req.URL), "resend", r.String())
	t.hooks.budgetExhausted(x, r)
	return false
}
