// Package otelsecurehttp turns the events of a securehttp client into
// OpenTelemetry traces and metrics, and propagates trace context to the
// servers it calls:
//
//	cfg.Hooks = otelsecurehttp.NewHooks()
//	client, err := securehttp.NewClient(cfg)
//
// Each attempt of a request (the first, each retry, each replay after a 401
// or a DPoP nonce challenge) is one CLIENT span, named after the method and
// following the HTTP semantic conventions: http.request.method,
// server.address, server.port, url.full, http.response.status_code,
// error.type, and http.request.resend_count on resends. The span is a child
// of the span in the request's context, and its trace context is sent in
// that attempt's headers only (traceparent, with the default W3C
// propagator).
//
// Metrics are http.client.request.duration, per attempt, and the counters
// securehttp.client.retries, securehttp.client.retry_budget.exhausted,
// securehttp.client.token.refreshes, securehttp.client.token.requests,
// securehttp.client.pin_failures and securehttp.client.certificate.expiring.
//
// Nothing recorded holds a token, a DPoP proof, a cookie, a query string or
// URL userinfo: the hooks never see them. url.full is the URL without its
// query, fragment and userinfo.
//
// This package is the only one of the module that imports OpenTelemetry;
// securehttp itself does not.
package otelsecurehttp

import (
	"context"
	"crypto/x509"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/securehttp/securehttp"
)

// scope names the instrumentation: the tracer and the meter.
const scope = "github.com/securehttp/securehttp/otelsecurehttp"

// Option configures NewHooks.
type Option func(*config)

type config struct {
	tp   trace.TracerProvider
	mp   metric.MeterProvider
	prop propagation.TextMapPropagator
}

// WithTracerProvider sets the tracer provider. The default is the global
// one, otel.GetTracerProvider(), as it is when NewHooks is called.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// WithMeterProvider sets the meter provider. The default is the global one,
// otel.GetMeterProvider(), as it is when NewHooks is called.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// WithPropagators sets how trace context is written into each attempt's
// headers. The default is the global propagator,
// otel.GetTextMapPropagator(), as it is when NewHooks is called.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.prop = p }
}

// durationBuckets returns the bucket boundaries the HTTP semantic
// conventions advise for http.client.request.duration, in seconds.
func durationBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
}

// recorder holds the instruments behind one set of hooks.
type recorder struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator

	duration      metric.Float64Histogram
	retries       metric.Int64Counter
	budget        metric.Int64Counter
	refreshes     metric.Int64Counter
	tokenRequests metric.Int64Counter
	pinFailures   metric.Int64Counter
	expiring      metric.Int64Counter
}

// NewHooks returns hooks for securehttp.Config.Hooks that record spans and
// metrics with OpenTelemetry and inject trace context into each attempt.
// An instrument that cannot be made is reported to otel.Handle and replaced
// by one that records nothing.
func NewHooks(opts ...Option) *securehttp.Hooks {
	c := config{}
	for _, o := range opts {
		o(&c)
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.prop == nil {
		c.prop = otel.GetTextMapPropagator()
	}
	meter := c.mp.Meter(scope)
	r := &recorder{
		tracer: c.tp.Tracer(scope),
		prop:   c.prop,
	}
	var err error
	if r.duration, err = meter.Float64Histogram("http.client.request.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of HTTP client requests."),
		metric.WithExplicitBucketBoundaries(durationBuckets()...)); err != nil {
		otel.Handle(err)
	}
	r.retries = counter(meter, "securehttp.client.retries", "{retry}", "Retries scheduled after a failed attempt.")
	r.budget = counter(meter, "securehttp.client.retry_budget.exhausted", "{resend}", "Resends refused because the host's retry budget was spent.")
	r.refreshes = counter(meter, "securehttp.client.token.refreshes", "{refresh}", "Bearer token refreshes, by outcome.")
	r.tokenRequests = counter(meter, "securehttp.client.token.requests", "{request}", "Requests to OAuth token endpoints.")
	r.pinFailures = counter(meter, "securehttp.client.pin_failures", "{failure}", "Certificate pin mismatches, enforced or report-only.")
	r.expiring = counter(meter, "securehttp.client.certificate.expiring", "{certificate}", "Certificates found to expire within the warning window.")
	return &securehttp.Hooks{
		AttemptStart:        r.attemptStart,
		InjectHeader:        r.injectHeader,
		AttemptDone:         r.attemptDone,
		RetryScheduled:      r.retryScheduled,
		BudgetExhausted:     r.budgetExhausted,
		TokenRefresh:        r.tokenRefresh,
		TokenRequest:        r.tokenRequest,
		Handshake:           r.handshake,
		PinFailure:          r.pinFailure,
		CertificateExpiring: r.certificateExpiring,
	}
}

func counter(m metric.Meter, name, unit, desc string) metric.Int64Counter {
	c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		otel.Handle(err)
	}
	return c
}

// Attributes of our own, for what the semantic conventions do not name.
const (
	reasonKey     = attribute.Key("securehttp.retry.reason")
	resendKey     = attribute.Key("securehttp.resend.kind")
	outcomeKey    = attribute.Key("securehttp.outcome")
	reportOnlyKey = attribute.Key("securehttp.pin.report_only")
	pinOutcomeKey = attribute.Key("securehttp.pin.outcome")
)

func (r *recorder) attemptStart(ctx context.Context, e securehttp.AttemptEvent) context.Context {
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, methodAttrs(e.Method)...)
	attrs = append(attrs,
		semconv.ServerAddress(e.Host),
		semconv.ServerPort(e.Port),
		semconv.URLFull(e.URL),
	)
	if e.Attempt > 1 {
		attrs = append(attrs, semconv.HTTPRequestResendCount(e.Attempt-1))
	}
	ctx, _ = r.tracer.Start(ctx, spanName(e.Method),
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx
}

func (r *recorder) injectHeader(ctx context.Context, h http.Header) {
	r.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

func (r *recorder) attemptDone(ctx context.Context, e securehttp.AttemptEvent) {
	span := trace.SpanFromContext(ctx)
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, methodAttrs(e.Method)[0], semconv.ServerAddress(e.Host), semconv.ServerPort(e.Port))
	errType := e.Error
	if e.Error == "" {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(e.StatusCode))
		span.SetAttributes(semconv.HTTPResponseStatusCode(e.StatusCode))
		if e.StatusCode >= 400 {
			errType = strconv.Itoa(e.StatusCode)
		}
	}
	if errType != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(errType))
		span.SetAttributes(semconv.ErrorTypeKey.String(errType))
		span.SetStatus(codes.Error, errType)
	}
	span.End()
	if r.duration != nil {
		r.duration.Record(ctx, e.Duration.Seconds(), metric.WithAttributes(attrs...))
	}
}

func (r *recorder) retryScheduled(ctx context.Context, e securehttp.AttemptEvent) {
	reason := e.Error
	if reason == "" {
		reason = strconv.Itoa(e.StatusCode)
	}
	add(ctx, r.retries, semconv.ServerAddress(e.Host), reasonKey.String(reason))
}

func (r *recorder) budgetExhausted(ctx context.Context, e securehttp.AttemptEvent) {
	add(ctx, r.budget, semconv.ServerAddress(e.Host), resendKey.String(e.Resend))
}

func (r *recorder) tokenRefresh(ctx context.Context, e securehttp.TokenEvent) {
	if e.Error != "" {
		add(ctx, r.refreshes, outcomeKey.String("failure"), semconv.ErrorTypeKey.String(e.Error))
		return
	}
	add(ctx, r.refreshes, outcomeKey.String("success"))
}

func (r *recorder) tokenRequest(ctx context.Context, e securehttp.TokenEvent) {
	if e.Error != "" {
		add(ctx, r.tokenRequests, semconv.ErrorTypeKey.String(e.Error))
		return
	}
	add(ctx, r.tokenRequests, semconv.HTTPResponseStatusCode(e.StatusCode))
}

func (r *recorder) handshake(ctx context.Context, e securehttp.HandshakeEvent) {
	attrs := []attribute.KeyValue{
		semconv.TLSProtocolNameTLS,
		semconv.TLSResumed(e.Resumed),
		pinOutcomeKey.String(e.Pin),
	}
	if v, ok := strings.CutPrefix(e.Version, "TLS "); ok {
		attrs = append(attrs, semconv.TLSProtocolVersion(v))
	}
	if e.Error != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(e.Error))
	}
	trace.SpanFromContext(ctx).AddEvent("tls.handshake", trace.WithAttributes(attrs...))
}

func (r *recorder) pinFailure(e *securehttp.PinError) {
	add(context.Background(), r.pinFailures, semconv.ServerAddress(e.Host), reportOnlyKey.Bool(e.ReportOnly))
}

func (r *recorder) certificateExpiring(*x509.Certificate) {
	add(context.Background(), r.expiring)
}

func add(ctx context.Context, c metric.Int64Counter, attrs ...attribute.KeyValue) {
	if c != nil {
		c.Add(ctx, 1, metric.WithAttributes(attrs...))
	}
}

// methodAttrs follows the semantic conventions: a method outside the
// well-known set is recorded as "_OTHER", with the original alongside, so
// that a client sending odd methods cannot blow up cardinality.
func methodAttrs(m string) []attribute.KeyValue {
	if known(m) {
		return []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(m)}
	}
	return []attribute.KeyValue{semconv.HTTPRequestMethodOther, semconv.HTTPRequestMethodOriginal(m)}
}

func spanName(m string) string {
	if known(m) {
		return m
	}
	return "HTTP"
}

func known(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}
