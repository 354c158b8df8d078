package securehttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// RetryPolicy configures retries. The zero value means the defaults: 3
// retries, waits between 200 ms and 5 s, and Retry-After honoured up to 30 s.
//
// Only requests that are safe to repeat are retried: GET, HEAD, OPTIONS,
// TRACE, PUT and DELETE, or any method when the request carries an
// Idempotency-Key header, and only when the body can be replayed (no body,
// or GetBody set). They are retried after connection errors (refused, reset,
// timeouts, an HTTP/2 stream reset with INTERNAL_ERROR or REFUSED_STREAM, a
// connection closed after an HTTP/2 GOAWAY) and on statuses 408, 429, 500,
// 502, 503 and 504. Certificate, pin, scheme, token and context errors are
// never retried.
//
// Every resend to a host (a retry, a replay after a 401 or after a DPoP
// nonce challenge) is paid for from that host's budget: by default, a fifth
// of the requests sent to it over the last 10 seconds, and always at least
// 10 resends per second. When the budget is spent, the caller gets the last
// response as it is, body unread, or the last error, so that a failing
// server does not receive four times its load just when it can least take
// it. A context made by WithoutRetries turns retries off for one request.
type RetryPolicy struct {
	// MaxRetries is the number of retries after the first attempt. Zero
	// means the default, 3 retries, so that the zero Config retries. For no
	// retries at all, set NoRetries (any negative value does the same).
	// Note that go-retryablehttp's RetryMax reads the other way: there 0
	// means no retries.
	MaxRetries int

	// MinWait and MaxWait bound the exponential backoff with full jitter.
	// Zero means 200 ms and 5 s; a zero MaxWait below MinWait means
	// MinWait. A Retry-After shorter than MinWait waits MinWait.
	MinWait, MaxWait time.Duration

	// MaxRetryAfter is the longest Retry-After (on 429 and 503) honoured. A
	// longer one ends the retries and the response is returned at once.
	// Zero means 30 s.
	MaxRetryAfter time.Duration

	Budget float64 // share of a host's requests that may be retried, over a 10 s window, plus a floor of 10 retries per second; zero means 0.2; negative means no budget
}

// NoRetries is the RetryPolicy.MaxRetries that turns retries off: every
// request is sent once. MaxRetries: 0 means the default of 3 retries.
const NoRetries = -1

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

// retryable reports whether req may be sent more than once.
func (t *Transport) retryable(req *http.Request) bool {
	return t.retry.max > 0 && !retriesOff(req.Context()) &&
		(idempotent(req.Method) || req.Header.Get("Idempotency-Key") != "") &&
		replayable(req)
}

// send performs req, retrying it through go-retryablehttp when that is safe.
// scoped says whether req carries our bearer token, to be renewed between
// attempts.
func (t *Transport) send(req *http.Request, scoped bool) (*http.Response, error) {
	req = t.hooks.track(req)
	if !t.retryable(req) {
		resp, err := t.attempt(req)
		return resp, explain(req, err, 1)
	}
	req = markBodyErrors(req)
	// The first attempt goes straight to the pool, so that the requests
	// that succeed, nearly all of them, cost what they cost with net/http.
	// Only a request that will be retried is handed to the engine, which
	// starts by replaying this first outcome through its own loop.
	resp, err := t.attempt(req)
	if retry, _ := t.shouldRetry(req, resp, err); !retry {
		return resp, explain(req, err, 1)
	}
	a := &attempt{t: t, req: req, scoped: scoped, tries: 1}
	c := &a.engine
	c.HTTPClient = &http.Client{
		Transport:     &replayFirst{resp: resp, err: err, rt: attempts{t}},
		CheckRedirect: useLastResponse,
	}
	c.RetryMax = t.retry.max
	c.RetryWaitMin, c.RetryWaitMax = t.retry.minWait, t.retry.maxWait
	c.CheckRetry = a.checkRetry
	c.Backoff = a.backoff
	c.PrepareRetry = a.prepareRetry
	c.ErrorHandler = honestResult
	// Logger stays nil: the engine's own logger writes URLs with their
	// query strings to stderr. Retries are logged by backoff instead.
	resp, err = c.Do(&retryablehttp.Request{Request: req})
	if uerr, ok := err.(*url.Error); ok {
		// The engine's inner *http.Client wraps errors in a *url.Error; the
		// caller's client adds its own.
		err = uerr.Err
	}
	return resp, explain(req, err, a.tries)
}

// explain adds to a request's error what the user needs to act on it: the
// host and the way to trust a private CA when the chain does not verify,
// and how many attempts were made when there was more than one. The error
// stays what it was for errors.Is and errors.As.
func explain(req *http.Request, err error, tries int) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		v := &verifyError{host: req.URL.Hostname(), err: err}
		if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
			v.hint = "to trust a private CA, add its root to Config.RootCAs (with the securehttp command, --cacert FILE)"
		}
		err = v
	}
	if tries > 1 {
		err = wrap(fmt.Sprintf("securehttp: giving up after %d attempts", tries), err)
	}
	return err
}

// useLastResponse keeps the engine's inner client from following
// redirects: the caller's *http.Client follows them, so that every hop
// passes through RoundTrip again.
func useLastResponse(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// replayFirst hands the engine the outcome of the attempt already made, then
// sends the retries. Having no CloseIdleConnections method, it also keeps the
// engine from emptying the shared pool after a failed request.
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

// attempt is the state of one request across its retries.
type attempt struct {
	t      *Transport
	req    *http.Request
	scoped bool
	reason string // why the last attempt is retried, for the log
	class  string // the same, for the hooks
	tries  int    // attempts made, counting the one about to be sent
	engine retryablehttp.Client
}

func (a *attempt) checkRetry(_ context.Context, resp *http.Response, err error) (bool, error) {
	retry, reason := a.t.shouldRetry(a.req, resp, err)
	// a.tries is the attempt judged here: another follows only below
	// the maximum, and only that one is paid for.
	if retry && a.tries <= a.t.retry.max && !a.t.allowResend(a.req, resendRetry) {
		// The engine returns this outcome as it is: the response with
		// its body unread, or the error.
		return false, nil
	}
	if retry {
		a.reason, a.class = reason, outcomeClass(resp, err)
	}
	return retry, nil
}

// shouldRetry reports whether an attempt's outcome is worth another attempt,
// and why, for the log.
func (t *Transport) shouldRetry(req *http.Request, resp *http.Response, err error) (bool, string) {
	if req.Context().Err() != nil {
		// Cancelled, or past its deadline: never retried, whatever err is.
		return false, ""
	}
	if err != nil {
		if !retryableError(err) {
			return false, ""
		}
		return true, errorReason(err)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t.now()); ok && d > t.retry.maxRetryAfter {
			t.logger.Debug("securehttp: not retrying: Retry-After exceeds MaxRetryAfter",
				"method", req.Method, "url", redactURL(req.URL), "retry_after", d, "max", t.retry.maxRetryAfter)
			return false, ""
		}
	case http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
	default:
		return false, ""
	}
	return true, resp.Status
}

func (a *attempt) backoff(minWait, maxWait time.Duration, n int, resp *http.Response) time.Duration {
	wait := time.Duration(-1)
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), a.t.now()); ok {
			// checkRetry refused anything above maxRetryAfter. A server
			// asking for no wait at all still gets minWait, so that a
			// "Retry-After: 0" cannot make the retries a burst.
			wait = max(min(d, a.t.retry.maxRetryAfter), minWait)
		}
	}
	if wait < 0 {
		// Exponential growth, minWait*2^(n+1) for the n-th retry (n from
		// 0), capped at maxWait, with full jitter between minWait and that
		// ceiling: even the first retry is spread out.
		ceiling := maxWait
		if shift := max(n, 0) + 1; shift < 63 && minWait <= maxWait>>shift {
			ceiling = minWait << shift
		}
		wait = minWait
		if spread := int64(ceiling - minWait); spread > 0 {
			wait += time.Duration(a.t.jitter(spread + 1))
		}
	}
	a.t.logger.Debug("securehttp: retrying request", "method", a.req.Method, "url", redactURL(a.req.URL),
		"attempt", n+2, "wait", wait, "reason", a.reason)
	a.t.hooks.retry(a.req, a.class, wait)
	return wait
}

// prepareRetry readies the next attempt: the current token, which may have
// been refreshed since the last attempt, and a fresh body from GetBody. The
// token comes first so that a failed refresh leaves no new body unclosed.
func (a *attempt) prepareRetry(req *http.Request) error {
	if a.scoped {
		tok, err := a.t.bearer.token(req.Context())
		if err != nil {
			return err
		}
		if a.t.dpop != nil {
			// Every attempt has its own proof: a new jti and iat, and the
			// nonce the last response may have brought.
			proof, err := a.t.dpop.proof(req.Method, req.URL, tok.ath)
			if err != nil {
				return err
			}
			req.Header = req.Header.Clone()
			req.Header["Authorization"] = tok.header
			req.Header["Dpop"] = []string{proof}
		} else if tok.raw != sentToken(req) {
			// The previous attempt's request shares this header map.
			req.Header = req.Header.Clone()
			req.Header["Authorization"] = tok.header
		}
	}
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return fmt.Errorf("securehttp: replaying the request body: %w", err)
		}
		req.Body = body
	}
	a.tries++
	return nil
}

// retryableError reports whether err is a connection failure worth another
// attempt, as classifyError judges it.
func retryableError(err error) bool {
	_, transient := classifyError(err)
	return transient
}

// errorReason names an error for the log without its text, which may hold a
// URL with its query, as classifyError judges it.
func errorReason(err error) string {
	reason, _ := classifyError(err)
	return reason
}

// HTTP/2 error codes (RFC 9113 section 7) after which a request that got no
// answer may be sent again: the server failed, or refused the stream
// before it began.
const (
	h2Internal      = 0x2
	h2RefusedStream = 0x7
)

// classifyError is the one judge of a failed attempt's error: it names the
// failure for the log and says whether another attempt may succeed.
// Anything it does not recognise fails fast; certificate, pin, scheme,
// token, request body and cancellation errors are never retried. It goes
// by the error's type, never by its text.
//
// The request's own deadline is checked by shouldRetry before this: it
// cannot be told from err, since net/http's and net's timeouts (dial,
// response headers) also match context.DeadlineExceeded, and those are
// retried.
func classifyError(err error) (reason string, transient bool) {
	var (
		certErr    *tls.CertificateVerificationError
		recordErr  tls.RecordHeaderError
		refreshErr *RefreshError
		bodyErr    *bodyError
		streamErr  h2StreamError
		netErr     net.Error
	)
	switch {
	case errors.Is(err, context.Canceled),
		errors.Is(err, ErrInsecureScheme), errors.Is(err, ErrPinMismatch), errors.Is(err, ErrWeakKey),
		errors.Is(err, ErrRevoked), errors.Is(err, ErrOCSPStaple),
		errors.As(err, &certErr), errors.As(err, &recordErr), errors.As(err, &refreshErr),
		errors.As(err, &bodyErr):
		return "error", false
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", true
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return "connection reset", true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed", true
	case errors.As(err, &streamErr):
		return "stream reset", streamErr.Code == h2Internal || streamErr.Code == h2RefusedStream
	case isGoAway(err):
		return "goaway", true
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout", true
	}
	return "error", false
}

// h2StreamError has the shape of an HTTP/2 stream error (RST_STREAM), as
// golang.org/x/net/http2.StreamError has. net/http's own HTTP/2 client
// exports no type for it, but its stream error converts itself, for
// errors.As, into any struct of this shape.
type h2StreamError struct {
	StreamID uint32
	Code     uint32
	Cause    error
}

func (e h2StreamError) Error() string { return "http2 stream error" }

// isGoAway reports whether err is the error of a request whose connection
// the server closed after a GOAWAY frame, without answering it. net/http's
// own HTTP/2 client returns it as a value of an unexported type that, unlike
// its stream error, converts into nothing, so it is known here by its type's
// package and name; TestRetryHTTP2Resets fails if a Go release renames it.
func isGoAway(err error) bool {
	for _, e := range errorTree(err) {
		if t := reflect.TypeOf(e); t.Kind() == reflect.Struct &&
			(t.PkgPath() == "net/http" && t.Name() == "http2GoAwayError" ||
				t.PkgPath() == "golang.org/x/net/http2" && t.Name() == "GoAwayError") {
			return true
		}
	}
	return false
}

// errorTree returns err and every error it wraps, depth first, as errors.Is
// walks them.
func errorTree(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if e == nil || len(out) > maxErrorTree {
			return
		}
		out = append(out, e)
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				walk(inner)
			}
		}
	}
	walk(err)
	return out
}

// maxErrorTree bounds errorTree against an error that wraps itself.
const maxErrorTree = 64

// verifyError is a chain that did not verify, with the host it was for and
// what to do about it.
type verifyError struct {
	host, hint string
	err        error
}

func (e *verifyError) Error() string {
	msg := "securehttp: TLS verification of " + e.host + " failed: " + causeText(e.err)
	if e.hint != "" {
		msg += "; " + e.hint
	}
	return msg
}

func (e *verifyError) Unwrap() error { return e.err }

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
