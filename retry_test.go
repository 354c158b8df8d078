package securehttp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/net/http2"

	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// rtFault is what the fault server does to the connection of one request.
type rtFault int

const (
	rtNoFault            rtFault = iota
	rtResetBeforeHeaders         // reset the connection before any response byte
	rtResetAfterHeaders          // send the headers and part of the body, then reset
	rtHang                       // never answer; drop the connection when the client gives up (5 s at most)
	rtAbortStream                // over HTTP/2, reset the stream (RST_STREAM INTERNAL_ERROR) before any response byte
)

// rtStep is the fault server's answer to one request.
type rtStep struct {
	status int // 0 means 200
	header http.Header
	body   string // "" means "attempt N"
	fault  rtFault
	do     func() // if set, runs before the answer
}

// rtSeen is what the fault server received in one request.
type rtSeen struct {
	method, path, auth string
	body               []byte
}

// rtServer is a TLS server on 127.0.0.1, serving the shared leaf, that
// answers the n-th request with steps[n] (the last step repeats) and counts
// requests, handshakes and connections.
type rtServer struct {
	*httptest.Server
	steps []rtStep

	requests   atomic.Int64
	handshakes atomic.Int64
	conns      atomic.Int64
	// release is closed by a test once it has the response headers of an
	// rtResetAfterHeaders step, so that the reset comes after them.
	release chan struct{}

	mu   sync.Mutex
	seen []rtSeen
}

// rtFaultServer starts an rtServer speaking HTTP/1.1 only (so that faults
// can hijack the connection), or HTTP/2 when h2 is set.
func rtFaultServer(t testing.TB, h2 bool, steps ...rtStep) *rtServer {
	t.Helper()
	if len(steps) == 0 {
		steps = []rtStep{{}}
	}
	s := &rtServer{steps: steps, release: make(chan struct{})}
	srv := httptest.NewUnstartedServer(s)
	srv.EnableHTTP2 = h2
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{sharedPKI(t).serverCert()},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			s.handshakes.Add(1)
			return nil, nil
		},
	}
	srv.Config.ErrorLog = testutil.QuietLog()
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.Server = srv
	return s
}

func (s *rtServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.seen = append(s.seen, rtSeen{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"), body: body})
	s.mu.Unlock()

	step := s.steps[min(int(n), len(s.steps))-1]
	for k, v := range step.header {
		w.Header()[k] = v
	}
	status := step.status
	if status == 0 {
		status = http.StatusOK
	}
	if step.do != nil {
		step.do()
	}
	switch step.fault {
	case rtResetBeforeHeaders:
		rtReset(w)
		return
	case rtResetAfterHeaders:
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(status)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		select {
		case <-s.release:
		case <-time.After(5 * time.Second):
		}
		rtReset(w)
		return
	case rtAbortStream:
		panic(http.ErrAbortHandler)
	case rtHang:
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		// Never answer: returning would send an implicit 200, which can
		// race the client's cancellation and be returned to it.
		panic(http.ErrAbortHandler)
	}
	w.WriteHeader(status)
	if step.body != "" {
		io.WriteString(w, step.body)
	} else {
		fmt.Fprintf(w, "attempt %d", n)
	}
}

// received returns a copy of what the server has received so far.
func (s *rtServer) received() []rtSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rtSeen(nil), s.seen...)
}

// url returns the server's URL for path under the host name api.test.
func (s *rtServer) url(path string) string { return testutil.HostURL(s.Server, hostAPI, path) }

// rtReset hijacks the connection and resets it: SO_LINGER 0 makes Close send
// a TCP RST, without a TLS close_notify.
func rtReset(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	raw.Close()
}

// rtNewClient returns NewClient(cfg) and its Transport, whose idle
// connections are closed when the test ends.
func rtNewClient(t testing.TB, cfg Config) (*http.Client, *transport) {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	tr := c.Transport.(*transport)
	t.Cleanup(tr.CloseIdleConnections)
	return c, tr
}

// rtDo sends req and reads the whole response body.
func rtDo(t testing.TB, c *http.Client, req *http.Request) (*http.Response, string, error) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return resp, string(b), nil
}

func rtRequest(t testing.TB, ctx context.Context, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// rtLogRecord is one captured log record, with its attributes resolved.
type rtLogRecord struct {
	msg   string
	attrs map[string]slog.Value
}

// rtLogCapture is a slog.Handler that keeps every record and renders it as
// text too, for searches through everything that was logged. The code under
// test logs through its logger directly, so WithAttrs and WithGroup are not
// needed and return the handler itself.
type rtLogCapture struct {
	on   func(msg string) // called for every record, if set
	text *testutil.LogBuffer

	mu      sync.Mutex
	records []rtLogRecord
}

func rtNewLogCapture() (*slog.Logger, *rtLogCapture) {
	h := &rtLogCapture{text: &testutil.LogBuffer{}}
	return slog.New(h), h
}

func (h *rtLogCapture) Enabled(context.Context, slog.Level) bool { return true }

func (h *rtLogCapture) Handle(ctx context.Context, r slog.Record) error {
	rec := rtLogRecord{msg: r.Message, attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, rec)
	h.mu.Unlock()
	if err := slog.NewTextHandler(h.text, &slog.HandlerOptions{Level: slog.LevelDebug}).Handle(ctx, r); err != nil {
		return err
	}
	if h.on != nil {
		h.on(r.Message)
	}
	return nil
}

func (h *rtLogCapture) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *rtLogCapture) WithGroup(string) slog.Handler      { return h }

const rtRetryingMsg = "securehttp: retrying request"

// retries returns the "retrying" records.
func (h *rtLogCapture) retries() []rtLogRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []rtLogRecord
	for _, r := range h.records {
		if r.msg == rtRetryingMsg {
			out = append(out, r)
		}
	}
	return out
}

func TestRetryConnectionReset(t *testing.T) {
	t.Parallel()
	t.Run("before headers, GET is retried", func(t *testing.T) {
		t.Parallel()
		srv := rtFaultServer(t, false, rtStep{fault: rtResetBeforeHeaders}, rtStep{body: "ok"})
		c, _ := rtNewClient(t, testConfig(t))
		resp, body, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, srv.url("/"), nil))
		if err != nil {
			t.Fatalf("got error %v, want the second attempt's response", err)
		}
		if resp.StatusCode != http.StatusOK || body != "ok" {
			t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, "ok")
		}
		if got := srv.requests.Load(); got != 2 {
			t.Errorf("got %d requests on the server, want 2", got)
		}
	})
	t.Run("before headers, POST is sent once", func(t *testing.T) {
		t.Parallel()
		srv := rtFaultServer(t, false, rtStep{fault: rtResetBeforeHeaders}, rtStep{body: "ok"})
		c, _ := rtNewClient(t, testConfig(t))
		_, _, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodPost, srv.url("/"), strings.NewReader("pay")))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("got error %v, want ECONNRESET", err)
		}
		if got := srv.requests.Load(); got != 1 {
			t.Errorf("got %d POSTs executed, want 1", got)
		}
	})
	t.Run("after headers, the body read fails and nothing is retried", func(t *testing.T) {
		t.Parallel()
		srv := rtFaultServer(t, false, rtStep{fault: rtResetAfterHeaders}, rtStep{body: "ok"})
		c, _ := rtNewClient(t, testConfig(t))
		resp, err := c.Do(rtRequest(t, t.Context(), http.MethodGet, srv.url("/"), nil))
		close(srv.release)
		if err != nil {
			t.Fatalf("got error %v, want the response", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("got status %d, want 200", resp.StatusCode)
		}
		b, err := io.ReadAll(resp.Body)
		if err == nil {
			t.Errorf("got a complete body of %d bytes, want a read error", len(b))
		}
		if len(b) >= 1000 {
			t.Errorf("got %d body bytes, want fewer than the 1000 announced", len(b))
		}
		if got := srv.requests.Load(); got != 1 {
			t.Errorf("got %d requests on the server, want 1", got)
		}
	})
}

// rtGoAwayServer is an HTTP/2 server on 127.0.0.1, serving the shared
// leaf, whose first n connections each answer their first request with a
// GOAWAY frame carrying INTERNAL_ERROR and then close, without a response:
// what a server or a load balancer that shuts down on an error does. Later
// connections are served by an http.Server with h. A GOAWAY whose last
// stream is the request's tells the client that the server may have begun
// it.
type rtGoAwayServer struct {
	url      string
	requests atomic.Int64 // requests seen, answered or not
}

func rtStartGoAwayServer(t testing.TB, n int, h http.Handler) *rtGoAwayServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{sharedPKI(t).serverCert()},
		NextProtos:   []string{http2.NextProtoTLS},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &rtGoAwayServer{url: "https://" + net.JoinHostPort(hostAPI, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))}
	srv := &http.Server{ErrorLog: testutil.QuietLog(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h.ServeHTTP(w, r)
	})}
	gl := &rtGoAwayListener{Listener: ln, s: s, left: n}
	go srv.Serve(gl)
	t.Cleanup(func() {
		srv.Close()
		gl.wg.Wait()
	})
	return s
}

// rtGoAwayListener answers its first connections with a GOAWAY itself and
// hands the others to the http.Server.
type rtGoAwayListener struct {
	net.Listener
	s    *rtGoAwayServer
	left int // connections still to answer with a GOAWAY
	wg   sync.WaitGroup
}

func (l *rtGoAwayListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.left == 0 {
			return c, err
		}
		l.left--
		l.wg.Go(func() { l.s.goAway(c.(*tls.Conn)) })
	}
}

// goAway reads the client's preface and settings and, at its first
// request, sends a GOAWAY that names that request's stream, then closes.
func (s *rtGoAwayServer) goAway(c *tls.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			s.requests.Add(1)
			fr.WriteGoAway(f.StreamID, http2.ErrCodeInternal, nil)
			return
		}
	}
}

// HTTP/2 resets are transient as a reset connection is over HTTP/1.1: a
// stream reset (RST_STREAM INTERNAL_ERROR) or a GOAWAY that closes the
// connection before the answer is retried for an idempotent request and
// for a token request, paid from the retry budget, and never for a POST
// without an Idempotency-Key.
func TestRetryHTTP2Resets(t *testing.T) {
	t.Parallel()
	okHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	for _, tt := range []struct {
		name, method string
		key          bool // with an Idempotency-Key
		goAway       bool // a GOAWAY rather than a stream reset
		want         int  // requests the server sees
	}{
		{"stream reset, GET is retried", http.MethodGet, false, false, 2},
		{"stream reset, POST is sent once", http.MethodPost, false, false, 1},
		{"stream reset, POST with an Idempotency-Key is retried", http.MethodPost, true, false, 2},
		{"GOAWAY, GET is retried", http.MethodGet, false, true, 2},
		{"GOAWAY, POST is sent once", http.MethodPost, false, true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var url string
			var requests func() int64
			if tt.goAway {
				srv := rtStartGoAwayServer(t, 1, okHandler)
				url, requests = srv.url+"/", srv.requests.Load
			} else {
				srv := rtFaultServer(t, true, rtStep{fault: rtAbortStream}, rtStep{body: "ok"})
				url, requests = srv.url("/"), srv.requests.Load
			}
			c, _ := rtNewClient(t, testConfig(t))
			req := rtRequest(t, t.Context(), tt.method, url, nil)
			if tt.method == http.MethodPost {
				req = rtRequest(t, t.Context(), tt.method, url, strings.NewReader("pay"))
			}
			if tt.key {
				req.Header.Set("Idempotency-Key", "k1")
			}
			resp, body, err := rtDo(t, c, req)
			if tt.want == 1 {
				if err == nil {
					t.Fatalf("got %d %q, want the reset's error", resp.StatusCode, body)
				}
				var se http2.StreamError
				if !tt.goAway && !errors.As(err, &se) {
					t.Errorf("got error %v, want an HTTP/2 stream error", err)
				}
			} else if err != nil || resp.StatusCode != http.StatusOK || body != "ok" {
				t.Fatalf("got error %v, want the second attempt's 200 %q", err, "ok")
			}
			if got := requests(); got != int64(tt.want) {
				t.Errorf("got %d requests on the server, want %d", got, tt.want)
			}
		})
	}
	t.Run("spent budget, GET is sent once", func(t *testing.T) {
		t.Parallel()
		srv := rtFaultServer(t, true, rtStep{fault: rtAbortStream}, rtStep{body: "ok"})
		var exhausted atomic.Int64
		cfg := testConfig(t)
		cfg.Hooks = &Hooks{BudgetExhausted: func(context.Context, AttemptEvent) { exhausted.Add(1) }}
		c, tr := rtNewClient(t, cfg)
		// Spend this second's floor of resends to the host, with the clock
		// stopped so that the second does not end in between.
		stopped := time.Now()
		tr.now = func() time.Time { return stopped }
		for range budgetFloor {
			tr.budget.allowResend(hostAPI)
		}
		_, _, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, srv.url("/"), nil))
		var se http2.StreamError
		if !errors.As(err, &se) {
			t.Errorf("got error %v, want the HTTP/2 stream error", err)
		}
		if got := srv.requests.Load(); got != 1 {
			t.Errorf("got %d requests on the server, want 1", got)
		}
		if got := exhausted.Load(); got != 1 {
			t.Errorf("got %d BudgetExhausted events, want 1", got)
		}
	})
	for _, goAway := range []bool{false, true} {
		name := "stream reset, token request is retried"
		if goAway {
			name = "GOAWAY, token request is retried"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var tokenReqs, apiReqs atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/token" {
					if tokenReqs.Add(1) == 1 && !goAway {
						panic(http.ErrAbortHandler)
					}
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, `{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}`)
					return
				}
				apiReqs.Add(1)
				if r.Header.Get("Authorization") != "Bearer tok-1" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				io.WriteString(w, "ok")
			})
			var url string
			var goAwaySrv *rtGoAwayServer
			if goAway {
				goAwaySrv = rtStartGoAwayServer(t, 1, h)
				url = goAwaySrv.url
			} else {
				url = testutil.HostURL(testutil.StartServer(t, sharedPKI(t).serverCert(), h), hostAPI, "")
			}
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, RefreshTimeout: 5 * time.Second,
				ClientCredentials: &ClientCredentials{TokenURL: url + "/token", ClientID: "c", ClientSecret: "s"}}
			c, _ := rtNewClient(t, cfg)
			resp, body, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, url+"/v1", nil))
			if err != nil || resp.StatusCode != http.StatusOK || body != "ok" {
				t.Fatalf("got error %v, want 200 %q", err, "ok")
			}
			wantTokenReqs := int64(2)
			if goAway {
				// The GOAWAY's token request never reached the handler.
				wantTokenReqs = 1
				if got := goAwaySrv.requests.Load(); got != 3 {
					t.Errorf("got %d requests on the server, want 3: two token requests and the API's", got)
				}
			}
			if got := tokenReqs.Load(); got != wantTokenReqs {
				t.Errorf("got %d token requests answered, want %d", got, wantTokenReqs)
			}
			if got := apiReqs.Load(); got != 1 {
				t.Errorf("got %d API requests, want 1", got)
			}
		})
	}
}

func TestRetryStatusSequences(t *testing.T) {
	t.Parallel()
	s := func(code int) rtStep { return rtStep{status: code} }
	tests := []struct {
		name       string
		maxRetries int
		steps      []rtStep
		wantStatus int
		wantBody   string
		wantCount  int64
	}{
		{"503 503 200", 3, []rtStep{s(503), s(503), s(200)}, 200, "attempt 3", 3},
		{"503 until retries run out", 2, []rtStep{s(503)}, 503, "attempt 3", 3},
		{"408 then 200", 3, []rtStep{s(408), s(200)}, 200, "attempt 2", 2},
		{"429 then 200", 3, []rtStep{s(429), s(200)}, 200, "attempt 2", 2},
		{"500 then 200", 3, []rtStep{s(500), s(200)}, 200, "attempt 2", 2},
		{"502 then 200", 3, []rtStep{s(502), s(200)}, 200, "attempt 2", 2},
		{"504 then 200", 3, []rtStep{s(504), s(200)}, 200, "attempt 2", 2},
		{"501 is final", 3, []rtStep{s(501), s(200)}, 501, "attempt 1", 1},
		{"404 is final", 3, []rtStep{s(404), s(200)}, 404, "attempt 1", 1},
		{"400 is final", 3, []rtStep{s(400), s(200)}, 400, "attempt 1", 1},
		{"negative MaxRetries: no retries", -1, []rtStep{s(503), s(200)}, 503, "attempt 1", 1},
		{"zero MaxRetries: 3 retries", 0, []rtStep{s(503)}, 503, "attempt 4", 4},
		// Retried responses with bodies of several TCP segments, under the
		// drain limit: the connection is reused only if they are drained.
		{"large retried bodies", 3, []rtStep{
			{status: 503, body: strings.Repeat("x", 4000)},
			{status: 502, body: strings.Repeat("y", 4000)},
			{status: 200},
		}, 200, "attempt 3", 3},
	}
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				srv := rtFaultServer(t, proto == "HTTP/2", tt.steps...)
				cfg := testConfig(t)
				cfg.Retry.MaxRetries = tt.maxRetries
				c, _ := rtNewClient(t, cfg)
				resp, body, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, srv.url("/"), nil))
				if err != nil {
					t.Fatalf("got error %v, want a response", err)
				}
				if want := map[string]int{"HTTP/1.1": 1, "HTTP/2": 2}[proto]; resp.ProtoMajor != want {
					t.Errorf("got protocol %s, want %s", resp.Proto, proto)
				}
				if resp.StatusCode != tt.wantStatus || body != tt.wantBody {
					t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
				}
				if got := srv.requests.Load(); got != tt.wantCount {
					t.Errorf("got %d attempts, want %d", got, tt.wantCount)
				}
				if got := srv.conns.Load(); got != 1 {
					t.Errorf("got %d connections, want 1: retried responses must be drained and closed", got)
				}
			})
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	// An HTTP date in whole seconds, and a clock just before it.
	date := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	ra := func(status int, v string) rtStep {
		return rtStep{status: status, header: http.Header{"Retry-After": {v}}}
	}
	const minWait, maxWait = 2 * time.Millisecond, 10 * time.Millisecond
	tests := []struct {
		name          string
		first         rtStep
		now           time.Time // zero: the real clock
		maxRetryAfter time.Duration
		wantCount     int64
		wantStatus    int
		wantWait      time.Duration // -1: any backoff in [minWait, maxWait]
	}{
		{"seconds", ra(503, "1"), time.Time{}, 0, 2, 200, time.Second},
		{"seconds on 429", ra(429, "1"), time.Time{}, 0, 2, 200, time.Second},
		{"HTTP date", ra(503, date.Format(http.TimeFormat)), date.Add(-300 * time.Millisecond), 0, 2, 200, 300 * time.Millisecond},
		{"HTTP date in the past: MinWait", ra(503, date.Format(http.TimeFormat)), date.Add(time.Hour), 0, 2, 200, minWait},
		{"zero: MinWait", ra(503, "0"), time.Time{}, 0, 2, 200, minWait},
		{"garbage: backoff", ra(503, "soon"), time.Time{}, 0, 2, 200, -1},
		{"negative: backoff", ra(503, "-5"), time.Time{}, 0, 2, 200, -1},
		{"ignored on 500", ra(500, "3600"), time.Time{}, 0, 2, 200, -1},
		// Refused: the wait asked for is at least 30 s, far above the
		// 10 s these may take on a loaded machine.
		{"above MaxRetryAfter: returned at once", ra(503, "3600"), time.Time{}, 0, 1, 503, 0},
		{"above a small MaxRetryAfter", ra(503, "30"), time.Time{}, time.Second, 1, 503, 0},
		{"overflowing: returned at once", ra(503, "99999999999999999999999"), time.Time{}, 0, 1, 503, 0},
		{"HTTP date beyond MaxRetryAfter", ra(503, date.Format(http.TimeFormat)), date.Add(-time.Hour), 0, 1, 503, 0},
		{"on 429 beyond MaxRetryAfter", ra(429, "3600"), time.Time{}, 0, 1, 429, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.first.body = "retry later"
			srv := rtFaultServer(t, false, tt.first, rtStep{body: "ok"})
			logger, logs := rtNewLogCapture()
			cfg := testConfig(t)
			cfg.Logger = logger
			cfg.Retry = RetryPolicy{MinWait: minWait, MaxWait: maxWait, MaxRetryAfter: tt.maxRetryAfter}
			c, tr := rtNewClient(t, cfg)
			if !tt.now.IsZero() {
				tr.now = func() time.Time { return tt.now }
			}
			// A broken implementation that waits for the Retry-After fails
			// here instead of hanging the test.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			start := time.Now()
			resp, body, err := rtDo(t, c, rtRequest(t, ctx, http.MethodGet, srv.url("/"), nil))
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("got error %v, want a response", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("got status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantCount == 1 && body != "retry later" {
				t.Errorf("got body %q, want the refused response's %q intact", body, "retry later")
			}
			if got := srv.requests.Load(); got != tt.wantCount {
				t.Errorf("got %d attempts, want %d", got, tt.wantCount)
			}
			if tt.wantCount == 1 && elapsed > 10*time.Second {
				t.Errorf("took %v, want the response at once", elapsed)
			}
			retries := logs.retries()
			if got, want := len(retries), int(tt.wantCount-1); got != want {
				t.Fatalf("got %d retry log events, want %d", got, want)
			}
			if tt.wantCount < 2 {
				return
			}
			wait := retries[0].attrs["wait"].Duration()
			switch {
			case tt.wantWait < 0 && (wait < minWait || wait > maxWait):
				t.Errorf("got wait %v, want a backoff within [%v, %v]", wait, minWait, maxWait)
			case tt.wantWait >= 0 && wait != tt.wantWait:
				t.Errorf("got wait %v, want %v", wait, tt.wantWait)
			}
			if elapsed < wait {
				t.Errorf("took %v, want at least the wait of %v", elapsed, wait)
			}
		})
	}
}

func TestRetryMethods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method    string
		key       string // Idempotency-Key
		body      string
		wantCount int64
	}{
		{http.MethodGet, "", "", 3},
		{http.MethodHead, "", "", 3},
		{http.MethodOptions, "", "", 3},
		{http.MethodTrace, "", "", 3},
		{http.MethodPut, "", "doc", 3},
		{http.MethodDelete, "", "", 3},
		{http.MethodPost, "", "pay", 1},
		{http.MethodPost, "k-1", "pay", 3},
		{http.MethodPost, "k-2", "", 3},
		{http.MethodPatch, "", "edit", 1},
		{http.MethodPatch, "k-3", "edit", 3},
		{"PROPFIND", "", "", 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s key=%q", tt.method, tt.key), func(t *testing.T) {
			t.Parallel()
			srv := rtFaultServer(t, false, rtStep{status: 500}, rtStep{status: 500}, rtStep{status: 200})
			c, _ := rtNewClient(t, testConfig(t))
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req := rtRequest(t, t.Context(), tt.method, srv.url("/"), body)
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			resp, _, err := rtDo(t, c, req)
			if err != nil {
				t.Fatalf("got error %v, want a response", err)
			}
			wantStatus := 200
			if tt.wantCount == 1 {
				wantStatus = 500
			}
			if resp.StatusCode != wantStatus {
				t.Errorf("got status %d, want %d", resp.StatusCode, wantStatus)
			}
			if got := srv.requests.Load(); got != tt.wantCount {
				t.Errorf("got %d executions on the server, want %d", got, tt.wantCount)
			}
			for i, r := range srv.received() {
				if r.method != tt.method || string(r.body) != tt.body {
					t.Errorf("attempt %d: got %s with body %q, want %s with %q", i+1, r.method, r.body, tt.method, tt.body)
				}
			}
		})
	}
}

func TestRetryTLSFailuresNotRetried(t *testing.T) {
	t.Parallel()
	otherRoot := testpki.Must(testpki.NewRoot("another root", testpki.Options{}))
	tests := []struct {
		name           string
		scheme         string
		cfg            func(*Config)
		check          func(error) bool
		wantHandshakes int64
		wantDials      int64
	}{
		{
			name: "pin mismatch",
			cfg: func(c *Config) {
				c.Pins = []PinSet{{Host: hostAPI, Pins: []string{otherRoot.SPKIPin()}}}
			},
			check: func(err error) bool {
				var pe *PinError
				return errors.Is(err, ErrPinMismatch) && errors.As(err, &pe) && pe.Host == hostAPI
			},
			wantHandshakes: 1, wantDials: 1,
		},
		{
			name: "untrusted root",
			cfg:  func(c *Config) { c.RootCAs = otherRoot.Pool() },
			check: func(err error) bool {
				var ve *tls.CertificateVerificationError
				return errors.As(err, &ve)
			},
			wantHandshakes: 1, wantDials: 1,
		},
		{
			name:           "plain http",
			scheme:         "http",
			cfg:            func(*Config) {},
			check:          func(err error) bool { return errors.Is(err, ErrInsecureScheme) },
			wantHandshakes: 0, wantDials: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := rtFaultServer(t, false)
			var dials atomic.Int64
			cfg := testConfig(t)
			cfg.Retry.MaxRetries = 5
			cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return testutil.LoopbackDial(ctx, network, addr)
			}
			tt.cfg(&cfg)
			c, _ := rtNewClient(t, cfg)
			u := srv.url("/")
			if tt.scheme == "http" {
				u = "http" + strings.TrimPrefix(u, "https")
			}
			_, _, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, u, nil))
			if !tt.check(err) {
				t.Errorf("got error %v, want the %s failure", err, tt.name)
			}
			if got := srv.handshakes.Load(); got != tt.wantHandshakes {
				t.Errorf("got %d handshakes, want %d", got, tt.wantHandshakes)
			}
			if got := dials.Load(); got != tt.wantDials {
				t.Errorf("got %d dials, want %d", got, tt.wantDials)
			}
			if got := srv.requests.Load(); got != 0 {
				t.Errorf("got %d requests on the server, want 0", got)
			}
		})
	}
}

func TestRetryConnectionErrors(t *testing.T) {
	t.Parallel()
	t.Run("refused, every attempt", func(t *testing.T) {
		t.Parallel()
		// A port that was just free: nothing listens there.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		var dials atomic.Int64
		cfg := testConfig(t)
		cfg.Retry.MaxRetries = 2
		cfg.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
		c, _ := rtNewClient(t, cfg)
		_, _, err = rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, "https://"+hostAPI+"/", nil))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("got error %v, want ECONNREFUSED", err)
		}
		if got := dials.Load(); got != 3 {
			t.Errorf("got %d dials, want 3", got)
		}
	})
	t.Run("response header timeout is retried", func(t *testing.T) {
		t.Parallel()
		srv := rtFaultServer(t, false, rtStep{fault: rtHang}, rtStep{body: "ok"})
		cfg := testConfig(t)
		cfg.ResponseHeaderTimeout = time.Second
		c, _ := rtNewClient(t, cfg)
		resp, body, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, srv.url("/"), nil))
		if err != nil {
			t.Fatalf("got error %v, want the second attempt's response", err)
		}
		if resp.StatusCode != 200 || body != "ok" {
			t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, "ok")
		}
		if got := srv.requests.Load(); got != 2 {
			t.Errorf("got %d attempts, want 2", got)
		}
	})
	t.Run("dial timeout is retried", func(t *testing.T) {
		t.Parallel()
		srv := rtFaultServer(t, false, rtStep{body: "ok"})
		var dials atomic.Int64
		cfg := testConfig(t)
		cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dials.Add(1) == 1 {
				// What a net.Dialer returns when its Timeout expires.
				return nil, &net.OpError{Op: "dial", Net: network, Err: rtDialTimeout{}}
			}
			return testutil.LoopbackDial(ctx, network, addr)
		}
		c, _ := rtNewClient(t, cfg)
		resp, body, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, srv.url("/"), nil))
		if err != nil {
			t.Fatalf("got error %v, want the second attempt's response", err)
		}
		if resp.StatusCode != 200 || body != "ok" {
			t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, "ok")
		}
		if got := dials.Load(); got != 2 {
			t.Errorf("got %d dials, want 2", got)
		}
	})
	t.Run("context deadline is not retried", func(t *testing.T) {
		t.Parallel()
		srv := rtFaultServer(t, false, rtStep{body: "warm-up"}, rtStep{fault: rtHang}, rtStep{body: "ok"})
		logger, logs := rtNewLogCapture()
		cfg := testConfig(t)
		cfg.Logger = logger
		c, _ := rtNewClient(t, cfg)
		// A first request sets up the connection, so that the deadline of
		// the second cannot expire in the handshake, before it is sent.
		if _, _, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, srv.url("/"), nil)); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		_, _, err := rtDo(t, c, rtRequest(t, ctx, http.MethodGet, srv.url("/"), nil))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got error %v, want context.DeadlineExceeded", err)
		}
		if got := srv.requests.Load(); got != 2 {
			t.Errorf("got %d requests, want 2: the warm-up and one attempt", got)
		}
		// The engine's wait would end at once on the expired context, so
		// a wrong decision to retry shows only in the log.
		if got := len(logs.retries()); got != 0 {
			t.Errorf("got %d retry events, want 0", got)
		}
	})
}

// rtDialTimeout is like net's own dial timeout error: a net.Error that
// also matches context.DeadlineExceeded.
type rtDialTimeout struct{}

func (rtDialTimeout) Error() string     { return "i/o timeout" }
func (rtDialTimeout) Timeout() bool     { return true }
func (rtDialTimeout) Temporary() bool   { return true }
func (rtDialTimeout) Is(err error) bool { return err == context.DeadlineExceeded }

func TestRetryRedirects(t *testing.T) {
	t.Parallel()
	var hits sync.Map // path -> *atomic.Int64
	hit := func(p string) int64 {
		v, _ := hits.LoadOrStore(p, new(atomic.Int64))
		return v.(*atomic.Int64).Load()
	}
	mux := http.NewServeMux()
	count := func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			v, _ := hits.LoadOrStore(r.URL.Path, new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
			next(w, r)
		}
	}
	mux.HandleFunc("/last/start", count(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/last/next", http.StatusFound)
	}))
	mux.HandleFunc("/last/next", count(func(w http.ResponseWriter, r *http.Request) {}))
	mux.HandleFunc("/hops/1", count(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/hops/2", http.StatusFound)
	}))
	mux.HandleFunc("/hops/2", count(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/hops/3", http.StatusTemporaryRedirect)
	}))
	mux.HandleFunc("/hops/3", count(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "done") }))
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), mux)

	t.Run("ErrUseLastResponse returns the 302", func(t *testing.T) {
		t.Parallel()
		c, _ := rtNewClient(t, testConfig(t))
		var calls atomic.Int64
		c.CheckRedirect = func(*http.Request, []*http.Request) error {
			calls.Add(1)
			return http.ErrUseLastResponse
		}
		resp, _, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, testutil.HostURL(srv, hostAPI, "/last/start"), nil))
		if err != nil {
			t.Fatalf("got error %v, want the 302", err)
		}
		if resp.StatusCode != http.StatusFound {
			t.Errorf("got status %d, want 302", resp.StatusCode)
		}
		if got := resp.Header.Get("Location"); got != "/last/next" {
			t.Errorf("got Location %q, want %q", got, "/last/next")
		}
		if got := calls.Load(); got != 1 {
			t.Errorf("got %d CheckRedirect calls, want 1", got)
		}
		if got := hit("/last/next"); got != 0 {
			t.Errorf("got %d requests to the redirect target, want 0", got)
		}
	})
	t.Run("every hop passes through the caller's CheckRedirect", func(t *testing.T) {
		t.Parallel()
		c, _ := rtNewClient(t, testConfig(t))
		var mu sync.Mutex
		var seen []string
		c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("%s via %d", req.URL.Path, len(via)))
			return nil
		}
		resp, body, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, testutil.HostURL(srv, hostAPI, "/hops/1"), nil))
		if err != nil {
			t.Fatalf("got error %v, want the final response", err)
		}
		if resp.StatusCode != 200 || body != "done" {
			t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, "done")
		}
		mu.Lock()
		got := strings.Join(seen, ", ")
		mu.Unlock()
		if want := "/hops/2 via 1, /hops/3 via 2"; got != want {
			t.Errorf("got CheckRedirect calls %q, want %q", got, want)
		}
	})
}

func TestRetryContextCancelledDuringBackoff(t *testing.T) {
	t.Parallel()
	srv := rtFaultServer(t, false, rtStep{status: 503})
	logger, logs := rtNewLogCapture()
	waiting := make(chan struct{})
	var once sync.Once
	logs.on = func(msg string) {
		if msg == rtRetryingMsg {
			once.Do(func() { close(waiting) })
		}
	}
	cfg := testConfig(t)
	cfg.Logger = logger
	cfg.Retry = RetryPolicy{MinWait: 10 * time.Second, MaxWait: 10 * time.Second}
	c, _ := rtNewClient(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var cancelled time.Time
	go func() {
		select {
		case <-waiting:
		case <-time.After(5 * time.Second):
		}
		cancelled = time.Now()
		cancel()
	}()
	resp, err := c.Do(rtRequest(t, ctx, http.MethodGet, srv.url("/"), nil))
	returned := time.Now()
	if resp != nil {
		resp.Body.Close()
		t.Errorf("got a response with status %d, want none", resp.StatusCode)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got error %v, want context.Canceled", err)
	}
	if got := srv.requests.Load(); got != 1 {
		t.Errorf("got %d attempts, want 1", got)
	}
	if len(logs.retries()) != 1 {
		t.Fatalf("got %d retry events, want 1: the cancel did not come during the backoff", len(logs.retries()))
	}
	if d := returned.Sub(cancelled); d > 5*time.Second {
		t.Errorf("returned %v after the cancel, want promptly", d)
	}
}

// rtTrackedBodies hands out bodies over one payload and records how many
// were made and closed.
type rtTrackedBodies struct {
	payload        []byte
	failAfter      int   // > 0: fail with failErr after that many bytes
	failErr        error //
	made, closed   atomic.Int64
	getBodyInvoked atomic.Int64
}

type rtTrackedBody struct {
	r      io.Reader
	closed *atomic.Int64
	once   sync.Once
}

func (b *rtTrackedBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *rtTrackedBody) Close() error {
	b.once.Do(func() { b.closed.Add(1) })
	return nil
}

func (tb *rtTrackedBodies) body() io.ReadCloser {
	tb.made.Add(1)
	var r io.Reader = bytes.NewReader(tb.payload)
	if tb.failAfter > 0 {
		r = io.MultiReader(bytes.NewReader(tb.payload[:tb.failAfter]), rtErrReader{tb.failErr})
	}
	return &rtTrackedBody{r: r, closed: &tb.closed}
}

func (tb *rtTrackedBodies) getBody() (io.ReadCloser, error) {
	tb.getBodyInvoked.Add(1)
	return tb.body(), nil
}

type rtErrReader struct{ err error }

func (r rtErrReader) Read([]byte) (int, error) { return 0, r.err }

// rtOnlyReader hides every method of a reader but Read, so that net/http
// cannot make a GetBody for it.
type rtOnlyReader struct{ r io.Reader }

func (r rtOnlyReader) Read(p []byte) (int, error) { return r.r.Read(p) }

func TestRetryRequestBodies(t *testing.T) {
	t.Parallel()
	payload := make([]byte, 256<<10)
	rand.Read(payload)

	t.Run("GetBody replays the same bytes", func(t *testing.T) {
		t.Parallel()
		for _, method := range []string{http.MethodPut, http.MethodPost} {
			t.Run(method, func(t *testing.T) {
				t.Parallel()
				srv := rtFaultServer(t, false, rtStep{status: 503}, rtStep{status: 200})
				c, _ := rtNewClient(t, testConfig(t))
				req := rtRequest(t, t.Context(), method, srv.url("/"), bytes.NewReader(payload))
				req.Header.Set("Idempotency-Key", "k") // needed by POST, harmless for PUT
				resp, _, err := rtDo(t, c, req)
				if err != nil {
					t.Fatalf("got error %v, want a response", err)
				}
				if resp.StatusCode != 200 {
					t.Errorf("got status %d, want 200", resp.StatusCode)
				}
				seen := srv.received()
				if len(seen) != 2 {
					t.Fatalf("got %d attempts, want 2", len(seen))
				}
				for i, r := range seen {
					if !bytes.Equal(r.body, payload) {
						t.Errorf("attempt %d: got a body of %d bytes, want the %d-byte payload", i+1, len(r.body), len(payload))
					}
				}
			})
		}
	})
	t.Run("every body made by GetBody is closed", func(t *testing.T) {
		t.Parallel()
		srv := rtFaultServer(t, false, rtStep{status: 503}, rtStep{status: 502}, rtStep{status: 200})
		c, _ := rtNewClient(t, testConfig(t))
		tb := &rtTrackedBodies{payload: payload}
		req := rtRequest(t, t.Context(), http.MethodPut, srv.url("/"), nil)
		req.Body, req.GetBody, req.ContentLength = tb.body(), tb.getBody, int64(len(payload))
		if _, _, err := rtDo(t, c, req); err != nil {
			t.Fatalf("got error %v, want a response", err)
		}
		if made, closed := tb.made.Load(), tb.closed.Load(); made != 3 || closed != made {
			t.Errorf("got %d bodies made and %d closed, want 3 and 3", made, closed)
		}
	})
	t.Run("a redirect answering a retry leaves no body open", func(t *testing.T) {
		t.Parallel()
		for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
			t.Run(strconv.Itoa(status), func(t *testing.T) {
				t.Parallel()
				srv := rtFaultServer(t, false, rtStep{status: 503}, rtStep{status: status, header: http.Header{"Location": {"/elsewhere"}}})
				// The transport alone: http.Client itself calls GetBody for
				// the hop it is about to follow, before its CheckRedirect.
				_, tr := rtNewClient(t, testConfig(t))
				tb := &rtTrackedBodies{payload: payload}
				req := rtRequest(t, t.Context(), http.MethodPut, srv.url("/"), nil)
				req.Body, req.GetBody, req.ContentLength = tb.body(), tb.getBody, int64(len(payload))
				resp, err := tr.RoundTrip(req)
				if err != nil || resp.StatusCode != status {
					t.Fatalf("got %v, %v; want the %d", resp, err, status)
				}
				resp.Body.Close()
				if made, closed := tb.made.Load(), tb.closed.Load(); closed != made {
					t.Errorf("got %d bodies made and %d closed, want every one closed", made, closed)
				}
			})
		}
	})
	t.Run("a body without GetBody is sent once", func(t *testing.T) {
		t.Parallel()
		for _, method := range []string{http.MethodPut, http.MethodPost} {
			t.Run(method, func(t *testing.T) {
				t.Parallel()
				srv := rtFaultServer(t, false, rtStep{status: 503, body: "busy"}, rtStep{status: 200})
				c, _ := rtNewClient(t, testConfig(t))
				req := rtRequest(t, t.Context(), method, srv.url("/"), io.NopCloser(rtOnlyReader{bytes.NewReader(payload)}))
				req.Header.Set("Idempotency-Key", "k")
				if req.GetBody != nil {
					t.Fatal("the request has a GetBody; the test needs one without")
				}
				resp, body, err := rtDo(t, c, req)
				if err != nil {
					t.Fatalf("got error %v, want the 503", err)
				}
				if resp.StatusCode != 503 || body != "busy" {
					t.Errorf("got %d %q, want 503 %q", resp.StatusCode, body, "busy")
				}
				seen := srv.received()
				if len(seen) != 1 {
					t.Fatalf("got %d attempts, want 1", len(seen))
				}
				if !bytes.Equal(seen[0].body, payload) {
					t.Errorf("got a body of %d bytes, want the %d-byte payload", len(seen[0].body), len(payload))
				}
			})
		}
	})
	t.Run("an error reading the body is not retried", func(t *testing.T) {
		t.Parallel()
		for _, failErr := range []error{
			io.ErrUnexpectedEOF,
			&os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET},
			errors.New("disk on fire"),
		} {
			t.Run(failErr.Error(), func(t *testing.T) {
				t.Parallel()
				srv := rtFaultServer(t, false, rtStep{status: 200})
				c, _ := rtNewClient(t, testConfig(t))
				tb := &rtTrackedBodies{payload: payload, failAfter: 1000, failErr: failErr}
				req := rtRequest(t, t.Context(), http.MethodPut, srv.url("/"), nil)
				req.Body, req.GetBody, req.ContentLength = tb.body(), tb.getBody, int64(len(payload))
				_, _, err := rtDo(t, c, req)
				if !errors.Is(err, failErr) {
					t.Errorf("got error %v, want %v", err, failErr)
				}
				if got := tb.getBodyInvoked.Load(); got != 0 {
					t.Errorf("got %d GetBody calls, want 0: a body read error must not be retried", got)
				}
				if made, closed := tb.made.Load(), tb.closed.Load(); closed != made {
					t.Errorf("got %d bodies made and %d closed, want all closed", made, closed)
				}
			})
		}
	})
}

// rtBlockingReader produces first bytes, then blocks until proceed is
// closed, then produces rest bytes. It gives up after 10 s, failing the
// upload, so that a client that buffers the whole body cannot hang a test.
type rtBlockingReader struct {
	first, rest int
	proceed     <-chan struct{}
	n           int
	timedOut    atomic.Bool
}

func (r *rtBlockingReader) Read(p []byte) (int, error) {
	if r.n == r.first {
		select {
		case <-r.proceed:
		case <-time.After(10 * time.Second):
			r.timedOut.Store(true)
			return 0, errors.New("the server never saw the first bytes: the body was buffered")
		}
	}
	limit := r.first
	if r.n >= r.first {
		limit = r.first + r.rest
	}
	if r.n >= limit {
		return 0, io.EOF
	}
	p = p[:min(len(p), limit-r.n)]
	for i := range p {
		p[i] = byte(r.n + i)
	}
	r.n += len(p)
	return len(p), nil
}

func TestRetryStreamsNonReplayableBody(t *testing.T) {
	t.Parallel()
	const first, rest = 1 << 20, 1 << 20
	for _, h2 := range []bool{false, true} {
		for _, method := range []string{http.MethodPut, http.MethodPost} {
			t.Run(fmt.Sprintf("h2=%v/%s", h2, method), func(t *testing.T) {
				t.Parallel()
				sawFirst := make(chan struct{})
				var total atomic.Int64
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					n, _ := io.CopyN(io.Discard, r.Body, first)
					if n == first {
						close(sawFirst)
					}
					m, _ := io.Copy(io.Discard, r.Body)
					total.Store(n + m)
				})
				var srv *httptest.Server
				if h2 {
					srv = testutil.StartServer(t, sharedPKI(t).serverCert(), h)
				} else {
					srv = httptest.NewUnstartedServer(h)
					srv.TLS = &tls.Config{Certificates: []tls.Certificate{sharedPKI(t).serverCert()}}
					srv.Config.ErrorLog = testutil.QuietLog()
					srv.StartTLS()
					t.Cleanup(srv.Close)
				}
				c, _ := rtNewClient(t, testConfig(t))
				body := &rtBlockingReader{first: first, rest: rest, proceed: sawFirst}
				req := rtRequest(t, t.Context(), method, testutil.HostURL(srv, hostAPI, "/"), io.NopCloser(body))
				req.Header.Set("Idempotency-Key", "k")
				resp, _, err := rtDo(t, c, req)
				if err != nil {
					t.Fatalf("got error %v, want a response", err)
				}
				if body.timedOut.Load() {
					t.Error("the server saw no byte before the reader had produced the first MiB: the body was buffered")
				}
				if wantProto := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != wantProto {
					t.Errorf("got HTTP/%d, want HTTP/%d", resp.ProtoMajor, wantProto)
				}
				if got := total.Load(); got != first+rest {
					t.Errorf("got %d bytes on the server, want %d", got, first+rest)
				}
			})
		}
	}
}

func rtJWT(t testing.TB, iat, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		IssuedAt:  jwt.NewNumericDate(iat),
		ExpiresAt: jwt.NewNumericDate(exp),
	}).SignedString([]byte("test key"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRetryTokenPerAttempt(t *testing.T) {
	t.Parallel()
	base := time.Now().Truncate(time.Second)
	tok1 := rtJWT(t, base, base.Add(time.Hour))
	tok2 := rtJWT(t, base.Add(2*time.Hour), base.Add(4*time.Hour))

	tests := []struct {
		name       string
		refreshErr error
	}{
		{"the refreshed token is sent", nil},
		{"a failed refresh ends the retries", errors.New("idp down")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := testutil.NewClock(base)
			var refreshes atomic.Int64
			// The first attempt outlives tok1: the server answers it only
			// after the clock has moved past tok1's expiry.
			srv := rtFaultServer(t, false,
				rtStep{status: 503, do: func() { clock.Add(2 * time.Hour) }},
				rtStep{status: 200})
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{
				Store: NewMemoryStore(Token{Value: tok1}),
				Refresh: func(context.Context) (Token, error) {
					refreshes.Add(1)
					if tt.refreshErr != nil {
						return Token{}, tt.refreshErr
					}
					return Token{Value: tok2}, nil
				},
				Hosts: []string{hostAPI},
			}
			c, tr := rtNewClient(t, cfg)
			tr.now = clock.Now
			tb := &rtTrackedBodies{payload: []byte("document")}
			req := rtRequest(t, t.Context(), http.MethodPut, srv.url("/"), nil)
			req.Body, req.GetBody, req.ContentLength = tb.body(), tb.getBody, int64(len(tb.payload))
			resp, _, err := rtDo(t, c, req)

			seen := srv.received()
			if len(seen) == 0 || seen[0].auth != "Bearer "+tok1 {
				t.Fatalf("the first attempt did not carry the first token")
			}
			if got := refreshes.Load(); got != 1 {
				t.Errorf("got %d refreshes, want 1", got)
			}
			if made, closed := tb.made.Load(), tb.closed.Load(); closed != made {
				t.Errorf("got %d bodies made and %d closed, want all closed", made, closed)
			}
			if tt.refreshErr != nil {
				var re *RefreshError
				if !errors.As(err, &re) || !errors.Is(err, tt.refreshErr) {
					t.Errorf("got error %v, want a *RefreshError wrapping %v", err, tt.refreshErr)
				}
				if len(seen) != 1 {
					t.Errorf("got %d attempts, want 1", len(seen))
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want a response", err)
			}
			if resp.StatusCode != 200 {
				t.Errorf("got status %d, want 200", resp.StatusCode)
			}
			if len(seen) != 2 {
				t.Fatalf("got %d attempts, want 2", len(seen))
			}
			if seen[1].auth != "Bearer "+tok2 {
				t.Error("the second attempt did not carry the refreshed token")
			}
			if string(seen[1].body) != "document" {
				t.Errorf("got second body %q, want %q", seen[1].body, "document")
			}
			if req.Header.Get("Authorization") != "" {
				t.Error("the caller's request was modified: it has an Authorization header")
			}
		})
	}
}

func TestRetryLogging(t *testing.T) {
	t.Parallel()
	const (
		secret   = "SECRETKEY123"
		password = "hunter2pw"
	)
	srv := rtFaultServer(t, false,
		rtStep{fault: rtResetBeforeHeaders},
		rtStep{status: 503},
		rtStep{status: 200},
		rtStep{status: 503, header: http.Header{"Retry-After": {"3600"}}},
	)
	logger, logs := rtNewLogCapture()
	cfg := testConfig(t)
	cfg.Logger = logger
	cfg.Retry = RetryPolicy{MinWait: time.Millisecond, MaxWait: 3 * time.Millisecond}
	c, _ := rtNewClient(t, cfg)
	path := "/v1/things"
	u := strings.Replace(srv.url(path), "https://", "https://user:"+password+"@", 1) + "?api_key=" + secret
	if _, _, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, u, nil)); err != nil {
		t.Fatalf("got error %v, want a response", err)
	}
	// A second request, refused for its Retry-After, logs why.
	if _, _, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, u, nil)); err != nil {
		t.Fatalf("got error %v, want a response", err)
	}

	wantURL := srv.url(path)
	retries := logs.retries()
	if len(retries) != 2 {
		t.Fatalf("got %d retry events, want 2", len(retries))
	}
	for i, r := range retries {
		if got := r.attrs["method"].String(); got != http.MethodGet {
			t.Errorf("event %d: got method %q, want GET", i, got)
		}
		if got := r.attrs["url"].String(); got != wantURL {
			t.Errorf("event %d: got url %q, want %q", i, got, wantURL)
		}
		if got, want := r.attrs["attempt"].Int64(), int64(i+2); got != want {
			t.Errorf("event %d: got attempt %d, want %d", i, got, want)
		}
		if w := r.attrs["wait"]; w.Kind() != slog.KindDuration || w.Duration() < time.Millisecond || w.Duration() > 3*time.Millisecond {
			t.Errorf("event %d: got wait %v, want a duration within [1ms, 3ms]", i, w)
		}
	}
	// The reason is the failure's class, as hooks name it, or the status.
	if got := retries[0].attrs["reason"].String(); got != "connection_reset" {
		t.Errorf("got reason %q, want %q", got, "connection_reset")
	}
	if got := retries[1].attrs["reason"].String(); got != "503" {
		t.Errorf("got reason %q, want %q", got, "503")
	}
	text := logs.text.String()
	if !strings.Contains(text, "Retry-After exceeds MaxRetryAfter") {
		t.Errorf("got no event for the refused Retry-After in:\n%s", text)
	}
	basic := base64.StdEncoding.EncodeToString([]byte("user:" + password))
	for _, s := range []string{secret, password, basic, "api_key", "user@", "user:"} {
		if strings.Contains(text, s) {
			t.Errorf("got %q in the logs, want it never logged:\n%s", s, text)
		}
	}
}

// TestRetryNilLoggerSilent runs a retrying client with no Logger in a child
// process and checks that its stderr holds nothing but the client's own
// warnings, which a nil Logger sends to slog.Default(): no retry or debug
// line, and nothing of go-retryablehttp's default logger, which writes to
// the stderr it saw at start-up, which only a separate process can capture
// without touching file descriptor 2 of this one.
func TestRetryNilLoggerSilent(t *testing.T) {
	if os.Getenv("RT_NIL_LOGGER_CHILD") == "1" {
		rtNilLoggerChild(t)
		return
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRetryNilLoggerSilent$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), "RT_NIL_LOGGER_CHILD=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "rt-attempts=6") {
		t.Errorf("got child output %q, want it to report 6 attempts", stdout.String())
	}
	for line := range strings.Lines(stderr.String()) {
		if !strings.Contains(line, " WARN securehttp: ") {
			t.Errorf("got %q on stderr with a nil Logger, want only the client's warnings", line)
		}
	}
}

func rtNilLoggerChild(t *testing.T) {
	srv := rtFaultServer(t, false,
		rtStep{fault: rtResetBeforeHeaders},
		rtStep{status: 503},
		rtStep{status: 200},
		rtStep{status: 500},
		rtStep{status: 500},
		rtStep{status: 503, header: http.Header{"Retry-After": {"3600"}}},
	)
	cfg := testConfig(t)
	cfg.Retry.MaxRetries = 1
	c, _ := rtNewClient(t, cfg)
	u := srv.url("/?api_key=SECRET")
	// reset+503 (returned), 200, 500+500 (returned), 503 refused for its
	// Retry-After: 6 attempts.
	for range 4 {
		if _, _, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, u, nil)); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("rt-attempts=" + strconv.FormatInt(srv.requests.Load(), 10))
}

func TestRetryParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const maxD = maxRetryAfterSeconds * time.Second
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"   ", 0, false},
		{"0", 0, true},
		{"1", time.Second, true},
		{" 120 ", 120 * time.Second, true},
		{"007", 7 * time.Second, true},
		{"-1", 0, false},
		{"-0", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"1e3", 0, false},
		{"10s", 0, false},
		{"0x10", 0, false},
		{"soon", 0, false},
		{"１２", 0, false},
		{"2147483648", maxD, true},
		{"2147483649", maxD, true},
		{"18446744073709551615", maxD, true},
		{"18446744073709551616", maxD, true},
		{"99999999999999999999999999999999", maxD, true},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sunday, 01-Mar-26 12:00:30 GMT", 30 * time.Second, true},
		{"Sun Mar  1 12:00:30 2026", 30 * time.Second, true},
		{"Sun, 01 Mar 2026 12:00:00 GMT", 0, true},
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true},
		{"Thu, 01 Jan 1970 00:00:00 GMT", 0, true},
		{"Fri, 31 Dec 9999 23:59:59 GMT", time.Duration(1<<63 - 1), true},
		{"Sun, 01 Mar 2026 12:00:30", 0, false},
		{"Sun, 32 Mar 2026 12:00:30 GMT", 0, false},
		{"2026-03-01T12:00:30Z", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, ok := parseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestRetryBackoffBounds(t *testing.T) {
	t.Parallel()
	const maxD = time.Duration(1<<63 - 1)
	tests := []struct {
		name             string
		minWait, maxWait time.Duration
	}{
		{"defaults", 0, 0},
		{"small", time.Millisecond, 5 * time.Millisecond},
		{"equal", time.Second, time.Second},
		{"1ns to the largest duration", time.Nanosecond, maxD},
		{"large minimum", time.Hour, maxD},
		{"close to the largest duration", maxD / 3, maxD},
		{"min above the default max", 10 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.Retry = RetryPolicy{MinWait: tt.minWait, MaxWait: tt.maxWait}
			tr := newTestTransport(t, cfg)
			lo, hi := tr.retry.minWait, tr.retry.maxWait
			if lo <= 0 || hi < lo {
				t.Fatalf("got bounds [%v, %v], want 0 < min <= max", lo, hi)
			}
			req := rtRequest(t, t.Context(), http.MethodGet, "https://"+hostAPI+"/", nil)
			extremes := map[string]func(int64) int64{
				"lowest":  func(int64) int64 { return 0 },
				"highest": func(n int64) int64 { return n - 1 },
			}
			for name, jitter := range extremes {
				tr.jitter = func(n int64) int64 {
					if n <= 0 {
						t.Fatalf("jitter(%d): want a positive bound", n)
					}
					return jitter(n)
				}
				x := &exchange{req: req, next: resendRetry}
				prev := time.Duration(0)
				for n := range 70 {
					x.retries = n + 1 // the n-th retry's, from 0
					got := tr.wait(x, nil)
					if got < lo || got > hi {
						t.Fatalf("%s jitter, retry %d: got wait %v, want within [%v, %v]", name, n, got, lo, hi)
					}
					if name == "lowest" && got != lo {
						t.Errorf("%s jitter, retry %d: got wait %v, want %v", name, n, got, lo)
					}
					if name == "highest" && got < prev {
						t.Errorf("%s jitter, retry %d: got wait %v, want no less than the previous %v", name, n, got, prev)
					}
					prev = got
				}
				if name == "highest" {
					// The first retry already spreads over [min, 2*min].
					x.retries = 1
					if got, want := tr.wait(x, nil), min(2*lo, hi); lo <= hi/2 && got != want {
						t.Errorf("highest jitter, first retry: got %v, want %v", got, want)
					}
					x.retries = 70
					if got := tr.wait(x, nil); got != hi {
						t.Errorf("highest jitter, retry 69: got %v, want the cap %v", got, hi)
					}
				}
			}
		})
	}
	t.Run("Retry-After is floored at MinWait and capped at MaxRetryAfter", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		cfg.Retry = RetryPolicy{MinWait: 50 * time.Millisecond, MaxWait: 100 * time.Millisecond, MaxRetryAfter: time.Minute}
		tr := newTestTransport(t, cfg)
		x := &exchange{req: rtRequest(t, t.Context(), http.MethodGet, "https://"+hostAPI+"/", nil), next: resendRetry, retries: 1}
		for _, tt := range []struct {
			status int
			ra     string
			want   time.Duration
		}{
			{503, "0", 50 * time.Millisecond},
			{429, "30", 30 * time.Second},
			{503, "60", time.Minute},
			{503, "61", time.Minute}, // never reached: judge refuses it
		} {
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{"Retry-After": {tt.ra}}}
			if got := tr.wait(x, resp); got != tt.want {
				t.Errorf("%d Retry-After %s: got wait %v, want %v", tt.status, tt.ra, got, tt.want)
			}
		}
	})
}

func TestRetryPolicyConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		p         RetryPolicy
		want      retryConfig
		wantField string // a *ConfigError for this field
	}{
		{"zero value", RetryPolicy{}, retryConfig{3, 200 * time.Millisecond, 5 * time.Second, 30 * time.Second, 0}, ""},
		{"no retries", RetryPolicy{MaxRetries: -1}, retryConfig{0, 200 * time.Millisecond, 5 * time.Second, 30 * time.Second, 0}, ""},
		{"MinWait above the default MaxWait", RetryPolicy{MinWait: 10 * time.Second}, retryConfig{3, 10 * time.Second, 10 * time.Second, 30 * time.Second, 0}, ""},
		{"negative MinWait", RetryPolicy{MinWait: -1}, retryConfig{}, "Retry.MinWait"},
		{"MaxWait below MinWait", RetryPolicy{MinWait: time.Second, MaxWait: time.Millisecond}, retryConfig{}, "Retry.MaxWait"},
		{"negative MaxRetryAfter", RetryPolicy{MaxRetryAfter: -time.Second}, retryConfig{}, "Retry.MaxRetryAfter"},
		{"no budget", RetryPolicy{Budget: -1}, retryConfig{3, 200 * time.Millisecond, 5 * time.Second, 30 * time.Second, -1}, ""},
		{"NaN budget", RetryPolicy{Budget: math.NaN()}, retryConfig{}, "Retry.Budget"},
		{"infinite budget", RetryPolicy{Budget: math.Inf(1)}, retryConfig{}, "Retry.Budget"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := newRetryConfig(tt.p)
			if tt.wantField != "" {
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Field != tt.wantField {
					t.Errorf("got error %v, want a *ConfigError for %s", err, tt.wantField)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, nil", got, err, tt.want)
			}
		})
	}
}

// FuzzRetryAfter: parseRetryAfter never returns a negative wait, returns 0
// when it cannot read the value, and caps a number of seconds at
// maxRetryAfterSeconds.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{
		"", "0", "120", " 120 ", "-1", "+5", "1.5", "1e3", "0x10", "5\x00",
		"18446744073709551615", "18446744073709551616", "99999999999999999999999",
		"2147483648", "9223372036",
		"Sun, 06 Nov 1994 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994",
		"Fri, 31 Dec 9999 23:59:59 GMT",
		"Mon, 01 Jan 0001 00:00:00 GMT",
		"Sun, 06 Nov 1994 08:49:37 PST",
	} {
		f.Add(s, int64(1700000000))
	}
	f.Add("Fri, 31 Dec 9999 23:59:59 GMT", int64(-1<<62))
	f.Add("Mon, 01 Jan 0001 00:00:00 GMT", int64(1<<62))
	f.Fuzz(func(t *testing.T, v string, unix int64) {
		d, ok := parseRetryAfter(v, time.Unix(unix, 0))
		if d < 0 {
			t.Errorf("parseRetryAfter(%q) = %v, want >= 0", v, d)
		}
		if !ok && d != 0 {
			t.Errorf("parseRetryAfter(%q) = %v, false; want 0 when not ok", v, d)
		}
		if ok && strings.TrimSpace(v) != "" && fzIsDigit(strings.TrimSpace(v)[0]) && d > maxRetryAfterSeconds*time.Second {
			t.Errorf("parseRetryAfter(%q) = %v, want at most %v for a number of seconds", v, d, maxRetryAfterSeconds*time.Second)
		}
	})
}

func fzIsDigit(c byte) bool { return '0' <= c && c <= '9' }

// TestErrorCountsAttempts: an error after retries says how many attempts
// were made, and stays the same error for errors.Is.
func TestErrorCountsAttempts(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		maxRetries  int
		wantAttempt string
		wantReqs    int64
	}{
		{"default", 0, "after 4 attempts", 4},
		{"two retries", 2, "after 3 attempts", 3},
		{"no retries", -1, "", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := rtFaultServer(t, false, rtStep{fault: rtResetBeforeHeaders})
			cfg := testConfig(t)
			cfg.Retry.MaxRetries = tt.maxRetries
			c, _ := rtNewClient(t, cfg)
			_, _, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, srv.url("/"), nil))
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("got %v, want ECONNRESET", err)
			}
			if got := srv.requests.Load(); got != tt.wantReqs {
				t.Errorf("got %d requests, want %d", got, tt.wantReqs)
			}
			if tt.wantAttempt != "" && !strings.Contains(err.Error(), tt.wantAttempt) {
				t.Errorf("error %q does not say %q", err, tt.wantAttempt)
			}
			if tt.wantAttempt == "" && strings.Contains(err.Error(), "attempts") {
				t.Errorf("error %q counts attempts for a single one", err)
			}
		})
	}
}

// TestNoRetries: MaxRetries 0 is the default of 3 retries, the opposite of
// go-retryablehttp's RetryMax 0; -1 sends once.
func TestNoRetries(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		max  int
		want int64
	}{
		{"zero value retries 3 times", 0, 4},
		{"-1 sends once", -1, 1},
		{"any negative value sends once", -7, 1},
		{"one retry", 1, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := rtFaultServer(t, false, rtStep{status: http.StatusServiceUnavailable})
			cfg := testConfig(t)
			cfg.Retry.MaxRetries = tt.max
			c, _ := rtNewClient(t, cfg)
			resp, _, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, srv.url("/"), nil))
			if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("got %v, %v; want the 503", resp, err)
			}
			if got := srv.requests.Load(); got != tt.want {
				t.Errorf("got %d requests, want %d", got, tt.want)
			}
		})
	}
}

// rtPatternReader produces size bytes of a repeating pattern without holding
// them: an upload body of any size in constant memory, with no GetBody.
type rtPatternReader struct {
	size, off int64
}

func (r *rtPatternReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.size-r.off)]
	for i := range p {
		p[i] = byte(r.off + int64(i))
	}
	r.off += int64(len(p))
	return len(p), nil
}

// BenchmarkStreamingUpload128MiB uploads 128 MiB whose body has no GetBody,
// so it must be streamed, never buffered. B/op (and MiB-alloc/op, the same
// measure in MiB) counts every allocation in the process during the loop:
// the in-process server's as well as the client's, so the client's share is
// at most that. Buffering the body, as go-retryablehttp's own RoundTripper
// does, would show at least 128 MiB/op.
func BenchmarkStreamingUpload128MiB(b *testing.B) {
	const size = 128 << 20
	for _, h2 := range []bool{false, true} {
		name := "HTTP1"
		if h2 {
			name = "HTTP2"
		}
		b.Run(name, func(b *testing.B) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, err := io.Copy(io.Discard, r.Body)
				if err != nil || n != size {
					http.Error(w, "short body: "+strconv.FormatInt(n, 10), http.StatusBadRequest)
				}
			}))
			srv.EnableHTTP2 = h2
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{sharedPKI(b).serverCert()}}
			srv.Config.ErrorLog = testutil.QuietLog()
			srv.StartTLS()
			b.Cleanup(srv.Close)
			c, _ := rtNewClient(b, testConfig(b))
			url := testutil.HostURL(srv, hostAPI, "/upload")

			upload := func() {
				req, err := http.NewRequestWithContext(b.Context(), http.MethodPut, url, io.NopCloser(&rtPatternReader{size: size}))
				if err != nil {
					b.Fatal(err)
				}
				req.ContentLength = size
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("got status %d, want 200", resp.StatusCode)
				}
			}
			upload() // connection and handshake outside the measurement

			var before, after runtime.MemStats
			b.SetBytes(size)
			b.ReportAllocs()
			runtime.ReadMemStats(&before)
			ops := 0
			for b.Loop() {
				upload()
				ops++
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(ops)/(1<<20), "MiB-alloc/op")
		})
	}
}
