package securehttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// RetryPolicy configures retries. Only requests safe to repeat are retried
// (GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or any method with an
// Idempotency-Key header, with a body that GetBody can replay), after a
// transient failure (a refused or reset connection, a timeout, an HTTP/2
// stream reset or GOAWAY) or a 408, 429, 500, 502, 503 or 504. Every resend
// to a host (a retry, or a replay after a 401 or a DPoP nonce challenge) is
// paid from that host's budget; when it is spent, the caller gets the last
// outcome as it is. WithoutRetries turns retries off for one request.
type RetryPolicy struct {
	// MaxRetries is the number of retries after the first attempt. Zero
	// means 3; a negative number means none.
	MaxRetries int

	// MinWait and MaxWait bound the exponential backoff with full jitter.
	// Zero means 200 ms and 5 s.
	MinWait, MaxWait time.Duration

	// MaxRetryAfter is the longest Retry-After honoured; a longer one ends
	// the retries. Zero means 30 s.
	MaxRetryAfter time.Duration

	// Budget is the share of a host's requests over the last 10 s that may
	// be resent, beyond a floor of 10 resends a second. Zero means 0.2;
	// negative means no budget.
	Budget float64
}

const (
	defaultMaxRetries    = 3
	defaultMinWait       = 200 * time.Millisecond
	defaultMaxWait       = 5 * time.Second
	defaultMaxRetryAfter = 30 * time.Second
)

// retryConfig is a RetryPolicy with its defaults filled in.
type retryConfig struct {
	max              int
	minWait, maxWait time.Duration
	maxRetryAfter    time.Duration
	budget           float64
}

func newRetryConfig(p RetryPolicy) (retryConfig, error) {
	c := retryConfig{
		max:           p.MaxRetries,
		minWait:       orDefault(p.MinWait, defaultMinWait),
		maxWait:       orDefault(p.MaxWait, defaultMaxWait),
		maxRetryAfter: orDefault(p.MaxRetryAfter, defaultMaxRetryAfter),
		budget:        p.Budget,
	}
	switch {
	case c.max == 0:
		c.max = defaultMaxRetries
	case c.max < 0:
		c.max = 0
	}
	if p.MaxWait == 0 && c.minWait > c.maxWait {
		// A MinWait above the default MaxWait alone is not an error: the
		// wait is then fixed at MinWait.
		c.maxWait = c.minWait
	}
	switch {
	case c.minWait < 0:
		return c, &ConfigError{Field: "Retry.MinWait", Value: p.MinWait.String(), Err: errors.New("must not be negative")}
	case c.maxWait < c.minWait:
		return c, &ConfigError{Field: "Retry.MaxWait", Value: p.MaxWait.String(), Err: errors.New("must not be below MinWait")}
	case c.maxRetryAfter < 0:
		return c, &ConfigError{Field: "Retry.MaxRetryAfter", Value: p.MaxRetryAfter.String(), Err: errors.New("must not be negative")}
	case !validBudget(p.Budget):
		return c, &ConfigError{Field: "Retry.Budget", Value: strconv.FormatFloat(p.Budget, 'g', -1, 64), Err: errors.New("must be a finite number")}
	}
	return c, nil
}

// idempotent lists the methods RFC 9110 section 9.2.2 defines as idempotent.
func idempotent(method string) bool {
	switch method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// resend names why an attempt is sent again.
type resend uint8

const (
	noResend           resend = iota
	resendRetry               // a transient failure, for a request safe to repeat
	resendUnauthorized        // a 401 refused the token: once, with a refreshed one
	resendNonce               // a DPoP nonce challenge: once per token, with the nonce
)

func (r resend) String() string {
	return [...]string{"", "retry", "unauthorized", "dpop_nonce"}[r]
}

const (
	// maxAuthResends bounds the resends that authentication causes: one
	// replay after a 401, and a nonce challenge before and after it.
	maxAuthResends = 3
	// tokenRequestRetries is how often a token request is retried after a
	// failure that got no answer or a 5xx, whatever RetryPolicy says: the
	// refresh is bounded by Bearer.RefreshTimeout and runs while requests
	// go on with the current token.
	tokenRequestRetries = 2
)

// send sends x's attempts until one is final, as judge decides. The first
// attempt goes straight to the wire, so that the requests that succeed,
// nearly all of them, cost what they cost with net/http; only a request
// that will be sent again is handed to go-retryablehttp, which starts by
// replaying this first outcome through its own loop.
func (t *transport) send(x *exchange) (*http.Response, error) {
	req := x.req
	if t.safeToRepeat(x) {
		req = markBodyErrors(req)
	}
	out, err := t.attach(x, req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.attempt(x, out)
	if t.judge(x, resp, err) == noResend {
		return resp, t.explain(x, err)
	}
	// The exchange goes on in the engine's callbacks, on the heap; x stays
	// on the stack of the requests that never get here.
	e := &engineRun{t: t, x: *x, first: true}
	c := &e.engine
	c.HTTPClient = &http.Client{
		Transport:     &replayFirst{resp: resp, err: err, rt: e},
		CheckRedirect: useLastResponse,
	}
	c.RetryMax = t.retry.max + maxAuthResends
	c.RetryWaitMin, c.RetryWaitMax = t.retry.minWait, t.retry.maxWait
	c.CheckRetry = e.checkRetry
	c.Backoff = e.backoff
	c.PrepareRetry = e.prepare
	c.ErrorHandler = honestResult
	// Logger stays nil: the engine's own logger writes URLs with their
	// query strings to stderr. Resends are logged by backoff instead.
	//
	// The engine's inner http.Client makes the next hop of a 307 or 308
	// that answers a resend, its body from GetBody, before its
	// CheckRedirect declines to follow it, and never closes that body.
	// Given a request without GetBody, it hands the redirect back as it
	// is; the resends get GetBody back in RoundTrip, and prepare replays
	// the body through e.getBody.
	e.getBody = req.GetBody
	if e.getBody != nil {
		r := new(http.Request)
		*r = *req
		r.GetBody = nil
		req = r
	}
	resp, err = c.Do(&retryablehttp.Request{Request: req})
	if uerr, ok := err.(*url.Error); ok {
		// The engine's inner *http.Client wraps errors in a *url.Error; the
		// caller's client adds its own.
		err = uerr.Err
	}
	return resp, t.explain(&e.x, err)
}

// engineRun is an exchange in go-retryablehttp's loop.
type engineRun struct {
	t       *transport
	x       exchange
	first   bool                          // the first outcome, already judged, is still to be replayed
	getBody func() (io.ReadCloser, error) // the request's GetBody, kept from the engine (see send)
	engine  retryablehttp.Client
}

// RoundTrip sends one resend: the engine's inner client calls it. The
// resend has its GetBody again, so that net/http can replay its body on a
// connection that turns out to be dead.
func (e *engineRun) RoundTrip(req *http.Request) (*http.Response, error) {
	if e.getBody != nil && req.GetBody == nil {
		r := new(http.Request)
		*r = *req
		r.GetBody = e.getBody
		req = r
	}
	return e.t.attempt(&e.x, req)
}

func (e *engineRun) checkRetry(_ context.Context, resp *http.Response, err error) (bool, error) {
	if e.first {
		// The engine replays the first outcome, which send judged.
		e.first = false
		return true, nil
	}
	return e.t.judge(&e.x, resp, err) != noResend, nil
}

func (e *engineRun) backoff(_, _ time.Duration, _ int, resp *http.Response) time.Duration {
	return e.t.wait(&e.x, resp)
}

// prepare readies the engine's copy of the request for the next attempt:
// the current token (which may have been refreshed since the last attempt)
// with a fresh proof, and a fresh body from GetBody. The token comes first
// so that a failed refresh leaves no new body unclosed.
func (e *engineRun) prepare(req *http.Request) error {
	x, t := &e.x, e.t
	if x.tok != nil && x.next != resendUnauthorized {
		// judge already took the refreshed token for a 401 replay.
		tok, err := t.bearer.token(req.Context())
		if err != nil {
			return err
		}
		x.tok = tok
	}
	out, err := t.attach(x, req)
	if err != nil {
		return err
	}
	req.Header = out.Header
	if e.getBody != nil && req.Body != nil && req.Body != http.NoBody {
		body, err := e.getBody()
		if err != nil {
			return fmt.Errorf("securehttp: replaying the request body: %w", err)
		}
		req.Body = body
	}
	return nil
}

// judge is the one place that decides whether an attempt's outcome is sent
// again: a retry after a transient failure, a replay with a refreshed token
// after a 401 that refused it, or a replay with the nonce a DPoP challenge
// brought. It pays for each resend from the host's budget and records it in
// x; without budget, the caller gets this outcome as it is.
func (t *transport) judge(x *exchange, resp *http.Response, err error) resend {
	if x.req.Context().Err() != nil {
		// Cancelled, or past its deadline: never sent again.
		return noResend
	}
	r := t.resendFor(x, resp, err)
	if r == noResend {
		return noResend
	}
	if r == resendUnauthorized {
		// The refused token is dropped even when this request cannot be
		// replayed, so that the next one gets a fresh token.
		if !t.bearer.invalidate(x.tok.raw) || !replayable(x.req) {
			return noResend
		}
	}
	if !t.allowResend(x, r) {
		return noResend
	}
	switch r {
	case resendRetry:
		x.retries++
	case resendNonce:
		x.nonces++
	case resendUnauthorized:
		sent := x.tok.raw
		tok, err := t.bearer.token(x.req.Context())
		if err != nil || tok.raw == sent {
			if err != nil {
				t.logger.Warn("securehttp: token refresh after 401 failed", "url", redactURL(x.req.URL), "error", err)
			}
			return noResend
		}
		x.tok, x.replays, x.nonces = tok, x.replays+1, 0
		t.logger.Debug("securehttp: replaying request after 401 with a refreshed token",
			"method", x.req.Method, "url", redactURL(x.req.URL))
	}
	x.next = r
	x.lastStatus, x.lastError = 0, ""
	outcome(&x.lastStatus, &x.lastError, resp, err)
	return r
}

// resendFor says which resend, if any, an outcome calls for, within each
// kind's limit.
func (t *transport) resendFor(x *exchange, resp *http.Response, err error) resend {
	if err != nil {
		if x.retries < t.maxRetries(x) && t.safeToRepeat(x) && classify(err).transient {
			return resendRetry
		}
		return noResend
	}
	if x.tok != nil && resp.StatusCode == http.StatusUnauthorized {
		switch {
		case t.dpop != nil && nonceRequested(resp):
			if x.nonces == 0 && replayable(x.req) {
				return resendNonce
			}
		case x.replays == 0 && t.tokenRejected(resp.Header):
			return resendUnauthorized
		}
		return noResend
	}
	if x.tokenRequest && x.nonceAsked {
		x.nonceAsked = false
		if t.dpop != nil && x.nonces == 0 {
			return resendNonce
		}
		return noResend
	}
	if x.retries < t.maxRetries(x) && t.safeToRepeat(x) && t.transientStatus(x, resp) {
		return resendRetry
	}
	return noResend
}

// maxRetries is how many retries x may have.
func (t *transport) maxRetries(x *exchange) int {
	if x.tokenRequest {
		return tokenRequestRetries
	}
	return t.retry.max
}

// safeToRepeat reports whether x's request may be sent more than once after
// a failure: a method that is idempotent or an Idempotency-Key, a body that
// can be replayed, and retries on. A token request is safe to repeat: the
// grant obtains a token, and a new client assertion goes with each attempt.
func (t *transport) safeToRepeat(x *exchange) bool {
	req := x.req
	if x.tokenRequest {
		return true
	}
	return t.retry.max > 0 && !retriesOff(req.Context()) &&
		(idempotent(req.Method) || req.Header.Get("Idempotency-Key") != "") &&
		replayable(req)
}

// tokenRejected reports whether a 401's challenges condemn the token sent.
func (t *transport) tokenRejected(h http.Header) bool {
	if t.dpop != nil {
		return dpopTokenRejected(h)
	}
	return tokenRejected(h)
}

// transientStatus reports whether a status is worth another attempt: 408,
// 429, 500, 502, 503 and 504, unless Retry-After asks for longer than
// MaxRetryAfter.
func (t *transport) transientStatus(x *exchange, resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t.now()); ok && d > t.retry.maxRetryAfter {
			t.logger.Debug("securehttp: not retrying: Retry-After exceeds MaxRetryAfter",
				"method", x.req.Method, "url", redactURL(x.req.URL), "retry_after", d, "max", t.retry.maxRetryAfter)
			return false
		}
		return true
	case http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// wait is how long to wait before the resend judge decided: none for a
// replay that authentication asks for; for a retry, the server's
// Retry-After, or exponential backoff with full jitter.
func (t *transport) wait(x *exchange, resp *http.Response) time.Duration {
	if x.next != resendRetry {
		t.logger.Debug("securehttp: sending the request again", "method", x.req.Method,
			"url", redactURL(x.req.URL), "attempt", x.tries+1, "reason", x.next.String())
		return 0
	}
	minWait, maxWait := t.retry.minWait, t.retry.maxWait
	wait := time.Duration(-1)
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t.now()); ok {
			// judge refused anything above maxRetryAfter. A server asking
			// for no wait at all still gets minWait, so that a
			// "Retry-After: 0" cannot make the retries a burst.
			wait = max(min(d, t.retry.maxRetryAfter), minWait)
		}
	}
	if wait < 0 {
		// Exponential growth, minWait*2^n for the n-th retry (n from 1),
		// capped at maxWait, with full jitter between minWait and that
		// ceiling: even the first retry is spread out.
		ceiling := maxWait
		if shift := x.retries; shift < 63 && minWait <= maxWait>>shift {
			ceiling = minWait << shift
		}
		wait = minWait
		if spread := int64(ceiling - minWait); spread > 0 {
			wait += time.Duration(t.jitter(spread + 1))
		}
	}
	reason := x.lastError
	if reason == "" {
		reason = strconv.Itoa(x.lastStatus)
	}
	t.logger.Debug("securehttp: retrying request", "method", x.req.Method, "url", redactURL(x.req.URL),
		"attempt", x.tries+1, "wait", wait, "reason", reason)
	t.hooks.retryScheduled(x, wait)
	return wait
}

// useLastResponse keeps the engine's inner client from following
// redirects: the caller's *http.Client follows them, so that every hop
// passes through RoundTrip again.
func useLastResponse(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// replayFirst hands the engine the outcome of the attempt already made, then
// sends the resends. Having no CloseIdleConnections method, it also keeps
// the engine from emptying the shared pool after a failed request.
type replayFirst struct {
	resp *http.Response
	err  error
	used bool
	rt   http.RoundTripper
}

func (r *replayFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	if !r.used {
		r.used = true
		return r.resp, r.err
	}
	return r.rt.RoundTrip(req)
}

// markBodyErrors returns req, or a shallow copy of it whose body, and the
// bodies GetBody makes, mark their read errors as *bodyError. net/http returns
// such an error as it is, and it may look like a connection failure
// (io.ErrUnexpectedEOF, a reset from a body read off the network), which must
// not be retried. The caller's request is not modified.
func markBodyErrors(req *http.Request) *http.Request {
	if req.Body == nil || req.Body == http.NoBody {
		return req
	}
	out := new(http.Request)
	*out = *req
	out.Body = errBody{req.Body}
	if getBody := req.GetBody; getBody != nil {
		out.GetBody = func() (io.ReadCloser, error) {
			b, err := getBody()
			if err != nil || b == nil || b == http.NoBody {
				return b, err
			}
			return errBody{b}, nil
		}
	}
	return out
}

// errBody marks the errors of a request body's reads.
type errBody struct{ rc io.ReadCloser }

func (b errBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

func (b errBody) Close() error { return b.rc.Close() }

// bodyError is an error from reading the request body: the caller's reader
// failed, not the connection.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "securehttp: reading the request body: " + e.err.Error() }

func (e *bodyError) Unwrap() error { return e.err }

// honestResult returns what the last attempt got: the response with its
// body intact when retries ran out on a status, as net/http would, or the
// error.
func honestResult(resp *http.Response, err error, _ int) (*http.Response, error) {
	if err != nil {
		if resp != nil {
			drainAndClose(resp.Body)
		}
		return nil, err
	}
	return resp, nil
}

// maxRetryAfterSeconds keeps absurd Retry-After values from overflowing.
const maxRetryAfterSeconds = 1 << 31

// parseRetryAfter reads a Retry-After value (RFC 9110 section 10.2.3): a
// number of seconds, or an HTTP date, taken relative to now.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return maxRetryAfterSeconds * time.Second, true
			}
			return 0, false
		}
		return time.Duration(min(secs, maxRetryAfterSeconds)) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}
