package securehttp

import (
	"context"
	"errors"
	"time"
)

// SharedTokenStore is a TokenStore that many processes share and that lets
// one of them refresh for all, so that a fleet makes one token request per
// expiry: redisstore.Store is one. An error or stall of the store makes a
// process refresh alone; no request fails because of it. docs/fleets.md
// describes the protocol. Implementations must be safe for concurrent use,
// and Save must refuse, with ErrStaleLease, to replace a token that expires
// later than the one it is given.
type SharedTokenStore interface {
	TokenStore
	// TryLease tries to become the one process that refreshes. It returns
	// a nil Lease and a nil error when another process holds the lease. A
	// lease lasts until Release or until ctx ends, and expires by itself
	// when its holder disappears.
	TryLease(ctx context.Context) (Lease, error)
	// ForBinding returns the store of the tokens bound to binding, so that
	// processes whose tokens are bound to different keys never share one:
	// "" for bearer tokens, "dpop:" and the DPoP key's JWK thumbprint,
	// "mtls:" and the client certificate's x5t#S256, or the two joined by
	// "+". Store a hash of it rather than the string.
	ForBinding(binding string) SharedTokenStore
}

// Lease is the right to refresh a SharedTokenStore's token, held by one
// process at a time, with a generation newer than every lease's before it.
type Lease interface {
	// Save stores tok, unless a token of a newer generation was saved
	// since the lease was taken: then it returns an error matching
	// ErrStaleLease and stores nothing.
	Save(ctx context.Context, tok Token) error
	// Release gives the lease up, if this holder still has it. It is safe
	// to call more than once.
	Release(ctx context.Context) error
}

// storeFor returns the store for tokens with binding: s.ForBinding(binding)
// when s is a SharedTokenStore, else s. ok is false when ForBinding gave no
// store: the store returned then fails every call, so that the token is
// refreshed without it and the failure is logged.
func storeFor(s TokenStore, binding string) (store TokenStore, ok bool) {
	ss, shared := s.(SharedTokenStore)
	if !shared {
		return s, true
	}
	if store = ss.ForBinding(binding); store == nil {
		return failingStore{errors.New("SharedTokenStore.ForBinding returned no store")}, false
	}
	return store, true
}

// failingStore is a TokenStore whose every call fails with err.
type failingStore struct{ err error }

func (s failingStore) Load(context.Context) (Token, error) { return Token{}, s.err }
func (s failingStore) Save(context.Context, Token) error   { return s.err }

// boundStore is where the tokens obtained now are kept: the store of their
// binding.
type boundStore struct {
	binding string
	// named is false when the client certificate cannot be named (a
	// GetClientCertificate of the user's): tokens then stay in the
	// process, out of a SharedTokenStore, rather than be filed under a binding
	// that may be another certificate's.
	named bool
	store TokenStore
}

// same reports whether b and o file tokens under the same binding.
func (b *boundStore) same(o *boundStore) bool { return b.binding == o.binding && b.named == o.named }

// bound returns the binding of the tokens obtained now and their store. The
// binding follows the client certificate: a token obtained with one
// certificate is never saved to, or taken from, another's store.
func (ts *tokenSource) bound() *boundStore {
	binding, named := ts.jkt, true
	if binding != "" {
		binding = "dpop:" + binding
	}
	if ts.cert != nil {
		x5t, ok := ts.cert()
		if binding != "" {
			binding += "+"
		}
		binding, named = binding+"mtls:"+x5t, ok
	}
	if !named {
		if _, split := ts.base.(SharedTokenStore); split {
			return &boundStore{named: false, store: ts.local}
		}
		return &boundStore{named: false, store: ts.base}
	}
	// ForBinding is asked again only when the binding changes.
	if last := ts.lastBound.Load(); last != nil && last.named && last.binding == binding {
		return last
	}
	store, ok := storeFor(ts.base, binding)
	b := &boundStore{binding: binding, named: true, store: store}
	if ok {
		ts.lastBound.Store(b)
	}
	return b
}

// stillBound reports whether the tokens obtained now still go to b's
// store: false when the client certificate changed during the refresh, so
// that a token just obtained, which may be bound to either certificate, is
// not saved under b's binding. A store that is not a SharedTokenStore is the
// same for every binding.
func (ts *tokenSource) stillBound(b *boundStore) bool {
	if _, split := ts.base.(SharedTokenStore); !split {
		return true
	}
	if !b.same(ts.bound()) {
		ts.logger.Debug("securehttp: the client certificate changed during the refresh; the token is not saved")
		return false
	}
	return true
}

const (
	// firstPoll and maxPoll bound the backoff of a process waiting for
	// another's refresh: a follower sees the new token at most maxPoll
	// after it is saved, for two store calls per poll.
	firstPoll = 10 * time.Millisecond
	maxPoll   = 100 * time.Millisecond
	// releaseTimeout bounds giving a lease back after the refresh's own
	// context has ended; an unreleased lease expires by itself.
	releaseTimeout = time.Second
)

// obtainShared is obtain for a SharedTokenStore, b's: one process of many
// refreshes, the others take its token from the store.
func (ts *tokenSource) obtainShared(ctx context.Context, b *boundStore, s SharedTokenStore, prev *token) (*token, error) {
	rejected := ts.rejectedToken()
	// Waiting for others gets at most half of the refresh's remaining time,
	// so that a process left waiting can still refresh on its own.
	wctx, cancel := halfOf(ctx)
	defer cancel()
	wait := firstPoll
	for {
		stored, err := bounded(wctx, s.Load)
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err() // stopped, or out of time
		}
		if err != nil {
			ts.logger.Warn("securehttp: shared token store unavailable; refreshing without it", "error", err)
			break
		}
		if tok := ts.adoptable(stored, prev, rejected); tok != nil {
			ts.logger.Debug("securehttp: bearer token taken from the shared store", "expires", tok.exp)
			return tok, nil
		}
		lease, lctx, lcancel, err := tryLease(ctx, wctx, s)
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			ts.logger.Warn("securehttp: shared token store unavailable; refreshing without it", "error", err)
			break
		}
		if lease != nil {
			defer lcancel()
			return ts.lead(lctx, b, s, lease, prev, rejected)
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-wctx.Done():
		}
		timer.Stop()
		if wctx.Err() != nil {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			ts.logger.Warn("securehttp: no other process saved a new token in time; refreshing without waiting longer")
			break
		}
		wait = min(wait*2, maxPoll)
	}
	tok, got, err := ts.fetch(ctx, rejected)
	if err != nil || !ts.stillBound(b) {
		return tok, err
	}
	sctx, cancel := halfOf(ctx)
	defer cancel()
	if _, err := bounded(sctx, saver(s.Save, got)); err != nil {
		ts.saveFailed(ctx, err)
	}
	return tok, nil
}

// tryLease calls s.TryLease, giving up when wctx ends: a store that stalls
// must not take the time left to refresh alone. The lease, if one comes in
// time, lasts as long as ctx, under the context returned, until the caller
// calls the cancel function returned with it.
func tryLease(ctx, wctx context.Context, s SharedTokenStore) (Lease, context.Context, context.CancelFunc, error) {
	lctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(wctx, cancel)
	type result struct {
		lease Lease
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		l, err := noPanic("the shared token store's TryLease", func() (Lease, error) { return s.TryLease(lctx) })
		ch <- result{l, err}
	}()
	var lease Lease
	var err error
	select {
	case r := <-ch:
		lease, err = r.lease, r.err
	case <-wctx.Done():
		// The store ignores its context: leave the call to finish on its
		// own, and give back any lease it brings.
		go func() {
			if r := <-ch; r.lease != nil {
				rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
				defer rcancel()
				_, _ = bounded(rctx, releaser(r.lease))
			}
		}()
	}
	if !stop() {
		// wctx ended first: lctx is canceled, and a lease taken under it
		// is over; give it back rather than leave it to expire.
		if lease != nil {
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
			_, _ = bounded(rctx, releaser(lease))
			rcancel()
		}
		if err == nil {
			err = wctx.Err()
		}
		return nil, nil, nil, wrap("shared token store lease", err)
	}
	if err != nil || lease == nil {
		cancel()
		return nil, nil, nil, err
	}
	return lease, lctx, cancel, nil
}

// bounded runs call, a call to the shared store, and returns when it does
// or when ctx ends, whichever comes first: a store that ignores its context
// (go-redis without ContextTimeoutEnabled waits out its own ReadTimeout and
// retries) must not hold a refresh past its time. An abandoned call is left
// to finish on its own. A call that panics fails.
func bounded[T any](ctx context.Context, call func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := noPanic("a call to the shared token store", func() (T, error) { return call(ctx) })
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// saver adapts a Save method to bounded.
func saver(save func(context.Context, Token) error, tok Token) func(context.Context) (struct{}, error) {
	return func(ctx context.Context) (struct{}, error) { return struct{}{}, save(ctx, tok) }
}

// releaser adapts Lease.Release to bounded.
func releaser(l Lease) func(context.Context) (struct{}, error) {
	return func(ctx context.Context) (struct{}, error) { return struct{}{}, l.Release(ctx) }
}

// lead refreshes while holding lease, unless the store already holds a
// fresh token, and releases the lease.
func (ts *tokenSource) lead(ctx context.Context, b *boundStore, s SharedTokenStore, lease Lease, prev *token, rejected string) (*token, error) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		if _, err := bounded(rctx, releaser(lease)); err != nil {
			ts.logger.Debug("securehttp: releasing the shared token lease failed; it expires by itself", "error", err)
		}
	}()
	lctx, cancel := halfOf(ctx)
	defer cancel()
	if stored, err := bounded(lctx, s.Load); err == nil {
		if tok := ts.adoptable(stored, prev, rejected); tok != nil {
			ts.logger.Debug("securehttp: bearer token taken from the shared store", "expires", tok.exp)
			return tok, nil
		}
	}
	tok, got, err := ts.fetch(ctx, rejected)
	if err != nil || !ts.stillBound(b) {
		return tok, err
	}
	sctx, cancel := halfOf(ctx)
	defer cancel()
	switch _, err := bounded(sctx, saver(lease.Save, got)); {
	case err == nil:
		ts.logger.Debug("securehttp: bearer token refreshed and shared", "expires", tok.exp)
	case errors.Is(err, ErrStaleLease):
		// The lease ran out during the refresh and another process saved
		// a newer token: take it, so that every process ends on it.
		if stored, lerr := bounded(sctx, s.Load); lerr == nil {
			if newer := ts.adoptable(stored, prev, rejected); newer != nil {
				ts.logger.Debug("securehttp: a newer bearer token was shared during the refresh; taking it")
				return newer, nil
			}
		}
	default:
		ts.saveFailed(ctx, err)
	}
	return tok, nil
}

// halfOf returns a context that ends halfway between now and ctx's
// deadline, or with ctx when it has none.
func halfOf(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(deadline)/2)
}
