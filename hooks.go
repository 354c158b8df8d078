package securehttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Hooks receives the client's events, for metrics and traces (otelsecurehttp
// turns them into OpenTelemetry). Every field is optional, and nil Hooks
// cost nothing. Hooks run synchronously and must not block; a hook's panic
// loses its event only. Events never hold a token, a proof, a cookie, a
// query, userinfo or an error's text: failures are named as ErrorClass
// names them. A ClientTrace in an attempt's context sees credential
// headers as "[redacted]".
type Hooks struct {
	// AttemptStart is called before each attempt: the first, each retry,
	// and each replay after a 401 or a DPoP nonce challenge. The context
	// it returns, if not nil, is the attempt's, which InjectHeader,
	// Handshake and AttemptDone receive. Derive it from ctx, as
	// trace.ContextWithSpan does, or the attempt loses its deadline.
	AttemptStart func(ctx context.Context, e AttemptEvent) context.Context

	// InjectHeader fills an empty header, such as with trace context, for
	// one attempt only. Entries the request has, credentials and framing
	// headers are left out.
	InjectHeader func(ctx context.Context, h http.Header)

	// AttemptDone is called when an attempt has its response headers
	// (e.StatusCode) or has failed (e.Error), with e.Duration.
	AttemptDone func(ctx context.Context, e AttemptEvent)

	// RetryScheduled is called when a failed attempt (e.StatusCode or
	// e.Error) will be retried after e.Wait.
	RetryScheduled func(ctx context.Context, e AttemptEvent)

	// BudgetExhausted is called when the host's retry budget refuses a
	// resend (e.Resend: "retry", "unauthorized" or "dpop_nonce"); the
	// caller gets the last outcome.
	BudgetExhausted func(ctx context.Context, e AttemptEvent)

	// TokenRefresh is called when a token refresh ends, under its context.
	TokenRefresh func(ctx context.Context, e TokenEvent)

	// TokenRequest is called when an attempt of a request to a token
	// endpoint has its response or has failed.
	TokenRequest func(ctx context.Context, e TokenEvent)

	// Handshake is called when a TLS handshake made for an attempt ends.
	Handshake func(ctx context.Context, e HandshakeEvent)

	// PinFailure is called for each pin mismatch, enforced or report-only,
	// with a copy of the error.
	PinFailure func(err *PinError)

	// CertificateExpiring is called once per certificate of a verified
	// chain that expires within Config.ExpiryWarning. It must not modify
	// cert.
	CertificateExpiring func(cert *x509.Certificate)

	// logger reports a hook's panic; set by clone.
	logger *slog.Logger
}

// AttemptEvent describes one attempt of a request.
type AttemptEvent struct {
	Method  string // "GET" when the request names none
	URL     string // scheme, host and path: no userinfo, query or fragment
	Host    string // the server's host, without the port
	Port    int    // 443 when the URL names none
	Attempt int    // 1 for the first attempt, 2 for the first resend, and so on

	StatusCode int           // the response's status; 0 when the attempt failed
	Error      string        // the failure's class; "" when a response came
	Duration   time.Duration // AttemptDone: from sending to the response headers or the failure
	Wait       time.Duration // RetryScheduled: the wait before the retry
	Resend     string        // BudgetExhausted: the kind of resend refused
}

// TokenEvent describes a token refresh, or an attempt of a request to a
// token endpoint (URL, StatusCode).
type TokenEvent struct {
	URL        string // the endpoint's scheme, host and path
	StatusCode int    // 0 when the request failed
	Error      string // the failure's class; "" when it succeeded
	Duration   time.Duration
}

// HandshakeEvent describes a finished TLS handshake.
type HandshakeEvent struct {
	Host    string // the server name the handshake was made for
	Version string // "TLS 1.3", "TLS 1.2"; "" when the handshake failed
	Resumed bool   // whether a previous session was resumed
	// Pin is "none" when no pin set covers the host, "match" when an
	// enforced set matched, "mismatch" when none did, "report_only" when
	// only report-only sets apply, and "unchecked" when the handshake
	// failed before pins were checked.
	Pin   string
	Error string // the failure's class; "" on success
}

// clone returns a copy of h, so that a Config changed after NewClient
// changes nothing, reporting hook panics to logger, or nil for nil.
func (h *Hooks) clone(logger *slog.Logger) *Hooks {
	if h == nil {
		return nil
	}
	c := *h
	c.logger = logger
	return &c
}

// send sends one attempt with the hooks around it: AttemptStart, the
// attempt's own context and headers, the handshake, and AttemptDone. It
// is transport.attempt's path when hooks are set.
func (h *Hooks) send(t *transport, x *exchange, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	e := attemptEvent(req, x.tries)
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
	resp, err := t.wire(out)
	e.Duration = t.now().Sub(start)
	outcome(&e.StatusCode, &e.Error, resp, err)
	if h.AttemptDone != nil {
		h.attemptDone(actx, e)
	}
	if x.tokenRequest && h.TokenRequest != nil {
		te := TokenEvent{URL: e.URL, Duration: e.Duration}
		outcome(&te.StatusCode, &te.Error, resp, err)
		h.tokenRequest(ctx, te)
	}
	return resp, err
}

// outcome fills an event's status and error class.
func outcome(status *int, class *string, resp *http.Response, err error) {
	if err != nil {
		*class = classify(err).class
	} else {
		*status = resp.StatusCode
	}
}

// attemptEvent describes req without any secret.
func attemptEvent(req *http.Request, attempt int) AttemptEvent {
	m := req.Method
	if m == "" {
		m = http.MethodGet
	}
	return AttemptEvent{Method: m, URL: redactURL(req.URL), Host: req.URL.Hostname(), Port: urlPort(req.URL), Attempt: attempt}
}

func urlPort(u *url.URL) int {
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	return 443
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

// handshakeEvent describes a handshake for host, with the verdict of the
// pin sets that cover it.
func (t *transport) handshakeEvent(host string, cs tls.ConnectionState, err error) HandshakeEvent {
	e := HandshakeEvent{Host: host, Resumed: cs.DidResume}
	if cs.Version != 0 {
		e.Version = tls.VersionName(cs.Version)
	}
	if h, nerr := normalizeHost(host); nerr == nil {
		host = h
	}
	enforced, reportOnly := t.pinsFor(host, t.now())
	pinErr, mismatch := errors.AsType[*PinError](err)
	switch {
	case mismatch && !pinErr.ReportOnly:
		e.Pin = "mismatch"
	case enforced == nil && reportOnly == nil:
		e.Pin = "none"
	case err != nil:
		e.Pin = "unchecked"
	case enforced != nil:
		e.Pin = "match"
	default:
		e.Pin = "report_only"
	}
	if err != nil {
		e.Error = classify(err).class
	}
	return e
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

func (h *Hooks) attemptDone(ctx context.Context, e AttemptEvent) {
	defer h.recovered("AttemptDone")
	h.AttemptDone(ctx, e)
}

func (h *Hooks) tokenRequest(ctx context.Context, e TokenEvent) {
	defer h.recovered("TokenRequest")
	h.TokenRequest(ctx, e)
}

// retryScheduled reports a retry of x's last attempt.
func (h *Hooks) retryScheduled(x *exchange, wait time.Duration) {
	if h == nil || h.RetryScheduled == nil {
		return
	}
	e := attemptEvent(x.req, x.tries)
	e.StatusCode, e.Error, e.Wait = x.lastStatus, x.lastError, wait
	defer h.recovered("RetryScheduled")
	h.RetryScheduled(x.req.Context(), e)
}

func (h *Hooks) budgetExhausted(x *exchange, r resend) {
	if h == nil || h.BudgetExhausted == nil {
		return
	}
	req := x.req
	e := attemptEvent(req, x.tries)
	e.Resend = r.String()
	defer h.recovered("BudgetExhausted")
	h.BudgetExhausted(req.Context(), e)
}

func (h *Hooks) tokenRefresh(ctx context.Context, err error, d time.Duration) {
	if h == nil || h.TokenRefresh == nil {
		return
	}
	e := TokenEvent{Duration: d}
	if err != nil {
		e.Error = classify(err).class
	}
	defer h.recovered("TokenRefresh")
	h.TokenRefresh(ctx, e)
}

func (h *Hooks) pinFailure(err *PinError) {
	if h == nil || h.PinFailure == nil {
		return
	}
	c := *err
	c.Pins, c.Positions, c.Configured = slices.Clone(err.Pins), slices.Clone(err.Positions), slices.Clone(err.Configured)
	defer h.recovered("PinFailure")
	h.PinFailure(&c)
}

func (h *Hooks) certificateExpiring(c *x509.Certificate) {
	if h == nil || h.CertificateExpiring == nil {
		return
	}
	defer h.recovered("CertificateExpiring")
	h.CertificateExpiring(c)
}
