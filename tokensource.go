package securehttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Bearer attaches "Authorization: Bearer <token>" (or "DPoP <token>" and a
// proof, with DPoP) to https requests for its hosts, and to no other host.
// It refreshes the token ahead of its expiry (Token.Expiry, or a JWT's
// exp) with one call however many requests wait, and recovers once from a
// 401. A request with an Authorization header of its own is left alone.
type Bearer struct {
	// Store holds the token. Nil means an empty in-memory store.
	Store TokenStore

	// Refresh obtains a new token, under a context of its own bounded by
	// RefreshTimeout. Nil means tokens come from Store or from a grant.
	Refresh func(ctx context.Context) (Token, error)

	// ClientCredentials, JWTBearer and TokenExchange obtain tokens with an
	// OAuth 2.0 grant. At most one of them and Refresh.
	ClientCredentials *ClientCredentials
	JWTBearer         *JWTBearer
	TokenExchange     *TokenExchange

	// DPoP, if set, binds the tokens to a key (RFC 9449), with a fresh
	// proof on every attempt. A Refresh of your own must obtain tokens
	// bound to DPoP.Key, which it must then set.
	DPoP *DPoP

	// Hosts are the only hosts that receive the token, as PinSet.Host
	// patterns; "host:port" restricts it to one port (443 when a URL has
	// none). Required. A wildcard may not cover names anyone can register,
	// such as "*.com" or "**.amazonaws.com".
	Hosts []string

	// RefreshWindow is how long before expiry a background refresh starts.
	// Zero means 10% of the lifetime, from 30 s to 5 min.
	RefreshWindow time.Duration

	// RefreshTimeout bounds each refresh. Zero means 30 s.
	RefreshTimeout time.Duration

	// Keyfunc, if set, verifies each token's signature, and a token that
	// is not a verifiable JWT is refused; nil means a JWT is only decoded,
	// for its expiry. ValidMethods lists the algorithms allowed; nil means
	// those that fit Keyfunc's key (an HMAC key needs its algorithm
	// listed, and "none" is always refused).
	Keyfunc      jwt.Keyfunc
	ValidMethods []string
}

// RefreshError reports that no valid token could be had for a request, which
// was not sent. Err is the cause. It matches ErrNoToken.
type RefreshError struct {
	Err error
}

func (e *RefreshError) Error() string {
	if e.Err == nil {
		return "securehttp: bearer token unavailable"
	}
	// A failed check of the token endpoint's TLS says so first, not as a
	// token problem.
	if h, ok := errors.AsType[*hintError](e.Err); ok {
		return h.Error() + "; so no bearer token could be had"
	}
	if v, ok := errors.AsType[*verifyError](e.Err); ok {
		return v.Error() + "; so no bearer token could be had"
	}
	return "securehttp: bearer token unavailable: " + causeText(e.Err)
}

func (e *RefreshError) Unwrap() error { return e.Err }

// Is reports whether target is ErrNoToken.
func (e *RefreshError) Is(target error) bool { return target == ErrNoToken }

// causeText is err's message without a leading "securehttp: ", for use
// inside a message that already starts with it.
func causeText(err error) string { return strings.TrimPrefix(err.Error(), "securehttp: ") }

// wrapError prefixes msg to an error's text without repeating the package
// prefix, and keeps the error for errors.Is and errors.As.
type wrapError struct {
	msg string
	err error
}

func wrap(msg string, err error) error { return &wrapError{msg, err} }

func (e *wrapError) Error() string { return e.msg + ": " + causeText(e.err) }
func (e *wrapError) Unwrap() error { return e.err }

const (
	maxTokenLen           = 16 << 10
	defaultRefreshTimeout = 30 * time.Second
	minRefreshWindow      = 30 * time.Second
	maxRefreshWindow      = 5 * time.Minute
	// maxSkew is the most of a token's life given up to clock differences
	// at its end: a token is not sent in its last min(lifetime/10, 5 s).
	maxSkew = 5 * time.Second
	// nbfLeeway is how far in the future a token's nbf may be: the client's
	// clock may lag its issuer's, and the server judges nbf anyway.
	nbfLeeway         = 60 * time.Second
	minRefreshBackoff = time.Second
	maxRefreshBackoff = time.Minute
	// minRefreshGap is the shortest wait between refreshes while the
	// token is usable: below it, the next refresh waits for the token to
	// stop being usable.
	minRefreshGap = 100 * time.Millisecond
	// stopWait bounds how long CloseIdleConnections waits for a refresh
	// that ignores its cancelled context.
	stopWait = time.Second
)

// token is a parsed token, ready to send.
type token struct {
	raw      string
	header   []string    // the Authorization value, made once and never modified
	ath      string      // DPoP only: the proofs' hash of the token
	headers  http.Header // a header holding only header, never modified
	exp, nbf time.Time   // zero when unknown
	lifetime time.Duration
}

// usable reports whether t may be sent at now: not expired or about to be,
// and already valid, give or take nbfLeeway.
func (t *token) usable(now time.Time) bool {
	if t == nil {
		return false
	}
	if end := t.usableUntil(); !end.IsZero() && !now.Before(end) {
		return false
	}
	return t.nbf.IsZero() || !t.nbf.After(now.Add(nbfLeeway))
}

// usableUntil returns when t stops being usable, its expiry less the
// allowance for clock skew, or zero when its expiry is unknown.
func (t *token) usableUntil() time.Time {
	if t.exp.IsZero() {
		return time.Time{}
	}
	return t.exp.Add(-min(t.lifetime/10, maxSkew))
}

// tokenSource is the runtime state behind a Bearer: the one owner of the
// current token.
type tokenSource struct {
	base    TokenStore   // Bearer.Store, or a MemoryStore; a SharedTokenStore is asked per binding (bound)
	local   *MemoryStore // tokens whose binding cannot be named, kept out of a SharedTokenStore
	refresh func(ctx context.Context) (Token, error)
	hosts   []hostPattern
	window  time.Duration
	timeout time.Duration
	keyfunc jwt.Keyfunc
	methods []string
	scheme  string // "Bearer", or "DPoP": a token's binding is part of it
	jkt     string // with DPoP, our key's thumbprint: a JWT bound to another key is unusable
	// cert, with a client certificate, names it by its x5t#S256, or
	// reports false when it cannot (see certState.thumbprint): a JWT
	// bound to another certificate is unusable.
	cert   func() (string, bool)
	logger *slog.Logger
	now    func() time.Time
	hooks  *Hooks

	lastBound atomic.Pointer[boundStore] // the last binding's store, asked of base once

	mu          sync.Mutex
	cur         *token
	rejected    string    // the last token a server refused with 401
	flight      *flight   // the refresh in progress, if any
	retryAt     time.Time // no refresh before this, in the background or on demand
	misses      int       // consecutive refreshes that failed or gave a token already due
	lastErr     error     // the last refresh failure, returned until retryAt
	warnedReuse bool      // the "Refresh returned the refused token" warning was logged

	// Refreshes that a 401 causes are rate-limited on their own: a
	// successful refresh resets the failure backoff above, and a server
	// that refuses every token would otherwise cost a refresh per request.
	unauthMisses  int       // consecutive 401-triggered refreshes
	unauthRetryAt time.Time // no 401-triggered refresh before this
}

// flight is one refresh, shared by every request that waits for it.
type flight struct {
	done    chan struct{}
	ctx     context.Context // the refresh's own, bounded by RefreshTimeout
	cancel  context.CancelFunc
	waiters int // requests waiting for it; ts.mu guards it
	tok     *token
	err     error
	until   time.Time // when the token usable as it began stops being usable; zero if none was
}

// bearerPlan is a Bearer after its checks: what newTokenSource builds from.
type bearerPlan struct {
	hosts  []hostPattern
	dpop   *dpopKey     // nil without Bearer.DPoP
	client *tokenClient // nil without a grant; not yet connected
}

// checkBearer checks every entry of b, including its DPoP key (which it
// signs with once) and its grant.
func checkBearer(b *Bearer, haveClientCert bool, now func() time.Time) (*bearerPlan, error) {
	if len(b.Hosts) == 0 {
		return nil, &ConfigError{Field: "Bearer.Hosts", Err: errors.New("no hosts: list the hosts that may receive the token")}
	}
	sources := countTrue(b.Refresh != nil, b.ClientCredentials != nil, b.JWTBearer != nil, b.TokenExchange != nil)
	if sources > 1 {
		return nil, &ConfigError{Field: "Bearer", Err: errors.New(
			"set one of Refresh, ClientCredentials, JWTBearer and TokenExchange, not more")}
	}
	if b.Store == nil && sources == 0 {
		return nil, &ConfigError{Field: "Bearer", Err: errors.New(
			"needs a Store, a Refresh function or a grant (ClientCredentials, JWTBearer, TokenExchange)")}
	}
	if b.RefreshWindow < 0 {
		return nil, &ConfigError{Field: "Bearer.RefreshWindow", Value: b.RefreshWindow.String(), Err: errors.New("must not be negative")}
	}
	if b.RefreshTimeout < 0 {
		return nil, &ConfigError{Field: "Bearer.RefreshTimeout", Value: b.RefreshTimeout.String(), Err: errors.New("must not be negative")}
	}
	for i, m := range b.ValidMethods {
		if jwt.GetSigningMethod(m) == nil || strings.EqualFold(m, "none") {
			return nil, &ConfigError{Field: fmt.Sprintf("Bearer.ValidMethods[%d]", i), Value: m,
				Err: errors.New("not a JWT signing algorithm this client verifies")}
		}
	}
	if len(b.ValidMethods) > 0 && b.Keyfunc == nil {
		return nil, &ConfigError{Field: "Bearer.ValidMethods", Err: errors.New("set only with Keyfunc")}
	}
	plan := new(bearerPlan)
	for i, h := range b.Hosts {
		p, err := parseHostPortPattern(h)
		if err != nil {
			return nil, &ConfigError{Field: fmt.Sprintf("Bearer.Hosts[%d]", i), Value: h, Err: err}
		}
		plan.hosts = append(plan.hosts, p)
	}
	var err error
	if b.DPoP != nil {
		if plan.dpop, err = newDPoPKey(b.DPoP, now); err != nil {
			return nil, err
		}
	}
	switch {
	case b.ClientCredentials != nil:
		plan.client, err = checkClientCredentials(b.ClientCredentials, haveClientCert)
	case b.JWTBearer != nil:
		plan.client, err = checkJWTBearer(b.JWTBearer, haveClientCert)
	case b.TokenExchange != nil:
		plan.client, err = checkTokenExchange(b.TokenExchange, haveClientCert)
		if err == nil && b.DPoP != nil && b.TokenExchange.RequestedTokenType == tokenTypeIDToken {
			// An ID token is no access token bound to a key: the server
			// answers token_type N_A, which DPoP refuses at every refresh.
			err = &ConfigError{Field: "Bearer.TokenExchange.RequestedTokenType", Value: tokenTypeIDToken,
				Err: errors.New("an ID token cannot be bound to Bearer.DPoP's key: ask for an access token or a JWT, or drop DPoP")}
		}
	}
	if err != nil {
		return nil, err
	}
	return plan, nil
}

// newTokenSource builds the token source of b, checked into plan, for t:
// its clock, logger and hooks, its client certificate's binding, and, with
// a grant, its token requests.
func newTokenSource(b *Bearer, plan *bearerPlan, t *transport) *tokenSource {
	ts := &tokenSource{
		base:    b.Store,
		local:   NewMemoryStore(Token{}),
		refresh: b.Refresh,
		hosts:   plan.hosts,
		window:  b.RefreshWindow,
		timeout: orDefault(b.RefreshTimeout, defaultRefreshTimeout),
		keyfunc: b.Keyfunc,
		methods: b.ValidMethods,
		scheme:  "Bearer",
		logger:  t.logger,
		now:     t.clock,
		hooks:   t.hooks,
	}
	if ts.base == nil {
		ts.base = ts.local
	}
	if plan.dpop != nil {
		ts.scheme, ts.jkt = "DPoP", plan.dpop.jkt
	}
	if t.conns.get != nil {
		ts.cert = t.conns.certificate
		if _, split := b.Store.(SharedTokenStore); split {
			if _, named := t.conns.certificate(); !named {
				t.logger.Warn("securehttp: tokens are kept in this process, not in Bearer.Store, " +
					"while the client certificate cannot be named: Config.GetClientCertificate is not " +
					"a ClientCert's method, and a function of your own may choose a certificate per server")
			}
		}
	}
	if tc := plan.client; tc != nil {
		tc.t = t
		ts.refresh = tc.fetch
	}
	return ts
}

// hostNames returns Bearer.Hosts in canonical form.
func (ts *tokenSource) hostNames() []string {
	out := make([]string, len(ts.hosts))
	for i, p := range ts.hosts {
		out[i] = p.String()
	}
	return out
}

// covers reports whether host, already normalised, may receive the token
// on port, as the URL gives it ("" for https's default).
func (ts *tokenSource) covers(host, port string) bool {
	for _, p := range ts.hosts {
		if p.match(host) && p.matchPort(port) {
			return true
		}
	}
	return false
}

// token returns a token to send now. A usable token is returned at once,
// starting a background refresh when it is inside its refresh window.
// Without one, the caller waits for the single refresh in flight, bounded by
// ctx and by the refresh's own deadline. After a failed refresh, callers
// get its error at once until the backoff has passed; a backoff never runs
// past the moment the token in use stops being usable (nextRefresh).
// CloseIdleConnections never stops a refresh that a caller waits for.
func (ts *tokenSource) token(ctx context.Context) (*token, error) {
	tok, f, err := ts.current()
	if f == nil {
		return tok, err
	}
	defer ts.leave(f)
	return ts.await(ctx, f)
}

// leave ends a wait for f that current counted.
func (ts *tokenSource) leave(f *flight) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	f.waiters--
}

// current returns a usable token, or the refresh to wait for, counted as
// waited for until leave, or the error of the last failed refresh while its
// backoff lasts.
func (ts *tokenSource) current() (*token, *flight, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	now := ts.now()
	f := ts.flight
	if f != nil && f.ctx.Err() != nil {
		// A refresh that outlived its own deadline is abandoned: it
		// ignored its context, and nobody waits for it any more. Left in
		// place, a stuck background refresh would stop every later one
		// until the token expired.
		ts.abandon(f, now)
		f = nil
	}
	if cur := ts.cur; cur.usable(now) {
		if f == nil && ts.due(cur, now) && !now.Before(ts.retryAt) {
			ts.start()
		}
		return cur, nil, nil
	}
	if f == nil {
		if ts.lastErr != nil && now.Before(ts.retryAt) {
			return nil, nil, &RefreshError{Err: ts.lastErr}
		}
		f = ts.start()
	}
	f.waiters++
	return nil, f, nil
}

// await waits for f, bounded by ctx and by f's own deadline.
func (ts *tokenSource) await(ctx context.Context, f *flight) (*token, error) {
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, &RefreshError{Err: ctx.Err()}
	case <-f.ctx.Done():
		// The refresh's deadline passed. It may have finished at the same
		// moment: prefer its result.
		select {
		case <-f.done:
		default:
			return nil, &RefreshError{Err: fmt.Errorf("refresh did not finish within RefreshTimeout: %w", f.ctx.Err())}
		}
	}
	if f.err != nil {
		return nil, &RefreshError{Err: f.err}
	}
	if !f.tok.usable(ts.now()) {
		return nil, &RefreshError{Err: errors.New("the refreshed token has already expired")}
	}
	return f.tok, nil
}

// abandon gives up on f, which outlived its deadline, as on a failed
// refresh. ts.mu must be held.
func (ts *tokenSource) abandon(f *flight, now time.Time) {
	ts.flight = nil
	ts.fail(errors.New("refresh did not finish within RefreshTimeout"), now, f.until)
}

// fail records a failed refresh and backs off. until is the refresh's
// flight.until. ts.mu must be held.
func (ts *tokenSource) fail(err error, now, until time.Time) {
	ts.misses++
	ts.lastErr = err
	ts.retryAt = nextRefresh(ts.misses, now, until)
	ts.logger.Warn("securehttp: bearer token refresh failed", "error", err,
		"current_token_usable", ts.cur.usable(now), "next_try", ts.retryAt)
}

// nextRefresh returns when a refresh may start again after misses refreshes
// in a row that failed or gave a token already due, the last at now. until
// is when the token usable as the last one began stops being usable (zero
// when none was). The backoff never runs past it: while the token works,
// each wait is at most half the time it has left, so that the refresh is
// tried again before the token stops being usable; after that, the next
// request refreshes at once rather than get the last error. A refresh that
// began without a usable token backs off fully, to spare a failing server.
func nextRefresh(misses int, now, until time.Time) time.Time {
	at := now.Add(refreshBackoff(misses))
	if until.IsZero() || at.Before(until) {
		return at
	}
	if left := until.Sub(now); left >= 2*minRefreshGap {
		return now.Add(left / 2)
	}
	return until
}

// due reports whether tok is inside its refresh window.
func (ts *tokenSource) due(tok *token, now time.Time) bool {
	if tok.exp.IsZero() {
		return false
	}
	window := ts.window
	if window == 0 {
		window = min(max(tok.lifetime/10, minRefreshWindow), maxRefreshWindow, tok.lifetime/2)
	}
	return !now.Before(tok.exp.Add(-window))
}

// start begins a refresh. ts.mu must be held.
func (ts *tokenSource) start() *flight {
	ctx, cancel := context.WithTimeout(context.Background(), ts.timeout)
	f := &flight{done: make(chan struct{}), ctx: ctx, cancel: cancel}
	if ts.cur.usable(ts.now()) {
		f.until = ts.cur.usableUntil()
	}
	ts.flight = f
	prev := ts.cur
	go ts.run(ctx, f, prev)
	return f
}

func (ts *tokenSource) run(ctx context.Context, f *flight, prev *token) {
	defer f.cancel()
	start := ts.now()
	// Code of the user's runs in obtain (a Keyfunc, the signer of a client
	// assertion or a DPoP proof, a SharedTokenStore): a panic of theirs fails
	// this refresh, not the process.
	tok, err := noPanic("the refresh", func() (*token, error) { return ts.obtain(ctx, prev) })
	ts.hooks.tokenRefresh(ctx, err, ts.now().Sub(start))

	ts.mu.Lock()
	defer ts.mu.Unlock()
	defer close(f.done)
	f.tok, f.err = tok, err
	if ts.flight != f {
		// Stopped by CloseIdleConnections, which is no failure of the
		// token endpoint, or abandoned after its deadline: either way its
		// result is not the current state, and leaves no backoff.
		return
	}
	ts.flight = nil
	now := ts.now()
	switch {
	case err != nil:
		ts.fail(err, now, f.until)
	case ts.due(tok, now):
		// The new token is already inside its window (a caching token
		// source, or a window longer than the lifetime): wait longer each
		// time before asking again, as after a failure, rather than
		// calling Refresh every second until it expires.
		ts.cur = tok
		ts.misses++
		ts.lastErr = nil
		ts.retryAt = nextRefresh(ts.misses, now, tok.usableUntil())
	default:
		ts.cur = tok
		ts.misses = 0
		ts.lastErr = nil
		ts.retryAt = time.Time{}
	}
}

// refreshBackoff doubles from a second up to a minute.
func refreshBackoff(misses int) time.Duration {
	d := minRefreshBackoff
	for i := 1; i < misses && d < maxRefreshBackoff; i++ {
		d *= 2
	}
	return min(d, maxRefreshBackoff)
}

// callRefresh calls Refresh, turning a panic into an error.
func (ts *tokenSource) callRefresh(ctx context.Context) (Token, error) {
	return noPanic("the Refresh function", func() (Token, error) { return ts.refresh(ctx) })
}

// noPanic calls call, turning a panic into an error that names what
// panicked: a refresh runs on a background goroutine, as do the store calls
// it bounds, where a panic would end the whole process. Only the panic's
// type is kept: its value may quote anything.
func noPanic[T any](what string, call func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			var zero T
			v, err = zero, fmt.Errorf("%s panicked (%T)", what, p)
		}
	}()
	return call()
}

// obtain re-reads the store, where another process may already have saved a
// fresh token, and calls Refresh only if that does not give a usable one.
// The store is the one of the tokens' binding (tokenshare.go). When the
// client certificate rotates during the refresh, the token it brings may be
// bound to the old certificate, and it is obtained once more for the new.
func (ts *tokenSource) obtain(ctx context.Context, prev *token) (*token, error) {
	b := ts.bound()
	tok, err := ts.obtainFor(ctx, b, prev)
	// A certificate named for the first time during the refresh (learnt at
	// its handshake) is no rotation: the token was obtained with it.
	if now := ts.bound(); ctx.Err() == nil && b.named && !b.same(now) {
		ts.logger.Debug("securehttp: the client certificate changed during the refresh; refreshing for the new one")
		tok, err = ts.obtainFor(ctx, now, prev)
	}
	return tok, err
}

// obtainFor is obtain with b's store.
func (ts *tokenSource) obtainFor(ctx context.Context, b *boundStore, prev *token) (*token, error) {
	// A store shared by many processes lets one of them refresh for all
	// (tokenshare.go).
	if shared, ok := b.store.(SharedTokenStore); ok && ts.refresh != nil {
		return ts.obtainShared(ctx, b, shared, prev)
	}
	stored, loadErr := noPanic("the token store's Load", func() (Token, error) { return b.store.Load(ctx) })
	rejected := ts.rejectedToken()
	if loadErr != nil && ctx.Err() != nil {
		return nil, ctx.Err() // stopped, or out of time
	}
	if loadErr != nil {
		ts.logger.Warn("securehttp: loading the bearer token from the store failed", "error", loadErr)
	} else if tok := ts.adoptable(stored, prev, rejected); tok != nil {
		// Another process saved a token this one may use.
		ts.logger.Debug("securehttp: bearer token taken from the store", "expires", tok.exp)
		return tok, nil
	}
	if ts.refresh == nil {
		return nil, ts.noRefresh(stored, loadErr, rejected)
	}
	tok, got, err := ts.fetch(ctx, rejected)
	if err != nil {
		return nil, err
	}
	if ts.stillBound(b) {
		if _, err := noPanic("the token store's Save", func() (struct{}, error) { return saver(b.store.Save, got)(ctx) }); err != nil {
			ts.saveFailed(ctx, err)
		}
	}
	ts.logger.Debug("securehttp: bearer token refreshed", "expires", tok.exp)
	return tok, nil
}

// saveFailed logs a failed Save of a refreshed token: a warning, unless the
// refresh was stopped by CloseIdleConnections, which cancels the refresh's
// context and is no failure of the store.
func (ts *tokenSource) saveFailed(ctx context.Context, err error) {
	if errors.Is(err, ErrStaleLease) {
		// Another process saved a token that expires later: the store
		// keeps the better one, which is no failure.
		ts.logger.Debug("securehttp: the store kept a newer bearer token", "error", err)
		return
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		ts.logger.Debug("securehttp: saving the refreshed bearer token stopped", "error", err)
		return
	}
	ts.logger.Warn("securehttp: saving the refreshed bearer token failed", "error", err)
}

// noRefresh says why no token can be had when there is no Refresh function
// and the store gave none that may be used.
func (ts *tokenSource) noRefresh(stored Token, loadErr error, rejected string) error {
	switch {
	case loadErr != nil:
		// Keep the cause, such as ErrInsecureTokenFile, for errors.Is.
		return wrap("no Refresh function is set and loading the store failed", loadErr)
	case stored.Value == "":
		return errors.New("the store holds no token and no Refresh function is set")
	case stored.Value == rejected:
		return errors.New("the server refused the stored token and no Refresh function is set")
	}
	now := ts.now()
	if tok, err := ts.parse(stored, now); err == nil && !tok.usable(now) {
		return errors.New("the stored token has expired and no Refresh function is set")
	}
	return errors.New("the stored token is unusable and no Refresh function is set")
}

// adoptable parses stored and returns it if this process may use it instead
// of refreshing: usable, not the token a server refused and, when replacing
// prev, a different token that is not itself due.
func (ts *tokenSource) adoptable(stored Token, prev *token, rejected string) *token {
	if stored.Value == "" || stored.Value == rejected {
		return nil
	}
	now := ts.now()
	tok, err := ts.parse(stored, now)
	if err != nil || !tok.usable(now) {
		return nil
	}
	if prev != nil && (stored.Value == prev.raw || ts.due(tok, now)) {
		return nil
	}
	return tok
}

// fetch calls Refresh and checks what it returns.
func (ts *tokenSource) fetch(ctx context.Context, rejected string) (*token, Token, error) {
	ts.logger.Debug("securehttp: refreshing bearer token")
	got, err := ts.callRefresh(ctx)
	if err != nil {
		return nil, Token{}, wrap("refresh", err)
	}
	if got.Value != "" && got.Value == rejected {
		ts.warnReuse()
	}
	now := ts.now()
	tok, err := ts.parse(got, now)
	if err != nil {
		return nil, Token{}, wrap("refresh returned an unusable token", err)
	}
	if !tok.usable(now) {
		return nil, Token{}, errors.New("refresh returned an expired or not yet valid token")
	}
	// A store keeps the expiry that counts, a JWT's exp when Refresh gave
	// none, so that a shared store can order tokens by it.
	got.Expiry = tok.exp
	return tok, got, nil
}

// warnReuse says, once, that Refresh handed back the token a server had
// just refused: typically a caching source such as oauth2.ReuseTokenSource.
func (ts *tokenSource) warnReuse() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.warnedReuse {
		return
	}
	ts.warnedReuse = true
	ts.logger.Warn("securehttp: Refresh returned the token the server just refused; " +
		"it is probably a caching token source (such as oauth2.ReuseTokenSource): " +
		"pass a source that fetches a new token on each call, or use Bearer.ClientCredentials")
}

func (ts *tokenSource) rejectedToken() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.rejected
}

// invalidate marks sent as refused by a server, if it is still the current
// token, so that concurrent 401s cause one refresh between them. It reports
// whether a refresh may follow. Refreshes caused by 401s are spaced by the
// refresh backoff, doubling from a second to a minute while servers keep
// refusing the new tokens, so that a server refusing every token cannot
// make each request cost a refresh: until then the refused token is kept
// and the 401 goes to the caller. A 401 after a quiet minute starts over.
func (ts *tokenSource) invalidate(sent string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.cur == nil || ts.cur.raw != sent {
		return true
	}
	now := ts.now()
	if now.Before(ts.unauthRetryAt) {
		return false
	}
	if ts.unauthRetryAt.IsZero() || now.Sub(ts.unauthRetryAt) > maxRefreshBackoff {
		ts.unauthMisses = 0
	}
	ts.unauthMisses++
	ts.unauthRetryAt = now.Add(refreshBackoff(ts.unauthMisses))
	ts.rejected = sent
	ts.cur = nil
	ts.logger.Debug("securehttp: bearer token refused by the server; it will be refreshed")
	return true
}

// stop cancels the refresh in flight, if any and if no request waits for
// it, and waits for it to end, for at most stopWait: a Refresh that ignores
// its context is left behind. A stopped refresh is no failed refresh: it
// leaves no error or backoff, and the next request starts a new one. A
// refresh that requests wait for is left running: stopping it would only
// make them start another at once, costing the token endpoint a request for
// each call (go-retryablehttp calls CloseIdleConnections each time it gives
// up), and a slow endpoint would never get to answer.
func (ts *tokenSource) stop() {
	ts.mu.Lock()
	f := ts.flight
	if f != nil && f.waiters > 0 {
		f = nil
	}
	if f != nil {
		ts.flight = nil
	}
	ts.mu.Unlock()
	if f == nil {
		return
	}
	f.cancel()
	t := time.NewTimer(stopWait)
	defer t.Stop()
	select {
	case <-f.done:
	case <-t.C:
		ts.logger.Warn("securehttp: a token refresh ignored its cancelled context; no longer waiting for it")
	}
}

// invalidateBound drops the current token if it is bound to a client
// certificate other than the one whose x5t#S256 is thumb (a JWT with
// cnf["x5t#S256"], RFC 8705), so that the next request obtains a new one
// rather than send a token the server will refuse. The token is also marked
// refused, so that it is not taken back from the store.
func (ts *tokenSource) invalidateBound(thumb string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.cur == nil {
		return
	}
	var claims struct {
		Cnf struct {
			X5t string `json:"x5t#S256"`
		} `json:"cnf"`
		jwt.RegisteredClaims
	}
	if _, _, err := jwt.NewParser().ParseUnverified(ts.cur.raw, &claims); err != nil ||
		claims.Cnf.X5t == "" || claims.Cnf.X5t == thumb {
		return
	}
	ts.rejected = ts.cur.raw
	ts.cur = nil
	ts.logger.Debug("securehttp: bearer token bound to the previous client certificate dropped")
}
