package securehttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Hooks receives a Transport's events, for metrics, traces or logs, in the
// spirit of httptrace.ClientTrace: every field is optional, and a nil *Hooks
// costs nothing. The subpackage otelsecurehttp turns them into OpenTelemetry
// spans and metrics.
//
// Hooks are called synchronously, from the goroutine doing the work, and
// must not block. A hook that panics loses its event, and the panic's type
// is logged at Warn; the request goes on. Events hold only the fields listed here: never a token, a
// DPoP proof, a cookie, a query string or URL userinfo, and never an
// error's text, which may quote any of them; failures are named by class.
// An httptrace.ClientTrace in an attempt's context, put there by
// AttemptStart or by the caller, is handed the values of Authorization,
// DPoP, Cookie and Proxy-Authorization as "[redacted]".
//
// Error classes are "timeout", "connection_refused", "connection_reset",
// "connection_closed", "dns", "certificate", "weak_key", "pin_mismatch",
// "revoked", "ocsp_staple", "insecure_scheme", "host_not_allowed",
// "blocked_address", "token_unavailable", "oauth_error", "canceled" and
// "error".
type Hooks struct {
	// AttemptStart is called before each attempt is sent: the first, each
	// retry, and each replay after a 401 or a DPoP nonce challenge. The
	// context it returns, if not nil, is the attempt's: the attempt is
	// sent under it, and InjectHeader, Handshake and AttemptDone receive
	// it. Derive it from ctx (as trace.ContextWithSpan does): a context
	// that is not loses the request's deadline and cancellation.
	AttemptStart func(ctx context.Context, e AttemptEvent) context.Context

	// InjectHeader is called for each attempt, after AttemptStart, with an
	// empty header to fill, such as with trace context. Its entries are
	// added to that attempt only, never to the caller's request or to
	// another attempt. Entries the request already has, and Authorization,
	// Proxy-Authorization, DPoP, Cookie, Host and framing headers, are left
	// out.
	InjectHeader func(ctx context.Context, h http.Header)

	// AttemptDone is called when an attempt has its response headers or
	// has failed.
	AttemptDone func(ctx context.Context, e AttemptEvent, r AttemptResult)

	// RetryScheduled is called when a failed attempt will be retried,
	// before the wait.
	RetryScheduled func(ctx context.Context, e RetryEvent)

	// BudgetExhausted is called when a resend is refused because the
	// host's retry budget is spent: the caller gets the last outcome.
	BudgetExhausted func(ctx context.Context, e BudgetEvent)

	// TokenRefresh is called when a bearer token refresh ends, under the
	// refresh's own context.
	TokenRefresh func(ctx context.Context, e TokenRefreshEvent)

	// TokenRequest is called for each request to an OAuth token endpoint
	// (Bearer.ClientCredentials), when it has its response or failed.
	TokenRequest func(ctx context.Context, e TokenRequestEvent)

	// Handshake is called when a TLS handshake made for an attempt ends,
	// with the attempt's context.
	Handshake func(ctx context.Context, e HandshakeEvent)

	// PinFailure is called for each pin mismatch, enforced or report-only,
	// like Config.OnPinFailure.
	PinFailure func(e PinFailureEvent)

	// CertificateExpiring is called, once per certificate, when a
	// certificate of a verified chain expires within Config.ExpiryWarning.
	CertificateExpiring func(e CertificateEvent)

	// logger reports a hook's panic; set by clone.
	logger *slog.Logger
}

// Target names the request an event is about.
type Target struct {
	Method string // the request method, "GET" when empty
	URL    string // scheme, host and path: no userinfo, query or fragment
	Host   string // the server's host name or address, without the port
	Port   int    // the server's port, 443 when the URL names none
}

// AttemptEvent describes one attempt of a request.
type AttemptEvent struct {
	Target
	Attempt int // 1 for the first attempt, 2 for the first resend, and so on
}

// AttemptResult is the outcome of one attempt.
type AttemptResult struct {
	StatusCode int           // the response status; 0 when the attempt failed
	Error      string        // the failure's class; "" when a response came
	Duration   time.Duration // from sending to the response headers or the failure
}

// RetryEvent describes a scheduled retry.
type RetryEvent struct {
	Target
	Reason string        // the status code, as "503", or the error class
	Wait   time.Duration // the wait before the retry
}

// BudgetEvent describes a resend refused by the retry budget.
type BudgetEvent struct {
	Target
	Resend string // "retry", "unauthorized" or "dpop_nonce"
}

// TokenRefreshEvent describes a finished bearer token refresh.
type TokenRefreshEvent struct {
	Error    string // the failure's class; "" when a usable token came
	Duration time.Duration
}

// TokenRequestEvent describes a request to a token endpoint.
type TokenRequestEvent struct {
	URL        string // the endpoint's scheme, host and path
	StatusCode int    // 0 when the request failed
	Error      string // the failure's class; "" when a response came
	Duration   time.Duration
}

// HandshakeEvent describes a finished TLS handshake.
type HandshakeEvent struct {
	Host    string // the server name the handshake was made for
	Version string // "TLS 1.3", "TLS 1.2"; "" when the handshake failed
	Resumed bool   // whether a previous session was resumed
	// Pin is "none" when no pin set covers the host, "match" when an
	// enforced set matched, "mismatch" when none did, "report_only" when
	// only report-only sets apply (see PinFailure), and "unchecked" when
	// the handshake failed before pins were checked.
	Pin   string
	Error string // the failure's class; "" on success
}

// PinFailureEvent describes a pin mismatch.
type PinFailureEvent struct {
	Host       string
	ReportOnly bool     // the mismatch was reported, not enforced
	Pins       []string // the SPKI pins of the chain presented, public values
}

// CertificateEvent describes a certificate about to expire.
type CertificateEvent struct {
	Subject  string
	NotAfter time.Time
	SPKIPin  string
}

// Resend kinds, for allowResend and BudgetEvent.Resend.
const (
	resendRetry        = "retry"
	resendUnauthorized = "unauthorized"
	resendNonce        = "dpop_nonce"
)

// attempt sends one attempt of req through the connection pool of the
// client certificate in use (the base transport without one), reporting it
// to the hooks. Every attempt, the first and each resend, goes through here,
// and so does every response, whose DPoP nonce is learnt (RFC 9449 section
// 8.2: any response may carry one).
func (t *Transport) attempt(req *http.Request) (*http.Response, error) {
	req = t.egress.track(req)
	var resp *http.Response
	var err error
	if t.hooks == nil {
		out := req
		if ctx, rctx := req.Context(), redactTrace(req.Context()); rctx != ctx {
			out = req.WithContext(rctx)
		}
		resp, err = t.pool().RoundTrip(out)
		if resp != nil {
			resp.Request = req
		}
	} else {
		resp, err = t.hooks.attempt(t, req)
	}
	if err == nil && t.dpop != nil {
		t.dpop.observe(req.URL, resp.Header)
	}
	return resp, err
}

// attempts is Transport.attempt as an http.RoundTripper.
type attempts struct{ t *Transport }

func (a attempts) RoundTrip(req *http.Request) (*http.Response, error) { return a.t.attempt(req) }

// exchange is one request's state across its attempts, kept in its context
// while hooks are set: the attempts so far, and the request to show as
// resp.Request.
type exchange struct {
	// attempts is atomic only in case a hook sends a request of its own
	// under the context it was given.
	attempts atomic.Int32
	req      *http.Request
}

type exchangeKey struct{}

// track returns req, or with hooks set and the first time only, a copy
// whose context numbers the attempts of req and of requests made from it
// (retries, replays).
func (h *Hooks) track(req *http.Request) *http.Request {
	if h == nil {
		return req
	}
	ctx := req.Context()
	if _, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		return req
	}
	return req.WithContext(context.WithValue(ctx, exchangeKey{}, &exchange{req: req}))
}

func (h *Hooks) attempt(t *Transport, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	e := AttemptEvent{Target: target(req), Attempt: 1}
	shown := req
	if ex, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		e.Attempt, shown = int(ex.attempts.Add(1)), ex.req
	}
	actx := ctx
	if h.AttemptStart != nil {
		if c := h.attemptStart(ctx, e); c != nil {
			actx = c
		}
	}
	sent := actx
	if h.Handshake != nil {
		sent = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
			TLSHandshakeDone: func(cs tls.ConnectionState, err error) {
				defer h.recovered("Handshake")
				h.Handshake(actx, t.handshakeEvent(e.Host, cs, err))
			},
		})
	}
	sent = redactTrace(sent)
	out := req
	if sent != ctx {
		out = req.WithContext(sent)
	}
	if h.InjectHeader != nil {
		extra := make(http.Header)
		h.injectHeader(actx, extra)
		if hdr := addHeaders(req.Header, extra); hdr != nil {
			if out == req {
				out = new(http.Request)
				*out = *req
			}
			out.Header = hdr
		}
	}
	start := t.now()
	resp, err := t.pool().RoundTrip(out)
	r := AttemptResult{Duration: t.now().Sub(start)}
	if err != nil {
		r.Error = errorClass(err)
	} else {
		r.StatusCode = resp.StatusCode
		resp.Request = shown
	}
	if h.AttemptDone != nil {
		h.attemptDone(actx, e, r)
	}
	return resp, err
}

// redactTrace returns ctx, or, when the httptrace.ClientTrace in ctx would
// be handed the request's header fields (WroteHeaderField), a context whose
// trace is a copy of it handed the values of Authorization, DPoP, Cookie and
// Proxy-Authorization redacted. Trace propagation code records the header
// fields it is handed (otelhttptrace does, and does not know DPoP), and the
// token and the proof were never the caller's to see, nor a hook's. The
// trace the caller put in the request's context is redacted too, as is one
// a hook composed with it: both are what ctx holds.
func redactTrace(ctx context.Context) context.Context {
	trace := httptrace.ContextClientTrace(ctx)
	if trace == nil || trace.WroteHeaderField == nil {
		return ctx
	}
	wrote := trace.WroteHeaderField
	redacted := *trace
	redacted.WroteHeaderField = func(key string, values []string) {
		if credentialHeader(key) {
			r := make([]string, len(values))
			for i := range r {
				r[i] = "[redacted]"
			}
			values = r
		}
		wrote(key, values)
	}
	// WithClientTrace would compose the copy with the trace it finds, which
	// would then be handed the values after all: it must find none.
	return httptrace.WithClientTrace(hiddenTrace{ctx, trace}, &redacted)
}

// hiddenTrace is a context in which trace is no longer found, and which is
// otherwise its parent's, deadline and cancellation included.
type hiddenTrace struct {
	context.Context
	trace *httptrace.ClientTrace
}

func (c hiddenTrace) Value(key any) any {
	v := c.Context.Value(key)
	if t, ok := v.(*httptrace.ClientTrace); ok && t == c.trace {
		return nil
	}
	return v
}

// credentialHeader reports whether the header field named key, in any case
// (HTTP/2 writes names in lower case), carries a credential.
func credentialHeader(key string) bool {
	for _, k := range [...]string{"Authorization", "Proxy-Authorization", "Dpop", "Cookie"} {
		if strings.EqualFold(key, k) {
			return true
		}
	}
	return false
}

// recovered, deferred around a hook's call, ends the hook's panic: several
// hooks run on goroutines of net/http or of a background refresh, where a
// panic would end the whole process, and the others between sending an
// attempt and returning its response, whose body would be left open. Only
// the panic's type is logged: its value may quote anything.
func (h *Hooks) recovered(hook string) {
	if p := recover(); p != nil && h.logger != nil {
		h.logger.Warn("securehttp: a hook panicked; its event is dropped", "hook", hook, "panic", fmt.Sprintf("%T", p))
	}
}

func (h *Hooks) attemptStart(ctx context.Context, e AttemptEvent) context.Context {
	defer h.recovered("AttemptStart")
	return h.AttemptStart(ctx, e)
}

func (h *Hooks) injectHeader(ctx context.Context, extra http.Header) {
	defer h.recovered("InjectHeader")
	h.InjectHeader(ctx, extra)
}

func (h *Hooks) attemptDone(ctx context.Context, e AttemptEvent, r AttemptResult) {
	defer h.recovered("AttemptDone")
	h.AttemptDone(ctx, e, r)
}

// addHeaders returns a copy of base with the entries of extra it may take,
// or nil when there are none. base is never modified: it may be shared.
func addHeaders(base, extra http.Header) http.Header {
	var out http.Header
	for k, v := range extra {
		k = textproto.CanonicalMIMEHeaderKey(k)
		if len(v) == 0 || reservedHeader(k) || len(base[k]) > 0 {
			continue
		}
		if out == nil {
			out = base.Clone()
			if out == nil {
				out = make(http.Header, len(extra))
			}
		}
		out[k] = append([]string(nil), v...)
	}
	return out
}

func reservedHeader(k string) bool {
	switch k {
	case "Authorization", "Proxy-Authorization", "Dpop", "Cookie", "Host",
		"Content-Length", "Transfer-Encoding", "Connection", "Te", "Trailer", "Upgrade":
		return true
	}
	return false
}

// target describes req without any secret.
func target(req *http.Request) Target {
	m := req.Method
	if m == "" {
		m = http.MethodGet
	}
	return Target{Method: m, URL: redactURL(req.URL), Host: req.URL.Hostname(), Port: urlPort(req.URL)}
}

func urlPort(u *url.URL) int {
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	return 443
}

func (t *Transport) handshakeEvent(host string, cs tls.ConnectionState, err error) HandshakeEvent {
	e := HandshakeEvent{Host: host, Resumed: cs.DidResume}
	if cs.Version != 0 {
		e.Version = tls.VersionName(cs.Version)
	}
	if h, nerr := normalizeHost(host); nerr == nil {
		host = h
	}
	var pinErr *PinError
	enforced, reportOnly := t.pinsFor(host)
	switch {
	case errors.As(err, &pinErr) && !pinErr.ReportOnly:
		e.Pin = "mismatch"
	case !enforced && !reportOnly:
		e.Pin = "none"
	case err != nil:
		e.Pin = "unchecked"
	case enforced:
		e.Pin = "match"
	default:
		e.Pin = "report_only"
	}
	if err != nil {
		e.Error = errorClass(err)
	}
	return e
}

// pinsFor reports whether enforced and report-only pin sets in force cover
// host.
func (t *Transport) pinsFor(host string) (enforced, reportOnly bool) {
	now := t.now()
	for _, s := range t.pins {
		if !s.host.match(host) || (!s.expires.IsZero() && now.After(s.expires)) {
			continue
		}
		if s.reportOnly {
			reportOnly = true
		} else {
			enforced = true
		}
	}
	return enforced, reportOnly
}

func (h *Hooks) retry(req *http.Request, reason string, wait time.Duration) {
	if h == nil || h.RetryScheduled == nil {
		return
	}
	defer h.recovered("RetryScheduled")
	h.RetryScheduled(req.Context(), RetryEvent{Target: target(req), Reason: reason, Wait: wait})
}

func (h *Hooks) budgetExhausted(req *http.Request, resend string) {
	if h == nil || h.BudgetExhausted == nil {
		return
	}
	defer h.recovered("BudgetExhausted")
	h.BudgetExhausted(req.Context(), BudgetEvent{Target: target(req), Resend: resend})
}

func (h *Hooks) tokenRefresh(ctx context.Context, err error, d time.Duration) {
	if h == nil || h.TokenRefresh == nil {
		return
	}
	e := TokenRefreshEvent{Duration: d}
	if err != nil {
		e.Error = errorClass(err)
	}
	defer h.recovered("TokenRefresh")
	h.TokenRefresh(ctx, e)
}

func (h *Hooks) tokenRequest(ctx context.Context, u *url.URL, resp *http.Response, err error, d time.Duration) {
	if h == nil || h.TokenRequest == nil {
		return
	}
	e := TokenRequestEvent{URL: redactURL(u), Duration: d}
	if err != nil {
		e.Error = errorClass(err)
	} else {
		e.StatusCode = resp.StatusCode
	}
	defer h.recovered("TokenRequest")
	h.TokenRequest(ctx, e)
}

func (h *Hooks) pinFailure(err *PinError) {
	if h == nil || h.PinFailure == nil {
		return
	}
	defer h.recovered("PinFailure")
	h.PinFailure(PinFailureEvent{Host: err.Host, ReportOnly: err.ReportOnly, Pins: append([]string(nil), err.Pins...)})
}

func (h *Hooks) certificateExpiring(c *x509.Certificate) {
	if h == nil || h.CertificateExpiring == nil {
		return
	}
	defer h.recovered("CertificateExpiring")
	h.CertificateExpiring(CertificateEvent{Subject: c.Subject.String(), NotAfter: c.NotAfter, SPKIPin: SPKIPin(c)})
}

// outcomeClass names an attempt's outcome: its status code or its error
// class.
func outcomeClass(resp *http.Response, err error) string {
	if err != nil {
		return errorClass(err)
	}
	return strconv.Itoa(resp.StatusCode)
}

// errorClass names err by its type, never by its text.
func errorClass(err error) string {
	var (
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		refreshErr *RefreshError
		oauthErr   *OAuthError
		dnsErr     *net.DNSError
		netErr     net.Error
	)
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, ErrPinMismatch):
		return "pin_mismatch"
	case errors.Is(err, ErrWeakKey):
		return "weak_key"
	case errors.Is(err, ErrRevoked):
		return "revoked"
	case errors.Is(err, ErrOCSPStaple):
		return "ocsp_staple"
	case errors.Is(err, ErrInsecureScheme):
		return "insecure_scheme"
	case errors.Is(err, ErrHostNotAllowed):
		return "host_not_allowed"
	case errors.Is(err, ErrBlockedAddress):
		return "blocked_address"
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return "certificate"
	case errors.As(err, &refreshErr):
		return "token_unavailable"
	case errors.As(err, &oauthErr):
		return "oauth_error"
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection_closed"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		// A request's own deadline, and net/http's and net's timeouts,
		// which match context.DeadlineExceeded too.
		return "timeout"
	}
	return "error"
}

// clone returns a copy of h, so that a Config changed after NewTransport
// changes nothing, reporting hook panics to logger, or nil for nil.
func (h *Hooks) clone(logger *slog.Logger) *Hooks {
	if h == nil {
		return nil
	}
	c := *h
	c.logger = logger
	return &c
}
