package securehttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// hookRecorder keeps every event it is given, formatted with %#v, so that
// tests can search them for secrets.
type hookRecorder struct {
	mu        sync.Mutex
	starts    []AttemptEvent
	dones     []AttemptEvent
	retries   []AttemptEvent
	refreshes []TokenEvent
	tokenReqs []TokenEvent
	shakes    []HandshakeEvent
	pinFails  []PinError
	expiring  []*x509.Certificate
	all       []string
}

type attemptKey struct{}

func (r *hookRecorder) keep(v any) {
	r.all = append(r.all, fmt.Sprintf("%#v", v))
}

func (r *hookRecorder) hooks() *Hooks {
	return &Hooks{
		AttemptStart: func(ctx context.Context, e AttemptEvent) context.Context {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.starts = append(r.starts, e)
			r.keep(e)
			return context.WithValue(ctx, attemptKey{}, e.Attempt)
		},
		InjectHeader: func(ctx context.Context, h http.Header) {
			h.Set("X-Trace", fmt.Sprintf("attempt-%d", ctx.Value(attemptKey{})))
			// Neither may replace what the transport sends.
			h.Set("Authorization", "Bearer injected")
			h.Set("DPoP", "injected")
		},
		AttemptDone: func(ctx context.Context, e AttemptEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if ctx.Value(attemptKey{}) != e.Attempt {
				r.all = append(r.all, "AttemptDone without the context AttemptStart returned")
			}
			r.dones = append(r.dones, e)
			r.keep(e)
		},
		RetryScheduled: func(_ context.Context, e AttemptEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.retries = append(r.retries, e)
			r.keep(e)
		},
		BudgetExhausted: func(_ context.Context, e AttemptEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.keep(e)
		},
		TokenRefresh: func(_ context.Context, e TokenEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.refreshes = append(r.refreshes, e)
			r.keep(e)
		},
		TokenRequest: func(_ context.Context, e TokenEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.tokenReqs = append(r.tokenReqs, e)
			r.keep(e)
		},
		Handshake: func(_ context.Context, e HandshakeEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.shakes = append(r.shakes, e)
			r.keep(e)
		},
		PinFailure: func(e *PinError) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.pinFails = append(r.pinFails, *e)
			r.keep(*e)
		},
		CertificateExpiring: func(c *x509.Certificate) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.expiring = append(r.expiring, c)
			r.keep(c.Subject.String())
		},
	}
}

// noSecrets fails the test if any recorded event holds one of secrets.
func (r *hookRecorder) noSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.all) == 0 {
		t.Fatal("got no events, want some")
	}
	for _, e := range r.all {
		for _, s := range secrets {
			if strings.Contains(e, s) {
				t.Errorf("event %s holds the secret %q", e, s)
			}
		}
		if strings.Contains(e, "without the context") {
			t.Error(e)
		}
	}
}

// TestHooksAttempts follows a request with a token through a 503, a retry,
// a 401 and a replay: four attempts, numbered across the retry and the
// replay, each with its own injected header, and no secret in any event.
func TestHooksAttempts(t *testing.T) {
	t.Parallel()
	const secretQuery = "QSECRET"
	var n atomic.Int64
	var seen sync.Map // attempt number → the X-Trace and Authorization it carried
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		seen.Store(i, r.Header.Get("X-Trace")+" "+r.Header.Get("Authorization")+" "+r.Header.Get("DPoP"))
		switch i {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			io.WriteString(w, "ok")
		}
	}))
	var rec hookRecorder
	var refreshes atomic.Int64
	cfg := testConfig(t)
	cfg.Hooks = rec.hooks()
	cfg.ExpiryWarning = -1
	cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, Refresh: func(context.Context) (Token, error) {
		return Token{Value: fmt.Sprintf("TOKSECRET%d", refreshes.Add(1)), Expiry: time.Now().Add(time.Hour)}, nil
	}}
	tr := newTestTransport(t, cfg)

	req, err := http.NewRequest(http.MethodGet, testutil.HostURL(srv, hostAPI, "/things?key="+secretQuery), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Dpop", "PROOFSECRET.caller")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request != req {
		t.Fatalf("got status %d, resp.Request is the caller's: %v; want 200, true", resp.StatusCode, resp.Request == req)
	}
	if len(req.Header) != 1 {
		t.Errorf("got caller's header %v, want it unchanged", req.Header)
	}

	for i, want := range map[int64]string{
		1: "attempt-1 Bearer TOKSECRET1 PROOFSECRET.caller",
		2: "attempt-2 Bearer TOKSECRET1 PROOFSECRET.caller",
		3: "attempt-3 Bearer TOKSECRET2 PROOFSECRET.caller",
	} {
		if got, _ := seen.Load(i); got != want {
			t.Errorf("attempt %d: server got %q, want %q", i, got, want)
		}
	}

	rec.mu.Lock()
	wantURL := testutil.HostURL(srv, hostAPI, "/things")
	wantPort := srv.Listener.Addr().(interface{ String() string }).String()
	for i, e := range rec.starts {
		if e.Attempt != i+1 || e.URL != wantURL || e.Method != http.MethodGet || e.Host != hostAPI ||
			!strings.HasSuffix(wantPort, fmt.Sprintf(":%d", e.Port)) {
			t.Errorf("attempt event %d: got %+v, want attempt %d of GET %s", i, e, i+1, wantURL)
		}
	}
	var statuses []int
	for _, d := range rec.dones {
		statuses = append(statuses, d.StatusCode)
	}
	if fmt.Sprint(statuses) != "[503 401 200]" || len(rec.starts) != 3 {
		t.Errorf("got %d attempts with statuses %v, want 3 with [503 401 200]", len(rec.starts), statuses)
	}
	if len(rec.retries) != 1 || rec.retries[0].StatusCode != 503 || rec.retries[0].URL != wantURL {
		t.Errorf("got retry events %+v, want one for 503", rec.retries)
	}
	if len(rec.refreshes) != 2 || rec.refreshes[0].Error != "" || rec.refreshes[1].Error != "" {
		t.Errorf("got refresh events %+v, want two successes", rec.refreshes)
	}
	rec.mu.Unlock()
	rec.noSecrets(t, "TOKSECRET", secretQuery, "PROOFSECRET", "key=")
}

// TestHooksHandshakeAndPins checks the handshake events (version, resumed,
// pin outcome), pin failures and expiring certificates.
func TestHooksHandshakeAndPins(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	stranger := testpki.Must(testpki.NewRoot("stranger", testpki.Options{}))
	var rec hookRecorder
	cfg := testConfig(t)
	cfg.Hooks = rec.hooks()
	cfg.ExpiryWarning = 100 * 365 * 24 * time.Hour // every certificate expires "soon"
	cfg.Pins = []PinSet{
		{Host: hostAPI, Pins: []string{p.leaf.SPKIPin()}},
		{Host: hostOther, Pins: []string{stranger.SPKIPin()}},
		{Host: hostSub, Pins: []string{stranger.SPKIPin()}, ReportOnly: true},
	}
	tr := newTestTransport(t, cfg)
	c := &http.Client{Transport: tr}
	for _, host := range []string{hostAPI, hostOther, hostSub} {
		resp, err := c.Get(testutil.HostURL(srv, host, "/"))
		if err == nil {
			resp.Body.Close()
		}
		if (host == hostOther) != errors.Is(err, ErrPinMismatch) {
			t.Errorf("%s: got error %v, want a pin mismatch only for %s", host, err, hostOther)
		}
	}
	// A new connection resumes the TLS session of the first.
	tr.CloseIdleConnections()
	resp, err := c.Get(testutil.HostURL(srv, hostAPI, "/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := len(rec.shakes); n != 4 || !rec.shakes[3].Resumed || rec.shakes[3].Pin != "match" || rec.shakes[0].Resumed {
		t.Errorf("got handshakes %+v, want 4, the last resumed and matching its pin, the first not resumed", rec.shakes)
	}
	rec.shakes = rec.shakes[:3]
	got := map[string]string{}
	for _, e := range rec.shakes {
		got[e.Host] = e.Pin + " " + e.Version + " " + e.Error
	}
	want := map[string]string{
		hostAPI:   "match TLS 1.3 ",
		hostOther: "mismatch  pin_mismatch",
		hostSub:   "report_only TLS 1.3 ",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got handshakes %v, want %v", got, want)
	}
	if len(rec.pinFails) != 2 {
		t.Fatalf("got pin failures %+v, want 2", rec.pinFails)
	}
	for _, e := range rec.pinFails {
		if (e.Host == hostSub) != e.ReportOnly || len(e.Pins) == 0 {
			t.Errorf("got pin failure %+v, want report-only for %s only, with the chain's pins", e, hostSub)
		}
	}
	subjects := map[string]bool{}
	for _, c := range rec.expiring {
		subjects[c.Subject.String()] = true
	}
	if !subjects[p.leaf.Cert.Subject.String()] || !subjects[p.inter.Cert.Subject.String()] {
		t.Errorf("got expiring certificates %v, want the leaf and the intermediate", subjects)
	}
	if len(rec.expiring) != len(subjects) {
		t.Errorf("got %d expiry events for %d certificates, want one each", len(rec.expiring), len(subjects))
	}
}

// TestHooksTokenRequest checks the token endpoint events of
// ClientCredentials, and that neither the client secret nor the token
// reaches an event.
func TestHooksTokenRequest(t *testing.T) {
	t.Parallel()
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"access_token":"ATSECRET","token_type":"Bearer","expires_in":3600}`)
			return
		}
		io.WriteString(w, "ok")
	}))
	var rec hookRecorder
	cfg := testConfig(t)
	cfg.Hooks = rec.hooks()
	cfg.ExpiryWarning = -1
	cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, ClientCredentials: &ClientCredentials{
		ClientID: "client", ClientSecret: "CSSECRET", TokenURL: testutil.HostURL(srv, hostOther, "/token?tenant=QSECRET"),
	}}
	tr := newTestTransport(t, cfg)
	resp, err := (&http.Client{Transport: tr}).Get(testutil.HostURL(srv, hostAPI, "/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rec.mu.Lock()
	if len(rec.tokenReqs) != 1 || rec.tokenReqs[0].StatusCode != 200 || rec.tokenReqs[0].URL != testutil.HostURL(srv, hostOther, "/token") {
		t.Errorf("got token request events %+v, want one 200 from /token", rec.tokenReqs)
	}
	var methods []string
	for _, e := range rec.starts {
		methods = append(methods, e.Method+" "+e.Host)
	}
	if fmt.Sprint(methods) != fmt.Sprintf("[POST %s GET %s]", hostOther, hostAPI) {
		t.Errorf("got attempts %v, want the token request's and the request's", methods)
	}
	rec.mu.Unlock()
	rec.noSecrets(t, "ATSECRET", "CSSECRET", "QSECRET", base64Of("client:CSSECRET"))
}

// TestHooksNilAllocs checks that a request with no hooks allocates what the
// same request through the bare http.Transport allocates, budget included,
// and reports what hooks cost.
func TestHooksNilAllocs(t *testing.T) {
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	allocs := func(rt http.RoundTripper) float64 {
		req, err := http.NewRequest(http.MethodGet, testutil.HostURL(srv, hostAPI, "/?q=1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		// The least of three runs, as a fraction: testing.AllocsPerRun
		// truncates, which turns noise of a fraction of an allocation (the
		// race detector, the in-process server's HTTP/2 goroutines) into a
		// whole one.
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		const runs = 300
		least := 0.0
		for i := range 3 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			runtime.ReadMemStats(&after)
			n := float64(after.Mallocs-before.Mallocs) / runs
			if i == 0 || n < least {
				least = n
			}
		}
		return least
	}
	plain := newTestTransport(t, testConfig(t))
	cfg := testConfig(t)
	var rec hookRecorder
	cfg.Hooks = rec.hooks()
	hooked := newTestTransport(t, cfg)
	cfg.Hooks = &Hooks{}
	empty := newTestTransport(t, cfg)
	base := plain.conns.base.Clone()
	t.Cleanup(base.CloseIdleConnections)

	bare, none, noFuncs, all := allocs(base), allocs(plain), allocs(empty), allocs(hooked)
	t.Logf("allocs per request: bare http.Transport %.2f, hooks nil %.2f, hooks with no funcs %.2f, every hook set %.2f",
		bare, none, noFuncs, all)
	if none > bare+0.5 {
		t.Errorf("with nil hooks, got %.1f allocs per request, want at most the bare transport's %.1f", none, bare)
	}
	if all <= none {
		t.Errorf("with hooks, got %.1f allocs per request, want more than %.1f: are they called?", all, none)
	}
}

func base64Of(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestHooksTarget checks that an event's URL keeps neither userinfo, query
// nor fragment, and that the method and port get their defaults.
func TestHooksTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, url string
		want        AttemptEvent
	}{
		{"", "https://user:PWSECRET@api.test/a/b?key=QSECRET#FRAGSECRET",
			AttemptEvent{Method: "GET", URL: "https://api.test/a/b", Host: "api.test", Port: 443, Attempt: 1}},
		{"PUT", "https://api.test:8443/x%2Fy?", AttemptEvent{Method: "PUT", URL: "https://api.test:8443/x%2Fy", Host: "api.test", Port: 8443, Attempt: 1}},
		{"GET", "https://[::1]:9443/", AttemptEvent{Method: "GET", URL: "https://[::1]:9443/", Host: "::1", Port: 9443, Attempt: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tt.method, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := attemptEvent(req, 1); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestTraceSeesNoCredential checks that an httptrace.ClientTrace, whether a
// hook put it in the attempt's context or the caller in the request's, is
// handed Authorization, DPoP, Cookie and Proxy-Authorization with their
// values redacted, over HTTP/1.1 and HTTP/2, with DPoP on: neither the
// token, nor the proof, nor the caller's own credentials.
func TestTraceSeesNoCredential(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	var proofs sync.Map // every DPoP proof the servers received
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proofs.Store(r.Header.Get("DPoP"), true)
		io.WriteString(w, "ok")
	})
	h2 := testutil.StartServer(t, p.serverCert(), handler)
	h1 := httptest.NewUnstartedServer(handler)
	h1.TLS = &tls.Config{Certificates: []tls.Certificate{p.serverCert()}}
	h1.Config.ErrorLog = testutil.QuietLog()
	h1.StartTLS() // without EnableHTTP2: HTTP/1.1 only
	t.Cleanup(h1.Close)

	for _, server := range []struct {
		srv   *httptest.Server
		proto int
	}{{h1, 1}, {h2, 2}} {
		for _, placement := range []string{"hook", "caller"} {
			t.Run(fmt.Sprintf("HTTP/%d, trace from the %s", server.proto, placement), func(t *testing.T) {
				t.Parallel()
				var mu sync.Mutex
				seen := map[string][]string{} // header name in lower case → values
				var gotConns, handshakes atomic.Int64
				trace := &httptrace.ClientTrace{
					WroteHeaderField: func(key string, values []string) {
						mu.Lock()
						defer mu.Unlock()
						k := strings.ToLower(key)
						seen[k] = append(seen[k], values...)
					},
					GotConn: func(httptrace.GotConnInfo) { gotConns.Add(1) },
				}
				cfg := testConfig(t)
				cfg.ExpiryWarning = -1
				cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, DPoP: &DPoP{}, Refresh: func(context.Context) (Token, error) {
					return Token{Value: "TOKSECRET", Expiry: time.Now().Add(time.Hour)}, nil
				}}
				if placement == "hook" {
					cfg.Hooks = &Hooks{
						AttemptStart: func(ctx context.Context, _ AttemptEvent) context.Context {
							return httptrace.WithClientTrace(ctx, trace)
						},
						// Its own trace is composed with the hook's.
						Handshake: func(context.Context, HandshakeEvent) { handshakes.Add(1) },
					}
				}
				tr := newTestTransport(t, cfg)
				req, err := http.NewRequest(http.MethodGet, testutil.HostURL(server.srv, hostAPI, "/"), nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Cookie", "sid=COOKIESECRET")
				req.Header.Set("Proxy-Authorization", "Basic PROXYSECRET")
				if placement == "caller" {
					req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
				}
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != server.proto {
					t.Fatalf("got %s, want HTTP/%d", resp.Proto, server.proto)
				}
				// The trace's other hooks, and the Handshake hook's own
				// trace, are still called.
				if n := gotConns.Load(); n != 1 {
					t.Errorf("got %d GotConn calls, want 1", n)
				}
				if n, want := handshakes.Load(), map[string]int64{"hook": 1, "caller": 0}[placement]; n != want {
					t.Errorf("got %d Handshake events, want %d", n, want)
				}

				secrets := []string{"TOKSECRET", "COOKIESECRET", "PROXYSECRET"}
				proofs.Range(func(k, _ any) bool {
					if proof := k.(string); proof != "" {
						secrets = append(secrets, proof, proof[strings.LastIndexByte(proof, '.'):])
					}
					return true
				})
				mu.Lock()
				defer mu.Unlock()
				for _, k := range []string{"authorization", "dpop", "cookie", "proxy-authorization"} {
					if len(seen[k]) == 0 {
						t.Errorf("the trace saw no %s header, want it with its value redacted", k)
					}
				}
				for k, values := range seen {
					for _, v := range values {
						for _, s := range secrets {
							if strings.Contains(v, s) {
								t.Errorf("the trace saw %s: %q, holding the secret %q", k, v, s)
							}
						}
					}
				}
			})
		}
	}
}

// TestTraceRedactionKeepsCancellation checks that a request sent under a
// trace, whose context the Transport replaces to redact the trace's view,
// still ends when the caller cancels it.
func TestTraceRedactionKeepsCancellation(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	}))
	tr := newTestTransport(t, testConfig(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaderField: func(string, []string) {}})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, testutil.HostURL(srv, hostAPI, "/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-arrived
		cancel()
	}()
	resp, err := tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got error %v, want context.Canceled", err)
	}
}

// TestHooksPanicRecovered proves that a hook that panics neither ends the
// process (TokenRefresh and Handshake run on goroutines no caller can
// recover on) nor fails the request, and that the panic is logged by type
// only, never by its value.
func TestHooksPanicRecovered(t *testing.T) {
	t.Parallel()
	const secret = "panic-value-secret"
	boom := func() { panic(secret) }
	tests := []struct {
		name  string
		hooks *Hooks
	}{
		{"TokenRefresh", &Hooks{TokenRefresh: func(context.Context, TokenEvent) { boom() }}},
		{"Handshake", &Hooks{Handshake: func(context.Context, HandshakeEvent) { boom() }}},
		{"AttemptStart", &Hooks{AttemptStart: func(context.Context, AttemptEvent) context.Context { boom(); return nil }}},
		{"InjectHeader", &Hooks{InjectHeader: func(context.Context, http.Header) { boom() }}},
		{"AttemptDone", &Hooks{AttemptDone: func(context.Context, AttemptEvent) { boom() }}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := tokNewClock()
			mine := tokFresh(t, clk.Now(), time.Hour)
			rec := &tokRecorder{}
			srv := tokStartServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec.record(r)
				io.WriteString(w, "ok")
			}))
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{Refresh: tokStaticT(mine), Hosts: []string{hostAPI}}
			cfg.Hooks = tt.hooks
			var logs *testutil.LogBuffer
			cfg.Logger, logs = testutil.NewLogger()
			tr := newTestTransport(t, cfg)
			tr.now = clk.Now
			req, err := http.NewRequest(http.MethodGet, testutil.HostURL(srv, hostAPI, "/"), nil)
			if err != nil {
				t.Fatal(err)
			}
			code, body, err := tokDo(&http.Client{Transport: tr}, req)
			if err != nil || code != 200 || body != "ok" {
				t.Fatalf("request with a panicking %s hook: got %d %q %v, want 200 \"ok\"", tt.name, code, body, err)
			}
			if n := len(rec.all()); n != 1 {
				t.Errorf("server saw %d requests, want 1", n)
			}
			out := logs.String()
			if !strings.Contains(out, "hook="+tt.name) {
				t.Errorf("log does not name the panicking hook %s:\n%s", tt.name, out)
			}
			if strings.Contains(out, secret) {
				t.Errorf("log quotes the panic's value:\n%s", out)
			}
		})
	}
}
