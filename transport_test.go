package securehttp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testutil"
)

// refererMux redirects /go?to=URL to URL and answers /land with the Referer
// values it received, quoted, so that none and an empty one differ.
func refererMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/go", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	mux.HandleFunc("/land", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%q", r.Header.Values("Referer"))
	})
	return mux
}

// TestRedirectReferer checks the Referer a redirect hop carries: none to
// another origin (host or port), the previous URL without its query and
// fragment to the same origin, and the caller's own Referer, set on the
// first request, kept as it is. A CheckRedirect of the caller's, even one
// that sets the Referer itself, does not bring the query back, and a hop
// whose CheckRedirect removed the Referer gets none.
func TestRedirectReferer(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), refererMux())
	other := testutil.StartServer(t, p.serverCert(), refererMux()) // another port
	tr := newTestTransport(t, testConfig(t))

	const secrets = "api_key=QSECRET&X-Amz-Signature=SIGSECRET"
	origin := testutil.HostURL(srv, hostAPI, "")
	// via is a URL on origin, with secrets in its query and fragment, that
	// redirects to to.
	via := func(to string) string {
		return origin + "/go?" + secrets + "&to=" + url.QueryEscape(to) + "#FRAGSECRET"
	}
	none := fmt.Sprintf("%q", []string(nil))
	one := func(v string) string { return fmt.Sprintf("%q", []string{v}) }
	const callers = "https://app.example/page"

	clients := []struct {
		name          string
		checkRedirect func(*http.Request, []*http.Request) error
		removes       bool // every hop then goes without a Referer
	}{
		{"no CheckRedirect", nil, false},
		{"counting CheckRedirect", func(_ *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return fmt.Errorf("stopped after %d redirects", len(via))
			}
			return nil
		}, false},
		{"CheckRedirect setting the previous URL", func(req *http.Request, via []*http.Request) error {
			req.Header.Set("Referer", via[len(via)-1].URL.String())
			return nil
		}, false},
		{"CheckRedirect removing the Referer", func(req *http.Request, _ []*http.Request) error {
			req.Header.Del("Referer")
			return nil
		}, true},
	}
	tests := []struct {
		name    string
		url     string
		referer string // set on the first request when not empty
		want    string
	}{
		{"another host", via(testutil.HostURL(srv, hostOther, "/land")), "", none},
		{"another port", via(testutil.HostURL(other, hostAPI, "/land")), "", none},
		{"same origin", via("/land"), "", one(origin + "/go")},
		{"same origin, then another host", via(via(testutil.HostURL(srv, hostOther, "/land"))), "", none},
		{"caller's Referer, another host", via(testutil.HostURL(srv, hostOther, "/land")), callers, one(callers)},
		{"caller's Referer, same origin", via("/land"), callers, one(callers)},
	}
	for _, c := range clients {
		for _, tt := range tests {
			t.Run(c.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				client := &http.Client{Transport: tr, CheckRedirect: c.checkRedirect}
				req, err := http.NewRequest(http.MethodGet, tt.url, nil)
				if err != nil {
					t.Fatal(err)
				}
				if tt.referer != "" {
					req.Header.Set("Referer", tt.referer)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				want := tt.want
				if c.removes {
					want = none
				}
				if got := string(body); got != want {
					t.Errorf("got Referer %s, want %s", got, want)
				}
			})
		}
	}

	t.Run("the hop's request is left as it was", func(t *testing.T) {
		t.Parallel()
		prev, err := http.NewRequest(http.MethodGet, origin+"/go?"+secrets, nil)
		if err != nil {
			t.Fatal(err)
		}
		hop, err := http.NewRequest(http.MethodGet, testutil.HostURL(srv, hostOther, "/land"), nil)
		if err != nil {
			t.Fatal(err)
		}
		hop.Header.Set("Referer", prev.URL.String())
		hop.Response = &http.Response{StatusCode: http.StatusFound, Request: prev}
		resp, err := tr.RoundTrip(hop)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(body); got != none {
			t.Errorf("got Referer %s, want %s", got, none)
		}
		if got := hop.Header.Get("Referer"); got != prev.URL.String() {
			t.Errorf("after RoundTrip, the request's Referer is %q, want %q as it was", got, prev.URL.String())
		}
		if resp.Request != hop {
			t.Errorf("got resp.Request %p, want the request given to RoundTrip %p", resp.Request, hop)
		}
	})
}

// TestRefererKeptOutsideRedirects checks that a request that is not a
// redirect hop keeps the Referer its caller set, query included: it is the
// caller's own choice.
func TestRefererKeptOutsideRedirects(t *testing.T) {
	t.Parallel()
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), refererMux())
	tr := newTestTransport(t, testConfig(t))
	req, err := http.NewRequest(http.MethodGet, testutil.HostURL(srv, hostAPI, "/land"), nil)
	if err != nil {
		t.Fatal(err)
	}
	const ref = "https://app.example/page?tab=2"
	req.Header.Set("Referer", ref)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(body), fmt.Sprintf("%q", []string{ref}); got != want {
		t.Errorf("got Referer %s, want %s", got, want)
	}
}

// TestSilentSkipsLogged: a connection to a host no PinSet covers leaves a
// warning, once per host, and a request to a host outside Bearer.Hosts a
// Debug event, once per request.
func TestSilentSkipsLogged(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(okHandler))
	logger, logs := testutil.NewLogger()
	cfg := testConfig(t)
	cfg.Logger = logger
	cfg.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin(), p.root.SPKIPin()}}}
	cfg.Bearer = &Bearer{
		Store: NewMemoryStore(Token{Value: "opaque-token", Expiry: time.Now().Add(time.Hour)}),
		Hosts: []string{hostAPI},
	}
	tr := newTestTransport(t, cfg)
	const requests = 3
	for _, u := range []string{testutil.HostURL(srv, hostAPI, "/"), srv.URL + "/", testutil.HostURL(srv, hostOther, "/")} {
		for range requests {
			if _, err := get(t, tr, u); err != nil {
				t.Fatalf("GET %s: %v", u, err)
			}
		}
	}
	count := func(msg, host string) int {
		n := 0
		for line := range strings.SplitSeq(logs.String(), "\n") {
			if (strings.Contains(line, "level=DEBUG") || strings.Contains(line, "level=WARN")) &&
				strings.Contains(line, msg) && strings.Contains(line, "host="+host) {
				n++
			}
		}
		return n
	}
	for _, tt := range []struct {
		msg, host string
		want      int
	}{
		{"no PinSet covers this host", hostAPI, 0},
		{"no PinSet covers this host", "127.0.0.1", 1}, // keep-alive: one connection
		{"no PinSet covers this host", hostOther, 1},
		{"not in Bearer.Hosts", hostAPI, 0},
		{"not in Bearer.Hosts", "127.0.0.1", requests},
		{"not in Bearer.Hosts", hostOther, requests},
	} {
		if got := count(tt.msg, tt.host); got != tt.want {
			t.Errorf("got %d %q events for %s, want %d; log:\n%s", got, tt.msg, tt.host, tt.want, logs)
		}
	}
	if strings.Contains(logs.String(), "opaque-token") {
		t.Errorf("the log holds the token:\n%s", logs)
	}
}

// TestClientTimeoutWording: an http.Client.Timeout expiry reads as net/http's
// "Client.Timeout exceeded", with or without retries in flight, and is a
// deadline for errors.Is.
func TestClientTimeoutWording(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		steps []rtStep
	}{
		{"the first attempt hangs", []rtStep{{fault: rtHang}}},
		{"a retry hangs", []rtStep{{status: http.StatusServiceUnavailable}, {fault: rtHang}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := rtFaultServer(t, false, tt.steps...)
			cfg := testConfig(t)
			c, _ := rtNewClient(t, cfg)
			c.Timeout = 300 * time.Millisecond
			_, _, err := rtDo(t, c, rtRequest(t, context.Background(), http.MethodGet, srv.url("/"), nil))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want a deadline error", err)
			}
			if !strings.Contains(err.Error(), "Client.Timeout exceeded") {
				t.Errorf("error %q lost net/http's \"Client.Timeout exceeded\"", err)
			}
		})
	}
}

// plainListener is a plain TCP listener that counts the connections it
// accepts and answers each with a redirect or a 200.
func plainListener(t *testing.T) (*testutil.CountingListener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &testutil.CountingListener{Listener: ln}
	srv := &http.Server{Handler: http.HandlerFunc(okHandler), ErrorLog: testutil.QuietLog()}
	go srv.Serve(cl)
	t.Cleanup(func() { srv.Close() })
	return cl, "http://" + ln.Addr().String()
}

func TestPlainHTTPRefused(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	ln, plainURL := plainListener(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plainURL+"/downgraded", http.StatusFound)
	}))
	client, err := NewClient(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)

	for _, tt := range []struct{ name, url string }{
		{"plain URL", plainURL + "/"},
		{"upper-case scheme", strings.Replace(plainURL, "http", "HTTP", 1) + "/"},
		{"downgrade redirect", testutil.HostURL(srv, hostAPI, "/start")},
		{"ws scheme", strings.Replace(plainURL, "http", "ws", 1)},
	} {
		body := &closeTracker{Reader: strings.NewReader("secret body")}
		req, err := http.NewRequest(http.MethodPut, tt.url, body)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(tt.name, "redirect") {
			req, _ = http.NewRequest(http.MethodGet, tt.url, nil)
		}
		resp, err := client.Do(req)
		if resp != nil {
			resp.Body.Close()
			t.Fatalf("%s: got a response with status %d, want none", tt.name, resp.StatusCode)
		}
		if !errors.Is(err, ErrInsecureScheme) {
			t.Fatalf("%s: got %v, want ErrInsecureScheme", tt.name, err)
		}
		if req.Body != nil && req.Body != http.NoBody && !body.closed.Load() {
			t.Fatalf("%s: request body was not closed", tt.name)
		}
	}
	if n := ln.N.Load(); n != 0 {
		t.Fatalf("the plain listener accepted %d connections, want 0", n)
	}
}

type closeTracker struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeTracker) Close() error { c.closed.Store(true); return nil }

// TestRoundTripperContract checks that the caller's request and Config are
// left as they were and that bodies are closed on error paths.
func TestRoundTripperContract(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	var gotAuth atomic.Value
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization"))
		io.Copy(io.Discard, r.Body)
	}))
	cfg := testConfig(t)
	cfg.Pins = []PinSet{{Host: "**.test", Pins: []string{p.root.SPKIPin()}}}
	cfg.Bearer = &Bearer{Store: NewMemoryStore(Token{Value: "opaque-token"}), Hosts: []string{hostAPI}}
	before := fmt.Sprintf("%+v %v", cfg.Pins, cfg.Bearer.Hosts)
	tr := newTestTransport(t, cfg)

	req, _ := http.NewRequest(http.MethodPost, testutil.HostURL(srv, hostAPI, "/"), strings.NewReader("body"))
	req.Header.Set("X-Test", "1")
	headerBefore := req.Header.Clone()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := gotAuth.Load(); got != "Bearer opaque-token" {
		t.Fatalf("server got Authorization %q, want the bearer token", got)
	}
	if !reflect.DeepEqual(req.Header, headerBefore) {
		t.Fatalf("request header changed: got %v, want %v", req.Header, headerBefore)
	}
	if after := fmt.Sprintf("%+v %v", cfg.Pins, cfg.Bearer.Hosts); after != before {
		t.Fatalf("config changed: got %s, want %s", after, before)
	}

	// A failing dial closes the body too.
	cfgDown := testConfig(t)
	cfgDown.Retry.MaxRetries = -1
	cfgDown.DialContext = func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no network in this test")
	}
	body := &closeTracker{Reader: strings.NewReader("x")}
	req, _ = http.NewRequest(http.MethodPost, testutil.HostURL(srv, hostAPI, "/"), body)
	resp, err = newTestTransport(t, cfgDown).RoundTrip(req)
	if resp != nil || err == nil {
		t.Fatalf("got (%v, %v), want (nil, error)", resp, err)
	}
	if !body.closed.Load() {
		t.Fatalf("request body was not closed after a dial error")
	}
}

// A host spelt with non-ASCII characters that IDNA maps to a served name
// ("ａｐｉ.test", full-width) reaches that name once. With net/http's
// bundled HTTP/2 (go1.26), the pool files the new connection under the
// ASCII name and looks for it under the Unicode one, so the request dials,
// handshakes and drops connections in a tight loop until its context ends,
// and forever without a deadline. A hostile server triggers it with a
// redirect to the Unicode spelling of any HTTP/2 host.
func TestNonASCIIHostNoReconnectLoop(t *testing.T) {
	t.Parallel()
	var srvURL string
	srv, conns, requests := startCountingServer(t, "", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, strings.Replace(srvURL, "127.0.0.1", "ａｐｉ.test", 1)+"/", http.StatusFound)
			return
		}
		io.WriteString(w, "ok")
	}))
	srvURL = srv.URL
	cfg := testConfig(t)
	cfg.Retry.MaxRetries = -1
	client, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	for _, tt := range []struct{ name, url string }{
		{"request", testutil.HostURL(srv, "ａｐｉ.test", "/")},
		{"redirect hop", testutil.HostURL(srv, hostAPI, "/redirect")},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tt.url, nil)
		beforeConns, beforeReqs := conns.N.Load(), requests.Load()
		resp, err := client.Do(req)
		var body []byte
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		cancel()
		if err != nil || string(body) != "ok" {
			t.Errorf("%s: got (%q, %v), want ok", tt.name, body, err)
		}
		if n := conns.N.Load() - beforeConns; n > 2 {
			t.Errorf("%s: the server accepted %d connections for %d requests, want at most 2", tt.name, n, requests.Load()-beforeReqs)
		}
	}
}

// A request whose Host header names another host than its URL, as
// httputil.ReverseProxy forwards an inbound request's Host by default,
// carries no token: a shared front end (a CDN, an ingress) routes by the
// Host header, so the token would reach whichever tenant it names (domain
// fronting).
func TestTokenNotSentForOtherHostHeader(t *testing.T) {
	t.Parallel()
	var seen sync.Map // Host header → Authorization
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(strings.Split(r.Host, ":")[0], r.Header.Get("Authorization"))
	}))
	cfg := testConfig(t)
	cfg.Bearer = &Bearer{Store: NewMemoryStore(Token{Value: "host-header-token"}), Hosts: []string{hostAPI}}
	tr := newTestTransport(t, cfg)
	for _, host := range []string{hostAPI, hostOther} {
		req, _ := http.NewRequest(http.MethodGet, testutil.HostURL(srv, hostAPI, "/"), nil)
		req.Host = host
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("Host %s: %v", host, err)
		}
		resp.Body.Close()
	}
	if got, _ := seen.Load(hostAPI); got != "Bearer host-header-token" {
		t.Errorf("Host %s: got Authorization %q, want the token", hostAPI, got)
	}
	if got, _ := seen.Load(hostOther); got != "" {
		t.Errorf("Host %s on a URL for %s: got Authorization %q, want none", hostOther, hostAPI, got)
	}
}

// BenchmarkKeepAliveGET compares a keep-alive GET through a bare, tuned
// http.Transport with the same GET through securehttp with pins, a bearer
// token and retries all on. The difference in allocs/op is the per-request
// cost of the hardening; the pin check belongs to the handshake.
func BenchmarkKeepAliveGET(b *testing.B) {
	p := sharedPKI(b)
	srv := testutil.StartServer(b, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	url := testutil.HostURL(srv, hostAPI, "/")
	bare := &http.Transport{
		DialContext:         testutil.LoopbackDial,
		TLSClientConfig:     &tls.Config{RootCAs: p.root.Pool()},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
	}
	b.Cleanup(bare.CloseIdleConnections)
	cfg := testConfig(b)
	cfg.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin()}}}
	cfg.Bearer = &Bearer{Store: NewMemoryStore(Token{Value: "opaque-benchmark-token"}), Hosts: []string{hostAPI}}
	hardened := newTestTransport(b, cfg)
	for _, tt := range []struct {
		name string
		rt   http.RoundTripper
	}{{"net-http", bare}, {"securehttp", hardened}} {
		b.Run(tt.name, func(b *testing.B) {
			client := &http.Client{Transport: tt.rt}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// TestUnauthorizedOutsideBearerHostsWarnedOnce: with a typo in
// Bearer.Hosts no token is ever sent, and the API answers 401; that is a
// warning, once per host, naming the host and the entry it resembles.
func TestUnauthorizedOutsideBearerHostsWarnedOnce(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	logger, logs := testutil.NewLogger()
	cfg := testConfig(t)
	cfg.Logger = logger
	cfg.Bearer = &Bearer{Store: NewMemoryStore(Token{Value: "opaque-token"}), Hosts: []string{"api.tset"}}
	tr := newTestTransport(t, cfg)
	c := &http.Client{Transport: tr}
	for range 3 {
		resp, err := c.Get(testutil.HostURL(srv, hostAPI, "/"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("got %d, want the 401 of a request without a token", resp.StatusCode)
		}
	}
	var warnings []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "outside Bearer.Hosts") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 1 {
		t.Fatalf("got %d warnings, want 1 for three 401s; log:\n%s", len(warnings), logs)
	}
	addr := strings.TrimPrefix(testutil.HostURL(srv, hostAPI, ""), "https://")
	if !strings.Contains(warnings[0], "host="+addr) || !strings.Contains(warnings[0], "did_you_mean=api.tset") {
		t.Errorf("got %q, want the host and the Bearer.Hosts entry it resembles", warnings[0])
	}
	if strings.Contains(logs.String(), "opaque-token") {
		t.Errorf("the log holds the token:\n%s", logs)
	}
}
