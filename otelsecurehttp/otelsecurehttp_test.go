package otelsecurehttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/httptrace/otelhttptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/otelsecurehttp"
	"github.com/securehttp/securehttp/securehttptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	hostAPI   = "api.test"
	hostOther = "other.test"
)

// startServer starts a server of the test kit for the test hosts, whose
// handler is h.
func startServer(t testing.TB, h http.Handler) *securehttptest.Server {
	t.Helper()
	return securehttptest.NewServer(t, h, securehttptest.Hosts(hostAPI, hostOther))
}

// hostURL returns the URL of path at srv under host.
func hostURL(srv *securehttptest.Server, host, path string) string {
	_, port, _ := net.SplitHostPort(srv.Host)
	return "https://" + net.JoinHostPort(host, port) + path
}

// Secrets that must reach the server and nothing the adapter exports.
const (
	tokenSecret = "TOKSECRET"
	querySecret = "QSECRET"
	proofSecret = "eyJ0eXAiOiJkcG9wK2p3dCJ9.PROOFSECRET.sig"
)

// TestSpansMetricsAndPropagation sends a request that meets a 503, a
// retry, a 401 and a replay, then requests that spend the retry budget and
// one that fails a report-only pin, and checks what the SDK's in-memory
// exporters hold: one CLIENT span per attempt with the semantic-convention
// attributes, trace context sent per attempt, the metrics, and no secret.
func TestSpansMetricsAndPropagation(t *testing.T) {
	stranger := securehttptest.NewCA(t)
	var (
		mu      sync.Mutex
		parents []string // traceparent of each attempt to /things
		auths   []string
		queries []string
		n       atomic.Int64
	)
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case "/ok":
			return
		}
		mu.Lock()
		parents = append(parents, r.Header.Get("Traceparent"))
		auths = append(auths, r.Header.Get("Authorization"))
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		switch n.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			io.WriteString(w, "ok")
		}
	}))

	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })

	var refreshes atomic.Int64
	cfg := srv.Config() // trusts the kit's CA, connects to 127.0.0.1, no proxy
	cfg.Retry = securehttp.RetryPolicy{MinWait: time.Millisecond, MaxWait: time.Millisecond}
	cfg.Pins = []securehttp.PinSet{{Host: hostOther, Pins: stranger.Pins(), ReportOnly: true}}
	cfg.Bearer = &securehttp.Bearer{Hosts: []string{hostAPI}, Refresh: func(context.Context) (securehttp.Token, error) {
		return securehttp.Token{Value: fmt.Sprintf("%s-%d", tokenSecret, refreshes.Add(1)), Expiry: time.Now().Add(time.Hour)}, nil
	}}
	cfg.Hooks = otelsecurehttp.NewHooks(
		otelsecurehttp.WithTracerProvider(tp),
		otelsecurehttp.WithMeterProvider(mp),
		otelsecurehttp.WithPropagators(propagation.TraceContext{}),
	)
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)

	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hostURL(srv, hostAPI, "/things?key="+querySecret), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("DPoP", proofSecret)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.End()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d, want 200", resp.StatusCode)
	}
	if got := req.Header.Get("Traceparent"); got != "" {
		t.Errorf("got traceparent %q in the caller's request, want none", got)
	}
	for _, path := range append(slices.Repeat([]string{"/fail"}, 20), "/ok") {
		host := hostAPI
		if path == "/ok" {
			host = hostOther
		}
		resp, err := client.Get(hostURL(srv, host, path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	// The secrets did reach the server, so finding none below means something.
	mu.Lock()
	if len(auths) != 3 || !strings.Contains(auths[0], tokenSecret) || !strings.Contains(queries[0], querySecret) {
		t.Fatalf("server got authorizations %q and queries %q, want 3 with the secrets", auths, queries)
	}
	gotParents := slices.Clone(parents)
	mu.Unlock()

	// Spans: one CLIENT span per attempt to /things, children of parent.
	wantURL := hostURL(srv, hostAPI, "/things")
	_, port, _ := net.SplitHostPort(srv.Host)
	var attempts []tracetest.SpanStub
	for _, s := range exporter.GetSpans() {
		if s.SpanKind == trace.SpanKindClient && attr(s.Attributes, "url.full") == wantURL {
			attempts = append(attempts, s)
		}
	}
	if len(attempts) != 3 {
		t.Fatalf("got %d client spans for %s, want 3", len(attempts), wantURL)
	}
	for i, s := range attempts {
		wantStatus := []string{"503", "401", "200"}[i]
		wantErr := []string{"503", "401", ""}[i]
		wantResend := []string{"", "1", "2"}[i]
		got := fmt.Sprintf("%s %s %s %s %s %s %s", s.Name, attr(s.Attributes, "http.request.method"),
			attr(s.Attributes, "server.address"), attr(s.Attributes, "server.port"),
			attr(s.Attributes, "http.response.status_code"), attr(s.Attributes, "error.type"),
			attr(s.Attributes, "http.request.resend_count"))
		want := fmt.Sprintf("GET GET %s %s %s %s %s", hostAPI, port, wantStatus, wantErr, wantResend)
		if got != want {
			t.Errorf("span %d: got %q, want %q", i, got, want)
		}
		if s.Parent.SpanID() != parent.SpanContext().SpanID() || s.SpanContext.TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("span %d: got parent %s, want %s", i, s.Parent.SpanID(), parent.SpanContext().SpanID())
		}
		wantParent := fmt.Sprintf("00-%s-%s-01", s.SpanContext.TraceID(), s.SpanContext.SpanID())
		if i >= len(gotParents) || gotParents[i] != wantParent {
			t.Errorf("attempt %d: server got traceparent %q, want %q: the attempt's own span", i, gotParents, wantParent)
		}
	}
	var shake []string
	for _, s := range exporter.GetSpans() {
		for _, e := range s.Events {
			if e.Name == "tls.handshake" {
				shake = append(shake, attr(s.Attributes, "server.address")+" "+attr(e.Attributes, "securehttp.pin.outcome")+
					" "+attr(e.Attributes, "tls.protocol.version"))
			}
		}
	}
	if !slices.Contains(shake, hostAPI+" none 1.3") || !slices.Contains(shake, hostOther+" report_only 1.3") {
		t.Errorf("got handshake events %q, want api.test's and other.test's", shake)
	}

	// Metrics.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	var durations uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					if m.Name == "http.client.request.duration" && m.Unit == "s" {
						durations += dp.Count
					}
				}
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					sums[m.Name+" "+dp.Attributes.Encoded(attribute.DefaultEncoder())] += dp.Value
				}
			}
		}
	}
	apiRetry503 := "securehttp.client.retries securehttp.retry.reason=503,server.address=" + hostAPI
	apiBudget := "securehttp.client.retry_budget.exhausted securehttp.resend.kind=retry,server.address=" + hostAPI
	pinReport := "securehttp.client.pin_failures securehttp.pin.report_only=true,server.address=" + hostOther
	refreshOK := "securehttp.client.token.refreshes securehttp.outcome=success"
	switch {
	case sums[apiRetry503] < 2, sums[apiBudget] < 1, sums[pinReport] != 1, sums[refreshOK] != 2:
		t.Errorf("got counters %v, want retries, budget exhaustion, one report-only pin failure, two refreshes", sums)
	}
	// 3 attempts to /things, at least one each to /fail, and /ok.
	if durations < 3+20+1 {
		t.Errorf("got %d http.client.request.duration points, want at least %d", durations, 3+20+1)
	}

	// Nothing exported holds a secret.
	exported, err := json.Marshal(exporter.GetSpans())
	if err != nil {
		t.Fatal(err)
	}
	all := string(exported) + fmt.Sprint(sums)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			all += fmt.Sprintf("%s %s %s %#v", m.Name, m.Description, m.Unit, m.Data)
		}
	}
	if !strings.Contains(all, wantURL) {
		t.Fatalf("the export does not hold %s: the search below would prove nothing", wantURL)
	}
	for _, secret := range []string{tokenSecret, querySecret, "key=", "PROOFSECRET", proofSecret[:20]} {
		if strings.Contains(all, secret) {
			t.Errorf("the export holds the secret %q", secret)
		}
	}
}

// attr returns the value of key in attrs, as a string, or "".
func attr(attrs []attribute.KeyValue, key string) string {
	for _, kv := range attrs {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// TestClientTraceExportsNoCredential adds otelhttptrace, which records the
// request's header fields as span attributes, beside the hooks, with DPoP
// on: from AttemptStart (as trace propagation code does), with its default
// redaction (which does not know DPoP) and without any, and from the
// caller's request context. No exported span holds the token, the proof,
// or the caller's cookie and proxy credentials.
func TestClientTraceExportsNoCredential(t *testing.T) {
	t.Parallel()
	var proofs sync.Map // every DPoP proof the server received
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proofs.Store(r.Header.Get("DPoP"), true)
		io.WriteString(w, "ok")
	}))
	tests := []struct {
		name      string
		fromHook  bool
		traceOpts []otelhttptrace.ClientTraceOption
	}{
		{"from AttemptStart, default redaction", true, nil},
		{"from AttemptStart, insecure headers", true, []otelhttptrace.ClientTraceOption{otelhttptrace.WithInsecureHeaders()}},
		{"from the request's context, insecure headers", false, []otelhttptrace.ClientTraceOption{otelhttptrace.WithInsecureHeaders()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			exporter := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
			t.Cleanup(func() { tp.Shutdown(context.Background()) })
			opts := append([]otelhttptrace.ClientTraceOption{otelhttptrace.WithTracerProvider(tp)}, tt.traceOpts...)

			hooks := otelsecurehttp.NewHooks(otelsecurehttp.WithTracerProvider(tp), otelsecurehttp.WithPropagators(propagation.TraceContext{}))
			if tt.fromHook {
				start := hooks.AttemptStart
				hooks.AttemptStart = func(ctx context.Context, e securehttp.AttemptEvent) context.Context {
					ctx = start(ctx, e)
					return httptrace.WithClientTrace(ctx, otelhttptrace.NewClientTrace(ctx, opts...))
				}
			}
			cfg := srv.Config()
			cfg.Bearer = &securehttp.Bearer{Hosts: []string{hostAPI}, DPoP: &securehttp.DPoP{},
				Refresh: func(context.Context) (securehttp.Token, error) {
					return securehttp.Token{Value: tokenSecret, Expiry: time.Now().Add(time.Hour)}, nil
				}}
			cfg.Hooks = hooks
			client, err := securehttp.NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(client.CloseIdleConnections)

			ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
			if !tt.fromHook {
				ctx = httptrace.WithClientTrace(ctx, otelhttptrace.NewClientTrace(ctx, opts...))
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, hostURL(srv, hostAPI, "/"), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Cookie", "sid=COOKIESECRET")
			req.Header.Set("Proxy-Authorization", "Basic PROXYSECRET")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			parent.End()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}

			exported, err := json.Marshal(exporter.GetSpans())
			if err != nil {
				t.Fatal(err)
			}
			all := string(exported)
			for _, k := range []string{"authorization", "dpop", "cookie", "proxy-authorization"} {
				if !strings.Contains(all, `"http.request.header.`+k+`"`) {
					t.Fatalf("the export has no http.request.header.%s attribute: the search below would prove nothing", k)
				}
			}
			secrets := []string{tokenSecret, "COOKIESECRET", "PROXYSECRET"}
			proofs.Range(func(k, _ any) bool {
				if proof := k.(string); proof != "" {
					secrets = append(secrets, proof, proof[strings.LastIndexByte(proof, '.'):])
				}
				return true
			})
			if len(secrets) == 3 {
				t.Fatal("the server got no DPoP proof, want one")
			}
			for _, s := range secrets {
				if strings.Contains(all, s) {
					t.Errorf("the export holds the secret %q", s)
				}
			}
		})
	}
}
