package securehttp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/securehttp/securehttp/internal/testutil"
)

// tokPlainListener is a plain-HTTP server on 127.0.0.1 that counts the
// connections it accepts.
func tokPlainListener(t *testing.T) (*testutil.CountingListener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &testutil.CountingListener{Listener: ln}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "plain")
	}), ErrorLog: testutil.QuietLog()}
	go srv.Serve(cl)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return cl, port
}

// tokCloseTracker is a request body that records whether it was closed.
type tokCloseTracker struct {
	io.Reader
	closed atomic.Bool
}

func (c *tokCloseTracker) Close() error { c.closed.Store(true); return nil }

func TestBearerScope(t *testing.T) {
	t.Parallel()
	all := []string{hostAPI, hostSub, hostOther, "127.0.0.1"}
	for _, tt := range []struct {
		name  string
		hosts []string
		want  []string // the hosts that must receive the token
	}{
		{"exact", []string{hostAPI}, []string{hostAPI}},
		{"exact, other case and trailing dot", []string{"API.Test."}, []string{hostAPI}},
		{"one label", []string{"*.api.test"}, []string{hostSub}},
		{"any depth", []string{"**.api.test"}, []string{hostAPI, hostSub}},
		{"IP address", []string{"127.0.0.1"}, []string{"127.0.0.1"}},
		{"two hosts", []string{hostOther, hostSub}, []string{hostOther, hostSub}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := tokOpaque("scope")
			e := tokSetup(t, tokNewClock(), &Bearer{Store: NewMemoryStore(Token{Value: tok}), Hosts: tt.hosts}, nil)
			for _, host := range all {
				url := e.url(host, "/")
				if host == "127.0.0.1" {
					url = e.srv.URL + "/"
				}
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				if status, _, err := tokDo(e.client, req); err != nil || status != http.StatusOK {
					t.Fatalf("GET %s: got status %d and error %v, want 200", host, status, err)
				}
			}
			got := map[string]string{}
			for _, h := range e.rec.all() {
				got[h.host] = h.auth
			}
			for _, host := range all {
				want := ""
				if slices.Contains(tt.want, host) {
					want = tokBearer(tok)
				}
				if got[host] != want {
					t.Errorf("%s received Authorization %q, want %q", host, got[host], want)
				}
			}
		})
	}
}

func TestBearerRedirects(t *testing.T) {
	t.Parallel()
	tok := tokOpaque("redirect")
	var e *tokEnv
	e = tokSetup(t, tokNewClock(), &Bearer{Store: NewMemoryStore(Token{Value: tok}), Hosts: []string{hostAPI}},
		func(w http.ResponseWriter, r *http.Request, _ tokHit) {
			to := map[string]struct {
				host, path string
				code       int
			}{
				"/a-b":      {hostOther, "/end", http.StatusFound},
				"/a-b-a":    {hostOther, "/b-a", http.StatusFound},
				"/b-a":      {hostAPI, "/end", http.StatusFound},
				"/307":      {hostOther, "/end", http.StatusTemporaryRedirect},
				"/308":      {hostOther, "/end", http.StatusPermanentRedirect},
				"/307-same": {hostAPI, "/end", http.StatusTemporaryRedirect},
			}
			if next, ok := to[r.URL.Path]; ok {
				http.Redirect(w, r, e.url(next.host, next.path), next.code)
				return
			}
			io.WriteString(w, "end")
		})

	type hop struct {
		host, path string
		token      bool
		body       string
	}
	for _, tt := range []struct {
		name, method, path, body string
		want                     []hop
	}{
		{"a to b", http.MethodGet, "/a-b", "", []hop{
			{hostAPI, "/a-b", true, ""}, {hostOther, "/end", false, ""}}},
		{"a to b to a", http.MethodGet, "/a-b-a", "", []hop{
			{hostAPI, "/a-b-a", true, ""}, {hostOther, "/b-a", false, ""}, {hostAPI, "/end", true, ""}}},
		{"307 with a body to b", http.MethodPost, "/307", "body-307", []hop{
			{hostAPI, "/307", true, "body-307"}, {hostOther, "/end", false, "body-307"}}},
		{"308 with a body to b", http.MethodPut, "/308", "body-308", []hop{
			{hostAPI, "/308", true, "body-308"}, {hostOther, "/end", false, "body-308"}}},
		{"307 with a body to a", http.MethodPost, "/307-same", "body-same", []hop{
			{hostAPI, "/307-same", true, "body-same"}, {hostAPI, "/end", true, "body-same"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the subtests share the recorder.
			before := e.rec.count()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body) // sets GetBody
			}
			req, _ := http.NewRequest(tt.method, e.url(hostAPI, tt.path), body)
			status, _, err := tokDo(e.client, req)
			if err != nil || status != http.StatusOK {
				t.Fatalf("got status %d and error %v, want 200", status, err)
			}
			hits := e.rec.all()[before:]
			if len(hits) != len(tt.want) {
				t.Fatalf("server got %d hops, want %d: %+v", len(hits), len(tt.want), hits)
			}
			for i, w := range tt.want {
				h := hits[i]
				wantAuth := ""
				if w.token {
					wantAuth = tokBearer(tok)
				}
				if h.host != w.host || h.path != w.path || h.auth != wantAuth || h.body != w.body {
					t.Errorf("hop %d: got %s%s with Authorization %q and body %q, want %s%s with %q and %q",
						i, h.host, h.path, h.auth, h.body, w.host, w.path, wantAuth, w.body)
				}
			}
		})
	}
}

func TestBearerDowngradeRedirect(t *testing.T) {
	t.Parallel()
	plain, port := tokPlainListener(t)
	tok := tokOpaque("downgrade")
	refresh, calls := tokCounted(tokStatic(tok))
	e := tokSetup(t, tokNewClock(), &Bearer{Refresh: refresh, Hosts: []string{hostAPI}},
		func(w http.ResponseWriter, r *http.Request, _ tokHit) {
			http.Redirect(w, r, "http://"+net.JoinHostPort(hostAPI, port)+"/stolen", http.StatusTemporaryRedirect)
		})

	// A plain request to a bearer host never gets a token, nor a connection.
	resp, err := e.client.Get("http://" + net.JoinHostPort(hostAPI, port) + "/")
	if resp != nil {
		resp.Body.Close()
	}
	if !errors.Is(err, ErrInsecureScheme) {
		t.Fatalf("plain GET: got error %v, want ErrInsecureScheme", err)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("plain GET: Refresh called %d times, want 0", n)
	}

	req, _ := http.NewRequest(http.MethodPost, e.url(hostAPI, "/start"), strings.NewReader("body"))
	resp, err = e.client.Do(req)
	if resp != nil {
		resp.Body.Close()
		t.Fatalf("downgrade: got a response with status %d, want none", resp.StatusCode)
	}
	if !errors.Is(err, ErrInsecureScheme) {
		t.Fatalf("downgrade: got error %v, want ErrInsecureScheme", err)
	}
	if got := e.rec.auths(); !slices.Equal(got, []string{tokBearer(tok)}) {
		t.Fatalf("https server got Authorization %q, want only the first hop with the token", got)
	}
	if n := plain.N.Load(); n != 0 {
		t.Fatalf("the plain listener accepted %d connections, want 0", n)
	}
}

func TestBearerConfigErrors(t *testing.T) {
	t.Parallel()
	store := NewMemoryStore(Token{Value: "t"})
	for _, tt := range []struct {
		name      string
		bearer    Bearer
		wantField string // "" for a valid Bearer
	}{
		{"no hosts", Bearer{Store: store}, "Bearer.Hosts"},
		{"empty hosts", Bearer{Store: store, Hosts: []string{}}, "Bearer.Hosts"},
		{"wildcard over a public suffix", Bearer{Store: store, Hosts: []string{"*.com"}}, "Bearer.Hosts[0]"},
		{"deep wildcard over a public suffix", Bearer{Store: store, Hosts: []string{hostAPI, "**.co.uk"}}, "Bearer.Hosts[1]"},
		{"deep wildcard over a TLD", Bearer{Store: store, Hosts: []string{"**.uk"}}, "Bearer.Hosts[0]"},
		{"bare wildcard", Bearer{Store: store, Hosts: []string{"*"}}, "Bearer.Hosts[0]"},
		{"wildcard inside a label", Bearer{Store: store, Hosts: []string{"api*.example.com"}}, "Bearer.Hosts[0]"},
		{"host with port 0", Bearer{Store: store, Hosts: []string{"api.example.com:0"}}, "Bearer.Hosts[0]"},
		{"host with a path", Bearer{Store: store, Hosts: []string{"api.example.com/v1"}}, "Bearer.Hosts[0]"},
		{"URL", Bearer{Store: store, Hosts: []string{"https://api.example.com"}}, "Bearer.Hosts[0]"},
		{"empty host", Bearer{Store: store, Hosts: []string{""}}, "Bearer.Hosts[0]"},
		{"wildcard over an IP", Bearer{Store: store, Hosts: []string{"*.127.0.0.1"}}, "Bearer.Hosts[0]"},
		{"neither store nor refresh", Bearer{Hosts: []string{hostAPI}}, "Bearer"},
		{"negative window", Bearer{Store: store, Hosts: []string{hostAPI}, RefreshWindow: -time.Second}, "Bearer.RefreshWindow"},
		{"negative timeout", Bearer{Store: store, Hosts: []string{hostAPI}, RefreshTimeout: -time.Second}, "Bearer.RefreshTimeout"},
		{"wildcard below a public suffix", Bearer{Store: store, Hosts: []string{"*.example.co.uk", "**.api.test"}}, ""},
		{"refresh only", Bearer{Refresh: tokStaticT("t"), Hosts: []string{hostAPI}}, ""},
		{"host with a port", Bearer{Store: store, Hosts: []string{"api.example.com:443", "[::1]:8443"}}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			b := tt.bearer
			cfg.Bearer = &b
			client, err := NewClient(cfg)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				client.CloseIdleConnections()
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got error %v, want a *ConfigError", err)
			}
			if ce.Field != tt.wantField {
				t.Fatalf("got Field %q, want %q", ce.Field, tt.wantField)
			}
			if client != nil {
				t.Fatalf("got a client and an error, want only the error")
			}
		})
	}
}

func TestBearerCallerAuthorization(t *testing.T) {
	t.Parallel()
	tok := tokOpaque("mine")
	refresh, calls := tokCounted(tokStatic(tok))
	e := tokSetup(t, tokNewClock(), &Bearer{Refresh: refresh, Hosts: []string{hostAPI}}, nil)

	req, _ := http.NewRequest(http.MethodGet, e.url(hostAPI, "/"), nil)
	req.Header.Set("Authorization", "Basic dXNlcjpwdw==")
	if status, _, err := tokDo(e.client, req); err != nil || status != http.StatusOK {
		t.Fatalf("got status %d and error %v, want 200", status, err)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("Refresh called %d times for a request with its own Authorization, want 0", n)
	}

	// A request without one gets the token on a copy: the caller's request
	// is not modified.
	req, _ = http.NewRequest(http.MethodGet, e.url(hostAPI, "/"), nil)
	if status, _, err := tokDo(e.client, req); err != nil || status != http.StatusOK {
		t.Fatalf("got status %d and error %v, want 200", status, err)
	}
	if got := req.Header.Get("Authorization"); got != "" {
		t.Fatalf("the caller's request now has Authorization %q, want none", got)
	}
	want := []string{"Basic dXNlcjpwdw==", tokBearer(tok)}
	if got := e.rec.auths(); !slices.Equal(got, want) {
		t.Fatalf("server got Authorization %q, want %q", got, want)
	}
}

func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		stored     func(t *testing.T, now time.Time) string
		wantStored bool // the stored token is used without a refresh
		forever    bool // and still used a century later
	}{
		{"fresh JWT", func(t *testing.T, now time.Time) string {
			return tokFresh(t, now, time.Hour)
		}, true, false},
		{"expired JWT", func(t *testing.T, now time.Time) string {
			return tokJWT(t, tokKey(), jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(-time.Minute))})
		}, false, false},
		{"JWT expiring within the skew margin", func(t *testing.T, now time.Time) string {
			return tokJWT(t, tokKey(), jwt.RegisteredClaims{
				IssuedAt: jwt.NewNumericDate(now.Add(-time.Hour)), ExpiresAt: jwt.NewNumericDate(now.Add(2 * time.Second))})
		}, false, false},
		{"JWT not yet valid", func(t *testing.T, now time.Time) string {
			return tokJWT(t, tokKey(), jwt.RegisteredClaims{
				NotBefore: jwt.NewNumericDate(now.Add(time.Hour)), ExpiresAt: jwt.NewNumericDate(now.Add(2 * time.Hour))})
		}, false, false},
		{"JWT valid within the skew margin of nbf", func(t *testing.T, now time.Time) string {
			return tokJWT(t, tokKey(), jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now),
				NotBefore: jwt.NewNumericDate(now.Add(2 * time.Second)), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))})
		}, true, false},
		{"JWT without exp", func(t *testing.T, now time.Time) string {
			return tokJWT(t, tokKey(), jwt.RegisteredClaims{Subject: "no-exp"})
		}, true, true},
		{"opaque token", func(*testing.T, time.Time) string { return tokOpaque("opaque") }, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := tokNewClock()
			stored := tt.stored(t, clk.Now())
			fresh := tokFresh(t, clk.Now(), 100*365*24*time.Hour)
			refresh, calls := tokCounted(tokStatic(fresh))
			store := NewMemoryStore(Token{Value: stored})
			e := tokSetup(t, clk, &Bearer{Store: store, Refresh: refresh, Hosts: []string{hostAPI}}, nil)

			want, wantCalls := tokBearer(stored), int64(0)
			if !tt.wantStored {
				want, wantCalls = tokBearer(fresh), 1
			}
			if got := e.tokMustGet(t); got != want {
				t.Fatalf("server got %q, want %q", got, want)
			}
			if n := calls.Load(); n != wantCalls {
				t.Fatalf("Refresh called %d times, want %d", n, wantCalls)
			}
			if saved, _ := store.Load(context.Background()); saved.Value != strings.TrimPrefix(want, "Bearer ") {
				t.Fatalf("store holds %q, want the token in use %q", saved, want)
			}
			if tt.forever {
				clk.Add(100 * 365 * 24 * time.Hour)
				if got := e.tokMustGet(t); got != want {
					t.Fatalf("a century later: server got %q, want %q", got, want)
				}
				if n := calls.Load(); n != 0 {
					t.Fatalf("a century later: Refresh called %d times, want 0", n)
				}
			}
		})
	}
}

// An opaque token, or a JWT without exp, is used until a server refuses it.
func TestTokenOpaqueUntil401(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		old  func(t *testing.T) string
	}{
		{"opaque", func(*testing.T) string { return tokOpaque("old") }},
		{"JWT without exp", func(t *testing.T) string { return tokJWT(t, tokKey(), jwt.RegisteredClaims{Subject: "s"}) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			old, fresh := tt.old(t), tokOpaque("new")
			refresh, calls := tokCounted(tokStatic(fresh))
			var refuse atomic.Bool
			e := tokSetup(t, tokNewClock(), &Bearer{Store: NewMemoryStore(Token{Value: old}), Refresh: refresh, Hosts: []string{hostAPI}},
				func(w http.ResponseWriter, r *http.Request, hit tokHit) {
					if refuse.Load() && hit.auth == tokBearer(old) {
						w.WriteHeader(http.StatusUnauthorized)
						return
					}
					io.WriteString(w, "ok")
				})
			e.clk.Add(100 * 365 * 24 * time.Hour)
			if got := e.tokMustGet(t); got != tokBearer(old) {
				t.Fatalf("server got %q, want the old token", got)
			}
			refuse.Store(true)
			status, _, err := e.get("/")
			if err != nil || status != http.StatusOK {
				t.Fatalf("got status %d and error %v, want 200 after a refresh", status, err)
			}
			want := []string{tokBearer(old), tokBearer(old), tokBearer(fresh)}
			if got := e.rec.auths(); !slices.Equal(got, want) {
				t.Fatalf("server got %q, want %q", got, want)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("Refresh called %d times, want 1", n)
			}
		})
	}
}

// Inside the refresh window one background refresh starts; it does not
// delay requests, which go on with the still-valid token.
func TestRefreshAheadDoesNotBlock(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	old := tokFresh(t, clk.Now(), 10*time.Minute) // default window: 1 min
	fresh := tokFresh(t, clk.Now(), time.Hour)
	called, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	refresh, calls := tokCounted(func(ctx context.Context) (string, error) {
		once.Do(func() { close(called) })
		select {
		case <-release:
			return fresh, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	store := NewMemoryStore(Token{Value: old})
	e := tokSetup(t, clk, &Bearer{Store: store, Refresh: refresh, Hosts: []string{hostAPI}}, nil)

	if got := e.tokMustGet(t); got != tokBearer(old) {
		t.Fatalf("server got %q, want the stored token", got)
	}
	clk.Add(10*time.Minute - 30*time.Second)
	if got := e.tokMustGet(t); got != tokBearer(old) {
		t.Fatalf("in the window: server got %q, want the old token", got)
	}
	tokWait(t, called, "background refresh")

	ctx, cancel := context.WithTimeout(context.Background(), tokPatience)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url(hostAPI, "/"), nil)
			if status, _, err := tokDo(e.client, req); err != nil || status != http.StatusOK {
				errs <- fmt.Errorf("got status %d and error %w, want 200", status, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("while Refresh blocks: %v", err)
	}
	for i, auth := range e.rec.auths() {
		if auth != tokBearer(old) {
			t.Fatalf("request %d carried %q, want the old token", i, auth)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("Refresh called %d times, want 1", n)
	}

	close(release)
	tokWaitIdle(t, e.tr)
	if got := e.tokMustGet(t); got != tokBearer(fresh) {
		t.Fatalf("after the refresh: server got %q, want the new token", got)
	}
	if saved, _ := store.Load(context.Background()); saved.Value != fresh {
		t.Fatalf("the store holds %q, want the refreshed token", saved)
	}
}

func TestRefreshWindow(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name            string
		window          time.Duration // Bearer.RefreshWindow
		lifetime        time.Duration
		outside, inside time.Duration // times before expiry: no refresh, then a refresh
	}{
		{"default, 10% of 10 min", 0, 10 * time.Minute, 2 * time.Minute, 50 * time.Second},
		{"default, capped at 5 min", 0, 2 * time.Hour, 6 * time.Minute, 4 * time.Minute},
		{"default, at least 30 s", 0, 2 * time.Minute, 40 * time.Second, 20 * time.Second},
		{"default, at most half the lifetime", 0, 40 * time.Second, 25 * time.Second, 15 * time.Second},
		{"configured", 2 * time.Minute, 10 * time.Minute, 3 * time.Minute, 90 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := tokNewClock()
			old := tokFresh(t, clk.Now(), tt.lifetime)
			fresh := tokFresh(t, clk.Now(), 10*tt.lifetime)
			refresh, calls := tokCounted(tokStatic(fresh))
			e := tokSetup(t, clk, &Bearer{Store: NewMemoryStore(Token{Value: old}), Refresh: refresh, Hosts: []string{hostAPI},
				RefreshWindow: tt.window}, nil)

			clk.Add(tt.lifetime - tt.outside)
			if got := e.tokMustGet(t); got != tokBearer(old) {
				t.Fatalf("before the window: server got %q, want the old token", got)
			}
			tokWaitIdle(t, e.tr)
			if n := calls.Load(); n != 0 {
				t.Fatalf("before the window: Refresh called %d times, want 0", n)
			}
			clk.Add(tt.outside - tt.inside)
			if got := e.tokMustGet(t); got != tokBearer(old) {
				t.Fatalf("in the window: server got %q, want the old token", got)
			}
			tokWaitIdle(t, e.tr)
			if n := calls.Load(); n != 1 {
				t.Fatalf("in the window: Refresh called %d times, want 1", n)
			}
			if got := e.tokMustGet(t); got != tokBearer(fresh) {
				t.Fatalf("after the refresh: server got %q, want the new token", got)
			}
		})
	}
}

// 1000 concurrent requests across an expiry cause exactly one Refresh, and
// every one of them carries the new token.
func TestRefreshSingleFlight1000(t *testing.T) {
	t.Parallel()
	const n = 1000
	clk := tokNewClock()
	old := tokFresh(t, clk.Now(), time.Minute)
	fresh := tokFresh(t, clk.Now(), time.Hour)
	var entered atomic.Int64
	refresh, calls := tokCounted(func(ctx context.Context) (string, error) {
		// Hold the refresh until every request has been sent off, so that
		// they overlap it; bounded, since the test must end by itself.
		deadline := time.Now().Add(3 * time.Second)
		for entered.Load() < n && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		return fresh, nil
	})
	e := tokSetup(t, clk, &Bearer{Store: NewMemoryStore(Token{Value: old}), Refresh: refresh, Hosts: []string{hostAPI}}, nil)
	if got := e.tokMustGet(t); got != tokBearer(old) {
		t.Fatalf("server got %q, want the old token", got)
	}
	clk.Add(2 * time.Minute)
	before := e.rec.count()

	ctx, cancel := context.WithTimeout(context.Background(), 4*tokPatience)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url(hostAPI, "/"), nil)
			entered.Add(1)
			if status, _, err := tokDo(e.client, req); err != nil || status != http.StatusOK {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d, error %v", status, err))
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed (first: %v), want none", f, n, firstErr.Load())
	}
	if c := calls.Load(); c != 1 {
		t.Fatalf("Refresh called %d times, want 1", c)
	}
	hits := e.rec.all()[before:]
	if len(hits) != n {
		t.Fatalf("server got %d requests, want %d", len(hits), n)
	}
	for i, h := range hits {
		if h.auth != tokBearer(fresh) {
			t.Fatalf("request %d carried %q, want the new token", i, h.auth)
		}
		if h.proto != 2 {
			t.Fatalf("request %d used HTTP/%d, want HTTP/2", i, h.proto)
		}
	}
}

// The server checks every token it receives against the test's clock:
// across several lifetimes, with background and blocking refreshes, none is
// expired.
func TestRefreshNeverSendsExpired(t *testing.T) {
	t.Parallel()
	const (
		lifetime = time.Minute
		step     = 8 * time.Second
		phases   = 30
		perPhase = 12
	)
	clk := tokNewClock()
	refresh, calls := tokCounted(func(context.Context) (string, error) {
		return tokFresh(t, clk.Now(), lifetime), nil
	})
	var expired atomic.Int64
	var seen sync.Map
	e := tokSetup(t, clk, &Bearer{Store: NewMemoryStore(Token{Value: tokFresh(t, clk.Now(), lifetime)}), Refresh: refresh,
		Hosts: []string{hostAPI}}, func(w http.ResponseWriter, r *http.Request, hit tokHit) {
		var c jwt.RegisteredClaims
		_, _, err := jwt.NewParser().ParseUnverified(strings.TrimPrefix(hit.auth, "Bearer "), &c)
		now := clk.Now()
		if err != nil || c.ExpiresAt == nil || !now.Before(c.ExpiresAt.Time) || (c.IssuedAt != nil && now.Before(c.IssuedAt.Time)) {
			expired.Add(1)
		}
		seen.Store(hit.auth, true)
		io.WriteString(w, "ok")
	})
	for phase := range phases {
		var wg sync.WaitGroup
		errs := make(chan error, perPhase)
		for range perPhase {
			wg.Go(func() {
				if status, _, err := e.get("/"); err != nil || status != http.StatusOK {
					errs <- fmt.Errorf("got status %d and error %w, want 200", status, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("phase %d: %v", phase, err)
		}
		// A refresh started in this phase ends before the clock moves on,
		// so that it mints its token at this phase's time.
		tokWaitIdle(t, e.tr)
		clk.Add(step)
	}
	if n := expired.Load(); n != 0 {
		t.Fatalf("server got %d expired or invalid tokens, want 0", n)
	}
	distinct := 0
	seen.Range(func(any, any) bool { distinct++; return true })
	if c := calls.Load(); c < phases*int64(step)/int64(lifetime) || distinct < 4 {
		t.Fatalf("got %d refreshes and %d distinct tokens over %v of %v tokens, want at least %d and 4",
			c, distinct, phases*step, lifetime, phases*int64(step)/int64(lifetime))
	}
}

// A failed refresh while the token is still valid: the request succeeds
// with the old token, a warning is logged, and the next attempt waits.
func TestRefreshFailureWithValidToken(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	old := tokFresh(t, clk.Now(), 10*time.Minute)
	fresh := tokFresh(t, clk.Now(), time.Hour)
	errBoom := errors.New("identity provider down")
	var failing atomic.Bool
	failing.Store(true)
	refresh, calls := tokCounted(func(context.Context) (string, error) {
		if failing.Load() {
			return "", errBoom
		}
		return fresh, nil
	})
	e := tokSetup(t, clk, &Bearer{Store: NewMemoryStore(Token{Value: old}), Refresh: refresh, Hosts: []string{hostAPI}}, nil)
	if got := e.tokMustGet(t); got != tokBearer(old) {
		t.Fatalf("server got %q, want the old token", got)
	}
	clk.Add(10*time.Minute - 40*time.Second) // in the window, 35 s of validity left

	// expect sends a request, waits for any refresh it started, and checks
	// the token sent and the number of Refresh calls so far.
	expect := func(step string, wantTok string, wantCalls int64) {
		t.Helper()
		if got := e.tokMustGet(t); got != tokBearer(wantTok) {
			t.Fatalf("%s: server got %q, want %q", step, got, tokBearer(wantTok))
		}
		tokWaitIdle(t, e.tr)
		if n := calls.Load(); n != wantCalls {
			t.Fatalf("%s: Refresh called %d times, want %d", step, n, wantCalls)
		}
	}
	expect("first try", old, 1)
	if n := strings.Count(e.logs.String(), "level=WARN"); n != 1 {
		t.Fatalf("got %d warnings after a failed refresh, want 1; log:\n%s", n, e.logs.String())
	}
	expect("at once after the failure", old, 1)
	clk.Add(time.Second)
	expect("1 s later", old, 2)
	clk.Add(time.Second)
	expect("1 s after the second failure", old, 2) // the wait has doubled
	clk.Add(time.Second)
	expect("2 s after the second failure", old, 3)
	failing.Store(false)
	clk.Add(4 * time.Second)
	expect("4 s after the third failure", old, 4)
	expect("after a successful refresh", fresh, 4)
}

// While the current token is usable, the backoff after failed refreshes
// never runs past the moment it stops being usable: the refresh is tried
// again before then, however many failures came before, so that a token
// endpoint that recovers late in the token's life costs no request.
func TestRefreshRetriedBeforeTokenStopsBeingUsable(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	// 10 s of life: the refresh is due after 5 s, and the token stops being
	// usable after 9 s (the last tenth is kept for clock skew).
	old := tokFresh(t, clk.Now(), 10*time.Second)
	unusable := clk.Now().Add(9 * time.Second)
	fresh := tokFresh(t, clk.Now(), time.Hour)
	var failing atomic.Bool
	failing.Store(true)
	refresh, calls := tokCounted(func(context.Context) (string, error) {
		if failing.Load() {
			return "", errors.New("token endpoint down")
		}
		return fresh, nil
	})
	e := tokSetup(t, clk, &Bearer{Store: NewMemoryStore(Token{Value: old}), Refresh: refresh, Hosts: []string{hostAPI}}, nil)
	e.tokMustGet(t)
	for i, step := range []struct {
		advance   time.Duration
		wantCalls int64
	}{
		{5 * time.Second, 1}, // due: the first refresh fails, the next is 1 s later
		{time.Second, 2},     // 6 s: fails, the next is 2 s later
		{2 * time.Second, 3}, // 8 s: fails; 4 s more would be past 9 s
	} {
		clk.Add(step.advance)
		if got := e.tokMustGet(t); got != tokBearer(old) {
			t.Fatalf("step %d: server got %q, want the old token", i, got)
		}
		tokWaitIdle(t, e.tr)
		if n := calls.Load(); n != step.wantCalls {
			t.Fatalf("step %d: got %d Refresh calls, want %d", i, n, step.wantCalls)
		}
	}
	// step sends a request 20 ms later, with the old token or the new,
	// before the old one stops being usable.
	step := func() string {
		t.Helper()
		clk.Add(20 * time.Millisecond)
		if !clk.Now().Before(unusable) {
			t.Fatalf("got %d Refresh calls and the old token in use at 9 s, when it stops being usable; want the refresh retried and the new token in use before", calls.Load())
		}
		got := e.tokMustGet(t)
		tokWaitIdle(t, e.tr)
		return got
	}
	for calls.Load() == 3 {
		if got := step(); got != tokBearer(old) {
			t.Fatalf("server got %q, want the old token", got)
		}
	}
	// The endpoint is back: a retry before 9 s gets the new token.
	failing.Store(false)
	for {
		if step() == tokBearer(fresh) {
			break
		}
	}
}

// A request that finds the token no longer usable refreshes it, rather than
// get the error of a refresh that failed while the token was still usable;
// once a refresh has failed with no usable token, the backoff holds.
func TestRefreshAfterTokenStopsBeingUsable(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	old := tokFresh(t, clk.Now(), 10*time.Second)
	errDown := errors.New("token endpoint down")
	var failing atomic.Bool
	failing.Store(true)
	refresh, calls := tokCounted(func(context.Context) (string, error) {
		if failing.Load() {
			return "", errDown
		}
		return tokFresh(t, clk.Now(), time.Hour), nil
	})
	e := tokSetup(t, clk, &Bearer{Store: NewMemoryStore(Token{Value: old}), Refresh: refresh, Hosts: []string{hostAPI}}, nil)
	e.tokMustGet(t)
	// Refreshes fail from 5 s on, at 5, 6 and 8 s, with the token usable.
	for _, d := range []time.Duration{5 * time.Second, time.Second, 2 * time.Second} {
		clk.Add(d)
		e.tokMustGet(t)
		tokWaitIdle(t, e.tr)
	}
	// 9 s: the token is no longer usable and the last failure asked for
	// 4 s of backoff. The request refreshes, and this refresh fails too.
	clk.Add(time.Second)
	before := calls.Load()
	if _, _, err := e.get("/"); !errors.Is(err, errDown) {
		t.Fatalf("got error %v, want the refresh's own error", err)
	}
	if n := calls.Load() - before; n != 1 {
		t.Fatalf("got %d Refresh calls for the request without a usable token, want 1", n)
	}
	// That failure, with no usable token, backs off: the next request
	// gets its error at once, without a call.
	if _, _, err := e.get("/"); !errors.Is(err, errDown) {
		t.Fatalf("got error %v, want the last refresh's error", err)
	}
	if n := calls.Load() - before; n != 1 {
		t.Fatalf("got %d Refresh calls during the backoff, want 1", n)
	}
	// After the backoff, the endpoint is back.
	failing.Store(false)
	clk.Add(maxRefreshBackoff)
	e.tokMustGet(t)
}

// A refresh that gives a token already inside its window (here, a window
// longer than the lifetime) is asked again after a growing wait, not on
// every request.
func TestRefreshBackoffWhenStillDue(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	refresh, calls := tokCounted(func(context.Context) (string, error) {
		return tokFresh(t, clk.Now(), 5*time.Minute), nil
	})
	e := tokSetup(t, clk, &Bearer{Store: NewMemoryStore(Token{Value: tokFresh(t, clk.Now(), 5*time.Minute)}), Refresh: refresh,
		Hosts: []string{hostAPI}, RefreshWindow: 10 * time.Minute}, nil)
	// The first request takes the stored token, already due: the first
	// wait is 1 s, then 2 s, then 4 s.
	for i, step := range []struct {
		advance   time.Duration
		wantCalls int64
	}{
		{0, 0}, {0, 0}, {time.Second, 1}, {time.Second, 1}, {time.Second, 2},
		{3 * time.Second, 2}, {time.Second, 3}, {time.Second, 3},
	} {
		clk.Add(step.advance)
		e.tokMustGet(t)
		tokWaitIdle(t, e.tr)
		if n := calls.Load(); n != step.wantCalls {
			t.Fatalf("step %d: Refresh called %d times, want %d", i, n, step.wantCalls)
		}
	}
}

func TestRefreshFailureWithoutValidToken(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Second)
	errBoom := errors.New("identity provider down")
	for _, tt := range []struct {
		name    string
		result  func(t *testing.T) (string, error)
		wantErr error // besides ErrNoToken, which every case matches
	}{
		{"Refresh error", func(*testing.T) (string, error) { return "", errBoom }, errBoom},
		{"empty token", func(*testing.T) (string, error) { return "", nil }, nil},
		{"expired JWT", func(t *testing.T) (string, error) {
			return tokJWT(t, tokKey(), jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(-time.Second))}), nil
		}, nil},
		{"JWT not yet valid", func(t *testing.T) (string, error) {
			return tokJWT(t, tokKey(), jwt.RegisteredClaims{NotBefore: jwt.NewNumericDate(now.Add(time.Hour))}), nil
		}, nil},
		{"header injection", func(*testing.T) (string, error) { return "a b\r\nX: y", nil }, nil},
		{"scheme included", func(*testing.T) (string, error) { return "Bearer abc", nil }, nil},
		{"padding only", func(*testing.T) (string, error) { return "===", nil }, nil},
		{"NUL byte", func(*testing.T) (string, error) { return "abc\x00def", nil }, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := tokNewClock()
			clk.Set(now)
			refresh, calls := tokCounted(func(context.Context) (string, error) { return tt.result(t) })
			e := tokSetup(t, clk, &Bearer{Refresh: refresh, Hosts: []string{hostAPI}}, nil)
			body := &tokCloseTracker{Reader: strings.NewReader("body")}
			req, _ := http.NewRequest(http.MethodPost, e.url(hostAPI, "/"), body)
			_, _, err := tokDo(e.client, req)
			var re *RefreshError
			if !errors.As(err, &re) {
				t.Fatalf("got error %v, want a *RefreshError", err)
			}
			if !errors.Is(err, ErrNoToken) {
				t.Fatalf("got error %v, want it to match ErrNoToken", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want it to wrap %v", err, tt.wantErr)
			}
			if n := e.rec.count(); n != 0 {
				t.Fatalf("server got %d requests, want 0", n)
			}
			if !body.closed.Load() {
				t.Fatal("the request body was not closed")
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("Refresh called %d times, want 1", n)
			}
		})
	}
}

// A caller that gives up does not fail the others waiting for the same
// refresh, which runs under its own bounded context.
func TestRefreshCancelledCaller(t *testing.T) {
	t.Parallel()
	fresh := tokOpaque("fresh")
	called, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	type ctxState struct {
		err         error
		hasDeadline bool
	}
	refreshCtx := make(chan ctxState, 1)
	refresh, calls := tokCounted(func(ctx context.Context) (string, error) {
		once.Do(func() { close(called) })
		select {
		case <-release:
		case <-ctx.Done():
		}
		_, ok := ctx.Deadline()
		refreshCtx <- ctxState{ctx.Err(), ok}
		return fresh, nil
	})
	e := tokSetup(t, tokNewClock(), &Bearer{Refresh: refresh, Hosts: []string{hostAPI}}, nil)

	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctxA, http.MethodGet, e.url(hostAPI, "/a"), nil)
		_, _, err := tokDo(e.client, req)
		errA <- err
	}()
	tokWait(t, called, "Refresh")
	errB := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), tokPatience)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url(hostAPI, "/b"), nil)
		status, _, err := tokDo(e.client, req)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("status %d", status)
		}
		errB <- err
	}()
	cancelA()
	if err := tokWait(t, errA, "cancelled request"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: got error %v, want context.Canceled", err)
	}
	close(release)
	if err := tokWait(t, errB, "other request"); err != nil {
		t.Fatalf("other request: got error %v, want none", err)
	}
	if st := tokWait(t, refreshCtx, "Refresh's context"); st.err != nil || !st.hasDeadline {
		t.Fatalf("Refresh's context: got error %v and deadline %v, want no error and a deadline", st.err, st.hasDeadline)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("Refresh called %d times, want 1", n)
	}
	if got := e.rec.all(); len(got) != 1 || got[0].path != "/b" || got[0].auth != tokBearer(fresh) {
		t.Fatalf("server got %+v, want only /b with the new token", got)
	}
}

func TestRefreshTimeout(t *testing.T) {
	t.Parallel()
	refresh := func(ctx context.Context) (string, error) {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(tokPatience):
			return "late", nil
		}
	}
	e := tokSetup(t, tokNewClock(), &Bearer{Refresh: refreshOf(refresh), Hosts: []string{hostAPI}, RefreshTimeout: 20 * time.Millisecond}, nil)
	_, _, err := e.get("/")
	tokWantRefused(t, err, e.rec.count(), context.DeadlineExceeded)
}

// Before calling Refresh, the store is read again: another process sharing
// the token file may have refreshed already.
func TestRefreshRereadsFileStore(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		advance time.Duration // from the old token's issue
		inline  bool          // the request waits for the new token
	}{
		{"expired", 11 * time.Minute, true},
		{"in the window", 10*time.Minute - 30*time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := t.TempDir() + "/token"
			mine, err := NewFileStore(path)
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := NewFileStore(path) // another process
			if err != nil {
				t.Fatal(err)
			}
			clk := tokNewClock()
			ctx := context.Background()
			old := tokFresh(t, clk.Now(), 10*time.Minute)
			if err := theirs.Save(ctx, Token{Value: old}); err != nil {
				t.Fatal(err)
			}
			var next atomic.Value
			refresh, calls := tokCounted(func(context.Context) (string, error) { return next.Load().(string), nil })
			e := tokSetup(t, clk, &Bearer{Store: mine, Refresh: refresh, Hosts: []string{hostAPI}}, nil)
			if got := e.tokMustGet(t); got != tokBearer(old) {
				t.Fatalf("server got %q, want the stored token", got)
			}

			clk.Add(tt.advance)
			theirsFresh := tokFresh(t, clk.Now(), time.Hour)
			if err := theirs.Save(ctx, Token{Value: theirsFresh}); err != nil {
				t.Fatal(err)
			}
			want := theirsFresh
			if !tt.inline {
				want = old
			}
			if got := e.tokMustGet(t); got != tokBearer(want) {
				t.Fatalf("server got %q, want %q", got, tokBearer(want))
			}
			tokWaitIdle(t, e.tr)
			if got := e.tokMustGet(t); got != tokBearer(theirsFresh) {
				t.Fatalf("server got %q, want the other process's token", got)
			}
			if n := calls.Load(); n != 0 {
				t.Fatalf("Refresh called %d times, want 0", n)
			}

			// Once that one expires too, Refresh runs and its token is saved
			// where the other process sees it.
			clk.Add(2 * time.Hour)
			ours := tokFresh(t, clk.Now(), time.Hour)
			next.Store(ours)
			if got := e.tokMustGet(t); got != tokBearer(ours) {
				t.Fatalf("server got %q, want the refreshed token", got)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("Refresh called %d times, want 1", n)
			}
			if got, err := theirs.Load(ctx); err != nil || got.Value != ours {
				t.Fatalf("the other process loads %q and error %v, want the refreshed token", got, err)
			}
		})
	}
}

// tokStoreFunc is a TokenStore whose methods tests supply.
type tokStoreFunc struct {
	load func(context.Context) (string, error)
	save func(context.Context, string) error
}

func (s tokStoreFunc) Load(ctx context.Context) (Token, error) {
	v, err := s.load(ctx)
	return Token{Value: v}, err
}
func (s tokStoreFunc) Save(ctx context.Context, tok Token) error {
	return s.save(ctx, tok.Value)
}

func TestRefreshStoreFailures(t *testing.T) {
	t.Parallel()
	errLoad, errSave := errors.New("load failed"), errors.New("save failed")
	fresh := tokOpaque("fresh")
	for _, tt := range []struct {
		name    string
		store   tokStoreFunc
		refresh bool
		wantErr error // nil: the request succeeds with fresh
	}{
		{"load fails, refresh works", tokStoreFunc{
			load: func(context.Context) (string, error) { return "", errLoad },
			save: func(context.Context, string) error { return nil }}, true, nil},
		{"save fails", tokStoreFunc{
			load: func(context.Context) (string, error) { return "", nil },
			save: func(context.Context, string) error { return errSave }}, true, nil},
		{"load fails, no refresh", tokStoreFunc{
			load: func(context.Context) (string, error) { return "", errLoad },
			save: func(context.Context, string) error { return nil }}, false, errLoad},
		{"empty store, no refresh", tokStoreFunc{
			load: func(context.Context) (string, error) { return "", nil },
			save: func(context.Context, string) error { return nil }}, false, ErrNoToken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &Bearer{Store: tt.store, Hosts: []string{hostAPI}}
			if tt.refresh {
				b.Refresh = tokStaticT(fresh)
			}
			e := tokSetup(t, tokNewClock(), b, nil)
			status, _, err := e.get("/")
			if tt.wantErr == nil {
				if err != nil || status != http.StatusOK {
					t.Fatalf("got status %d and error %v, want 200", status, err)
				}
				if got := e.rec.auths(); !slices.Equal(got, []string{tokBearer(fresh)}) {
					t.Fatalf("server got %q, want the refreshed token", got)
				}
			} else {
				tokWantRefused(t, err, e.rec.count(), tt.wantErr)
			}
			// Each of these failures is worth a warning.
			if !strings.Contains(e.logs.String(), "level=WARN") {
				t.Fatalf("got no warning, want one; log:\n%s", e.logs.String())
			}
		})
	}
}

func TestBearer401Recovery(t *testing.T) {
	t.Parallel()
	const (
		invalidToken = `Bearer error="invalid_token"`
		payload      = "payload: replay me"
	)
	type bodyKind int
	const (
		noBody bodyKind = iota
		withGetBody
		withoutGetBody
	)
	for _, tt := range []struct {
		name       string
		method     string
		body       bodyKind
		challenge  string // WWW-Authenticate on the 401
		acceptNew  bool   // the server accepts the refreshed token
		wantStatus int
		wantNew    bool  // the request is replayed with the new token
		wantCalls  int64 // Refresh calls
		nextNew    bool  // a later GET carries the new token first
	}{
		{"GET, invalid_token", http.MethodGet, noBody, invalidToken, true, 200, true, 1, true},
		{"GET, invalid_token with other params", http.MethodGet, noBody,
			`Bearer realm="api", error="invalid_token", error_description="expired, sorry"`, true, 200, true, 1, true},
		{"GET, Bearer challenge without error", http.MethodGet, noBody, `Bearer realm="api"`, true, 200, true, 1, true},
		{"GET, bare Bearer challenge", http.MethodGet, noBody, `Bearer`, true, 200, true, 1, true},
		{"GET, no challenge", http.MethodGet, noBody, "", true, 200, true, 1, true},
		{"GET, insufficient_scope", http.MethodGet, noBody, `Bearer error="insufficient_scope", scope="admin"`, true, 401, false, 0, false},
		{"GET, invalid_request", http.MethodGet, noBody, `Bearer error="invalid_request"`, true, 401, false, 0, false},
		{"GET, Basic challenge", http.MethodGet, noBody, `Basic realm="api"`, true, 401, false, 0, false},
		// One header line may hold several challenges (RFC 9110 section
		// 11.6.1), and proxies join separate lines into one.
		{"GET, Basic then Bearer invalid_token in one line", http.MethodGet, noBody,
			`Basic realm="api", Bearer error="invalid_token"`, true, 200, true, 1, true},
		{"GET, Basic then Bearer insufficient_scope in one line", http.MethodGet, noBody,
			`Basic realm="api", Bearer error="insufficient_scope"`, true, 401, false, 0, false},
		{"POST with GetBody", http.MethodPost, withGetBody, invalidToken, true, 200, true, 1, true},
		{"PUT with GetBody", http.MethodPut, withGetBody, invalidToken, true, 200, true, 1, true},
		{"POST without GetBody", http.MethodPost, withoutGetBody, invalidToken, true, 401, false, 0, true},
		{"second 401 returned as is", http.MethodPost, withGetBody, invalidToken, false, 401, true, 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			old, fresh := tokOpaque("old"), tokOpaque("fresh")
			refresh, calls := tokCounted(tokStatic(fresh))
			e := tokSetup(t, tokNewClock(), &Bearer{Store: NewMemoryStore(Token{Value: old}), Refresh: refresh, Hosts: []string{hostAPI}},
				func(w http.ResponseWriter, r *http.Request, hit tokHit) {
					if tt.acceptNew && hit.auth == tokBearer(fresh) {
						io.WriteString(w, "ok")
						return
					}
					if tt.challenge != "" {
						w.Header().Set("WWW-Authenticate", tt.challenge)
					}
					w.WriteHeader(http.StatusUnauthorized)
					io.WriteString(w, "denied")
				})
			var body io.Reader
			switch tt.body {
			case withGetBody:
				body = strings.NewReader(payload)
			case withoutGetBody:
				body = io.NopCloser(strings.NewReader(payload))
			}
			req, _ := http.NewRequest(tt.method, e.url(hostAPI, "/"), body)
			if (req.GetBody != nil) != (tt.body == withGetBody) {
				t.Fatalf("got GetBody %v, want it set only for withGetBody", req.GetBody != nil)
			}
			status, respBody, err := tokDo(e.client, req)
			if err != nil || status != tt.wantStatus {
				t.Fatalf("got status %d and error %v, want %d", status, err, tt.wantStatus)
			}
			if status == http.StatusUnauthorized && respBody != "denied" {
				t.Fatalf("got the 401 body %q, want the server's %q", respBody, "denied")
			}
			wantAuth := []string{tokBearer(old)}
			if tt.wantNew {
				wantAuth = append(wantAuth, tokBearer(fresh))
			}
			hits := e.rec.all()
			if got := e.rec.auths(); !slices.Equal(got, wantAuth) {
				t.Fatalf("server got %q, want %q", got, wantAuth)
			}
			if tt.body != noBody {
				for i, h := range hits {
					if h.body != payload {
						t.Fatalf("request %d: server got body %q, want %q", i, h.body, payload)
					}
				}
			}
			if n := calls.Load(); n != tt.wantCalls {
				t.Fatalf("Refresh called %d times, want %d", n, tt.wantCalls)
			}

			// A token refused as invalid is not sent again; one refused
			// for another reason is kept.
			before := len(hits)
			e.get("/")
			next := e.rec.all()[before]
			want := tokBearer(old)
			if tt.nextNew {
				want = tokBearer(fresh)
			}
			if next.auth != want {
				t.Fatalf("a later GET carried %q first, want %q", next.auth, want)
			}
		})
	}
}

// Concurrent 401s to the same token cause one refresh between them.
func TestBearer401ConcurrentOneRefresh(t *testing.T) {
	t.Parallel()
	const n = 16
	old, fresh := tokOpaque("old"), tokOpaque("fresh")
	refresh, calls := tokCounted(tokStatic(fresh))
	var refused atomic.Int64
	allRefused := make(chan struct{})
	e := tokSetup(t, tokNewClock(), &Bearer{Store: NewMemoryStore(Token{Value: old}), Refresh: refresh, Hosts: []string{hostAPI}},
		func(w http.ResponseWriter, r *http.Request, hit tokHit) {
			if hit.auth == tokBearer(fresh) {
				io.WriteString(w, "ok")
				return
			}
			// Hold every 401 until all n requests carry the old token, so
			// that the 401s overlap.
			if refused.Add(1) == n {
				close(allRefused)
			}
			select {
			case <-allRefused:
			case <-time.After(tokPatience):
			case <-r.Context().Done():
			}
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
		})
	// n replays within a second of a client's first request exceed the
	// retry budget's floor; TestBudgetUnauthorizedReplay covers the budget.
	e.tr.budget = nil
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if status, _, err := e.get("/"); err != nil || status != http.StatusOK {
				errs <- fmt.Errorf("got status %d and error %w, want 200", status, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c := calls.Load(); c != 1 {
		t.Fatalf("Refresh called %d times for %d concurrent 401s, want 1", c, n)
	}
	if r := refused.Load(); r != n {
		t.Fatalf("server refused %d requests, want %d", r, n)
	}
}

// CloseIdleConnections cancels a refresh stuck in Refresh that no request
// waits for, and waits for it, so that no goroutine outlives it (TestMain
// checks with goleak).
func TestRefreshStoppedByCloseIdleConnections(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	called, returned := make(chan struct{}), make(chan struct{})
	refresh := func(ctx context.Context) (string, error) {
		defer close(returned)
		close(called)
		<-ctx.Done() // stuck until cancelled
		return "", ctx.Err()
	}
	old := tokFresh(t, clk.Now(), 10*time.Minute)
	e := tokSetup(t, clk, &Bearer{Store: NewMemoryStore(Token{Value: old}), Refresh: refreshOf(refresh), Hosts: []string{hostAPI}}, nil)
	if got := e.tokMustGet(t); got != tokBearer(old) {
		t.Fatalf("server got %q, want the stored token", got)
	}
	clk.Add(10*time.Minute - 30*time.Second)
	if got := e.tokMustGet(t); got != tokBearer(old) {
		t.Fatalf("in the window: server got %q, want the stored token", got)
	}
	tokWait(t, called, "Refresh")
	e.tr.CloseIdleConnections()
	select {
	case <-returned:
	default:
		t.Fatal("CloseIdleConnections returned while Refresh still runs")
	}
}

// No token appears in a log line or an error, whatever happens.
func TestTokenSecretsNotLogged(t *testing.T) {
	t.Parallel()
	logger, logs := testutil.NewLogger()
	clk := tokNewClock()
	var secrets, queries []string
	secret := func(tok string) string { secrets = append(secrets, tok); return tok }
	var errs []error
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Authorization"), "refused") {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	}))
	// run makes a Transport for b and sends a POST to api.test with a
	// query string that must not be logged either.
	run := func(b *Bearer) *transport {
		t.Helper()
		cfg := testConfig(t)
		cfg.Logger = logger
		cfg.ExpiryWarning = -1 // only token events are logged
		cfg.Bearer = b
		tr := newTestTransport(t, cfg)
		tr.now = clk.Now
		// net/http's *url.Error carries the caller's URL whole, so the
		// query is checked against the log only.
		query := tokOpaque("query")
		queries = append(queries, query)
		req, _ := http.NewRequest(http.MethodPost, testutil.HostURL(srv, hostAPI, "/p?access_token="+query), strings.NewReader("body"))
		if _, _, err := tokDo(&http.Client{Transport: tr}, req); err != nil {
			errs = append(errs, err)
		}
		return tr
	}
	// sequence is a Refresh returning each result in turn, then the last.
	sequence := func(results ...func() (string, error)) func(context.Context) (string, error) {
		var i atomic.Int64
		return func(context.Context) (string, error) {
			n := min(int(i.Add(1))-1, len(results)-1)
			return results[n]()
		}
	}
	ok := func(tok string) func() (string, error) { return func() (string, error) { return tok, nil } }
	fail := func() (string, error) { return "", errors.New("provider down") }

	// Refresh, 401 recovery, then a failed background refresh.
	refused := secret("refused-" + tokOpaque("x"))
	jwt1 := secret(tokFresh(t, clk.Now(), 10*time.Minute))
	tr := run(&Bearer{Store: NewMemoryStore(Token{Value: refused}), Refresh: refreshOf(sequence(ok(jwt1), fail)), Hosts: []string{hostAPI}})
	clk.Add(10*time.Minute - 30*time.Second)
	req, _ := http.NewRequest(http.MethodGet, testutil.HostURL(srv, hostAPI, "/"), nil)
	if _, _, err := tokDo(&http.Client{Transport: tr}, req); err != nil {
		errs = append(errs, err)
	}
	tokWaitIdle(t, tr)

	// Refresh results that are refused.
	now := clk.Now()
	for _, bad := range []string{
		secret(tokJWT(t, tokKey(), jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(-time.Hour))})),
		secret("garbage-" + tokOpaque("g") + " tok\r\nX: y"),
		secret("big-" + tokOpaque("b") + "-" + strings.Repeat("a", 17<<10)),
	} {
		run(&Bearer{Refresh: tokStaticT(bad), Hosts: []string{hostAPI}})
	}
	// Three dots-separated parts that are no JWT, where a Keyfunc needs one.
	run(&Bearer{Refresh: tokStaticT(secret(tokOpaque("p1") + "." + tokOpaque("p2") + "." + tokOpaque("p3"))),
		Hosts: []string{hostAPI}, Keyfunc: func(*jwt.Token) (any, error) { return tokKey(), nil }, ValidMethods: []string{"HS256"}})
	wrongKey := secret(tokJWT(t, []byte("wrong key, wrong key, wrong key!!"), jwt.RegisteredClaims{
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}))
	run(&Bearer{Refresh: tokStaticT(wrongKey), Hosts: []string{hostAPI},
		Keyfunc: func(*jwt.Token) (any, error) { return tokKey(), nil }, ValidMethods: []string{"HS256"}})

	// A token file others may read.
	path := t.TempDir() + "/token"
	fileStore, err := NewFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := fileStore.Save(context.Background(), Token{Value: secret(tokOpaque("file"))}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fileStore.Load(context.Background()); err != nil {
		errs = append(errs, err)
	}
	run(&Bearer{Store: fileStore, Hosts: []string{hostAPI}})
	run(&Bearer{Store: fileStore, Refresh: tokStaticT(secret(tokOpaque("after-file"))), Hosts: []string{hostAPI}})

	// A store that cannot save.
	run(&Bearer{Store: tokStoreFunc{
		load: func(context.Context) (string, error) { return "", nil },
		save: func(context.Context, string) error { return errors.New("disk full") },
	}, Refresh: tokStaticT(secret(tokOpaque("unsaved"))), Hosts: []string{hostAPI}})

	out := logs.String()
	for _, level := range []string{"level=DEBUG", "level=WARN"} {
		if !strings.Contains(out, level) {
			t.Fatalf("the log has no %s line, want refresh events logged; log:\n%s", level, out)
		}
	}
	if len(errs) < 7 {
		t.Fatalf("got %d errors, want at least 7", len(errs))
	}
	for _, s := range secrets {
		if len(tokSecretParts(s)) == 0 {
			t.Fatalf("secret %q has no part to look for, want one", s)
		}
	}
	var texts []string
	for _, err := range errs {
		texts = append(texts, err.Error(), fmt.Sprintf("%v %+v %#v", err, err, err))
	}
	for _, q := range queries {
		if strings.Contains(out, q) {
			t.Errorf("got the URL query %q in the log, want URLs logged without it", q)
		}
	}
	for _, s := range secrets {
		for _, part := range tokSecretParts(s) {
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, part) {
					t.Errorf("got a secret in the log line %q, want none", line)
				}
			}
			for _, text := range texts {
				if strings.Contains(text, part) {
					t.Errorf("got a secret in the error %q, want none", text)
				}
			}
		}
	}
}

// tokSecretParts returns what must not leak of tok: every run of at least
// 16 letters and digits, so that a token found quoted, escaped or cut short
// is caught too. Of a JWT, only the claims and signature count: its header
// is the same in every token.
func tokSecretParts(tok string) []string {
	if segs := strings.Split(tok, "."); len(segs) == 3 {
		tok = segs[1] + "." + segs[2]
	}
	var parts []string
	for _, f := range strings.FieldsFunc(tok, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) {
		if len(f) >= 16 {
			parts = append(parts, f)
		}
	}
	return parts
}

// Types that hold tokens print no secret with %v, %+v, %#v or through slog.
func TestTokenSecretsNotFormatted(t *testing.T) {
	t.Parallel()
	tok := tokFresh(t, time.Now(), time.Hour)
	store := NewMemoryStore(Token{Value: tok})
	b := &Bearer{Store: store, Refresh: tokStaticT(tok), Hosts: []string{hostAPI}}
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	cfg := testConfig(t)
	cfg.Bearer = b
	client, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	// Use the client, so that its Transport holds the token too.
	if _, _, err := tokDo(client, func() *http.Request {
		req, _ := http.NewRequest(http.MethodGet, testutil.HostURL(srv, hostAPI, "/"), nil)
		return req
	}()); err != nil {
		t.Fatal(err)
	}
	tr := client.Transport.(*transport)
	tr.bearer.mu.Lock()
	holds := tr.bearer.cur != nil && tr.bearer.cur.raw == tok
	tr.bearer.mu.Unlock()
	if !holds {
		t.Fatal("the transport does not hold the token, want it to after a request")
	}

	// A user's struct may hold a store or a Bearer by value.
	holder := &struct {
		Store  MemoryStore
		store  MemoryStore
		Bearer Bearer
	}{Bearer: *b}
	holder.Store.Save(context.Background(), Token{Value: tok})
	holder.store.Save(context.Background(), Token{Value: tok})

	for _, tt := range []struct {
		name  string
		value any
	}{
		{"struct holding values", holder},
		{"Bearer", *b},
		{"*Bearer", b},
		{"*MemoryStore", store},
		{"TokenStore", TokenStore(store)},
		{"*transport", tr},
		{"Config", cfg},
		{"*Config", &cfg},
		{"*http.Client", client},
		{"http.Client", *client},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var outputs []string
			outputs = append(outputs, fmt.Sprintf("%v|%+v|%#v|%s", tt.value, tt.value, tt.value, tt.value))
			for _, h := range []func(io.Writer) slog.Handler{
				func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
				func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
			} {
				var buf strings.Builder
				slog.New(h(&buf)).Info("value", "v", tt.value, slog.Any("any", tt.value), slog.Group("g", "v", tt.value))
				outputs = append(outputs, buf.String())
			}
			for _, out := range outputs {
				for _, part := range tokSecretParts(tok) {
					if strings.Contains(out, part) {
						t.Fatalf("got the token in %q, want it redacted", out)
					}
				}
			}
		})
	}
}

func TestRefreshErrorMatches(t *testing.T) {
	t.Parallel()
	cause := errors.New("cause")
	for _, tt := range []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"ErrNoToken", &RefreshError{Err: cause}, ErrNoToken, true},
		{"its cause", &RefreshError{Err: cause}, cause, true},
		{"a context error", &RefreshError{Err: context.Canceled}, context.Canceled, true},
		{"another sentinel", &RefreshError{Err: cause}, ErrInsecureScheme, false},
		{"no cause", &RefreshError{}, ErrNoToken, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := errors.Is(tt.err, tt.target); got != tt.want {
				t.Fatalf("errors.Is(%v, %v): got %v, want %v", tt.err, tt.target, got, tt.want)
			}
		})
	}
}

// TestRefreshPanicIsAnError shows that a panicking Refresh, which runs on a
// background goroutine, fails the waiting request instead of the process.
func TestRefreshPanicIsAnError(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	var hits atomic.Int64
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	cfg := testConfig(t)
	cfg.Bearer = &Bearer{
		Refresh: func(context.Context) (Token, error) { panic("identity provider client bug") },
		Hosts:   []string{hostAPI},
	}
	_, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/"))
	tokWantRefused(t, err, int(hits.Load()))
}

// tokStoppable is a Refresh whose first call blocks until its context is
// cancelled, as a slow token endpoint does when CloseIdleConnections stops
// it, and whose later calls return a fresh token at once.
type tokStoppable struct {
	calls  atomic.Int64
	called chan struct{} // closed when the first call starts
	fresh  string
}

func newTokStoppable(t *testing.T, now time.Time) *tokStoppable {
	return &tokStoppable{called: make(chan struct{}), fresh: tokFresh(t, now, time.Hour)}
}

func (s *tokStoppable) refresh(ctx context.Context) (Token, error) {
	if s.calls.Add(1) == 1 {
		close(s.called)
		<-ctx.Done()
		return Token{}, ctx.Err()
	}
	return Token{Value: s.fresh}, nil
}

// A refresh stopped by CloseIdleConnections is not a failed refresh: it
// leaves no error, backoff or warning behind, and the next request
// refreshes at once.
func TestCloseIdleConnectionsDuringRefreshLeavesNoFailure(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		// start makes a refresh start that no request waits for, and
		// returns once Refresh runs.
		start func(t *testing.T, e *tokEnv, s *tokStoppable)
	}{
		{"background refresh", func(t *testing.T, e *tokEnv, s *tokStoppable) {
			e.tokMustGet(t)                    // takes the stored token
			e.clk.Add(time.Hour - time.Minute) // inside the window, still usable
			e.tokMustGet(t)
			tokWait(t, s.called, "Refresh")
		}},
		{"refresh its caller gave up on", func(t *testing.T, e *tokEnv, s *tokStoppable) {
			e.clk.Add(time.Hour) // expired
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url(hostAPI, "/"), nil)
				_, _, err := tokDo(e.client, req)
				done <- err
			}()
			tokWait(t, s.called, "Refresh")
			cancel()
			if err := tokWait(t, done, "cancelled request"); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled request: got error %v, want context.Canceled", err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := tokNewClock()
			s := newTokStoppable(t, clk.Now().Add(time.Hour))
			old := tokFresh(t, clk.Now(), time.Hour)
			e := tokSetup(t, clk, &Bearer{Store: NewMemoryStore(Token{Value: old}), Refresh: s.refresh, Hosts: []string{hostAPI}}, nil)
			tt.start(t, e, s)
			e.tr.CloseIdleConnections()
			// The next request refreshes at once (in the background when
			// the old token is still usable); the one after carries the new
			// token.
			if status, _, err := e.get("/"); err != nil || status != http.StatusOK {
				t.Fatalf("request after CloseIdleConnections: got status %d and error %v, want 200", status, err)
			}
			tokWaitIdle(t, e.tr)
			if got := e.tokMustGet(t); got != tokBearer(s.fresh) {
				t.Errorf("request after the new refresh: got the %s token, want the new one",
					map[bool]string{true: "old", false: "other"}[got == tokBearer(old)])
			}
			if got := s.calls.Load(); got != 2 {
				t.Errorf("Refresh calls: got %d, want 2 (the stopped one and one more)", got)
			}
			if logs := e.logs.String(); strings.Contains(logs, "refresh failed") || strings.Contains(logs, "level=WARN") {
				t.Errorf("logs: got a warning for a stopped refresh, want none:\n%s", logs)
			}
		})
	}
}

// go-retryablehttp calls CloseIdleConnections each time it gives up on a
// request. A client wrapped in it, giving up on a failing endpoint while a
// token refresh is in flight, goes on refreshing tokens for later requests.
func TestRetryableHTTPGiveUpKeepsRefreshing(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	s := newTokStoppable(t, clk.Now().Add(time.Hour))
	old := tokFresh(t, clk.Now(), time.Hour)
	e := tokSetup(t, clk, &Bearer{Store: NewMemoryStore(Token{Value: old}), Refresh: s.refresh, Hosts: []string{hostAPI}},
		func(w http.ResponseWriter, r *http.Request, _ tokHit) {
			if r.URL.Path == "/failing" {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok")
		})
	rc := retryablehttp.NewClient()
	rc.HTTPClient = e.client
	rc.Logger = nil
	rc.RetryMax = 1
	rc.RetryWaitMin, rc.RetryWaitMax = time.Millisecond, time.Millisecond

	e.tokMustGet(t)
	e.clk.Add(time.Hour - time.Minute) // inside the refresh window
	e.tokMustGet(t)                    // starts a background refresh, which hangs
	tokWait(t, s.called, "Refresh")
	resp, err := rc.Get(e.url(hostAPI, "/failing"))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("failing endpoint: got status %d, want go-retryablehttp to give up", resp.StatusCode)
	}
	// The next request refreshes at once, in the background (the old
	// token is still usable), and the one after carries the new token.
	for i := range 2 {
		resp, err := rc.Get(e.url(hostAPI, "/"))
		if err != nil {
			t.Fatalf("request %d after the give-up: got error %v, want none", i+1, err)
		}
		resp.Body.Close()
		tokWaitIdle(t, e.tr)
	}
	hits := e.rec.all()
	if got := hits[len(hits)-1].auth; got != tokBearer(s.fresh) {
		t.Errorf("last request: got the %s token, want the new one", map[bool]string{true: "old", false: "other"}[got == tokBearer(old)])
	}
	if got := s.calls.Load(); got != 2 {
		t.Errorf("Refresh calls: got %d, want 2 (the stopped one and one more)", got)
	}
}

// go-retryablehttp calls CloseIdleConnections each time it gives up on a
// request, which a busy client does again and again. A refresh that a
// request waits for is not idle: CloseIdleConnections leaves it running, so
// that its calls cost no token request each, and a slow token endpoint
// still answers the requests that wait for it.
func TestCloseIdleConnectionsLeavesAwaitedRefreshRunning(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	fresh := tokFresh(t, clk.Now(), time.Hour)
	called, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	refresh := func(ctx context.Context) (string, error) {
		if calls.Add(1) == 1 {
			close(called)
		}
		select {
		case <-release: // the token endpoint answers
			return fresh, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	e := tokSetup(t, clk, &Bearer{Refresh: refreshOf(refresh), Hosts: []string{hostAPI}}, nil)
	done := make(chan error, 1)
	go func() {
		status, _, err := e.get("/")
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("status %d", status)
		}
		done <- err
	}()
	tokWait(t, called, "Refresh")
	const closes = 5
	for range closes {
		e.tr.CloseIdleConnections()
	}
	close(release)
	if err := tokWait(t, done, "waiting request"); err != nil {
		t.Fatalf("waiting request: got error %v, want the refreshed token", err)
	}
	if got := e.rec.auths(); !slices.Equal(got, []string{tokBearer(fresh)}) {
		t.Errorf("server got %q, want one request with the refreshed token", got)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("Refresh calls after %d CloseIdleConnections: got %d, want 1", closes, got)
	}
}

// tokBlockOnce returns a function that blocks its nth call until its
// context ends, closing entered when it starts, and returns at once on the
// others.
func tokBlockOnce(entered chan struct{}, nth int64) func(ctx context.Context) error {
	var calls atomic.Int64
	return func(ctx context.Context) error {
		if calls.Add(1) != nth {
			return nil
		}
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	}
}

// blockingLeaseStore is a SharedTokenStore whose first leased Save blocks
// until its context ends.
type blockingLeaseStore struct {
	*fakeShared
	save func(ctx context.Context) error
}

func (s *blockingLeaseStore) ForBinding(string) SharedTokenStore { return s }

func (s *blockingLeaseStore) TryLease(ctx context.Context) (Lease, error) {
	l, err := s.fakeShared.TryLease(ctx)
	if l == nil || err != nil {
		return l, err
	}
	return blockingLease{l.(fakeLease), s.save}, nil
}

type blockingLease struct {
	fakeLease
	save func(ctx context.Context) error
}

func (l blockingLease) Save(ctx context.Context, tok Token) error {
	if err := l.save(ctx); err != nil {
		return err
	}
	return l.fakeLease.Save(ctx, tok)
}

// A store call cut short by CloseIdleConnections is no store failure:
// nothing is logged as a warning, and the next request refreshes.
func TestCloseIdleConnectionsDuringStoreCallLogsNoWarning(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		nth   int64 // the store call that blocks
		store func(initial string, block func(context.Context) error) TokenStore
	}{
		{"load", 2, func(initial string, block func(context.Context) error) TokenStore {
			return tokStoreFunc{
				load: func(ctx context.Context) (string, error) { return initial, block(ctx) },
				save: func(context.Context, string) error { return nil },
			}
		}},
		{"save", 1, func(initial string, block func(context.Context) error) TokenStore {
			var loaded atomic.Bool
			return tokStoreFunc{
				load: func(context.Context) (string, error) {
					if loaded.Swap(true) {
						return "", nil
					}
					return initial, nil
				},
				save: func(ctx context.Context, _ string) error { return block(ctx) },
			}
		}},
		{"leased save in a shared store", 1, func(initial string, block func(context.Context) error) TokenStore {
			return &blockingLeaseStore{fakeShared: &fakeShared{tok: Token{Value: initial}}, save: block}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := tokNewClock()
			old := tokFresh(t, clk.Now(), time.Hour)
			fresh := tokFresh(t, clk.Now().Add(time.Hour), time.Hour)
			entered := make(chan struct{})
			refresh, calls := tokCounted(tokStatic(fresh))
			e := tokSetup(t, clk, &Bearer{Store: tt.store(old, tokBlockOnce(entered, tt.nth)), Refresh: refresh, Hosts: []string{hostAPI}}, nil)
			if got := e.tokMustGet(t); got != tokBearer(old) {
				t.Fatalf("first request: got another token, want the stored one")
			}
			clk.Add(time.Hour - time.Minute) // inside the window, still usable
			e.tokMustGet(t)
			tokWait(t, entered, "the store call")
			e.tr.CloseIdleConnections()
			before := calls.Load()
			e.tokMustGet(t)
			tokWaitIdle(t, e.tr)
			if got := e.tokMustGet(t); got != tokBearer(fresh) {
				t.Errorf("request after the new refresh: got another token, want the refreshed one")
			}
			if got := calls.Load(); got != before+1 {
				t.Errorf("Refresh calls after CloseIdleConnections: got %d, want 1", got-before)
			}
			if logs := e.logs.String(); strings.Contains(logs, "level=WARN") {
				t.Errorf("logs: got a warning for a stopped store call, want none:\n%s", logs)
			}
		})
	}
}

// panickingStore is a TokenStore of the user's whose Load and Save panic,
// as a store with a bug does: with a nil map, say.
type panickingStore struct{}

func (panickingStore) Load(context.Context) (Token, error) { panic("store bug: Load") }
func (panickingStore) Save(context.Context, Token) error   { panic("store bug: Save") }

// nilBindingStore is a BindingStore whose ForBinding returns no store.
type nilBindingStore struct{ *MemoryStore }

func (nilBindingStore) ForBinding(string) TokenStore { return nil }

// A bug in code of the user's that a refresh calls on its own goroutine (a
// TokenStore, a BindingStore, a Keyfunc) fails the refresh at most, never
// the process, as a panicking Refresh does. A store that fails is no
// reason to fail a request: the token is refreshed without it.
func TestUserCodePanicInRefreshFailsNoProcess(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	fresh := tokFresh(t, clk.Now(), time.Hour)
	for _, tt := range []struct {
		name   string
		bearer *Bearer
		wantOK bool // the request gets the refreshed token; else a *RefreshError
	}{
		{"store", &Bearer{Store: panickingStore{}, Refresh: tokStaticT(fresh)}, true},
		{"ForBinding gives no store", &Bearer{Store: nilBindingStore{NewMemoryStore(Token{})}, Refresh: tokStaticT(fresh)}, true},
		{"Keyfunc", &Bearer{Refresh: tokStaticT(fresh), Keyfunc: func(*jwt.Token) (any, error) { panic("keyfunc bug") }}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.bearer.Hosts = []string{hostAPI}
			e := tokSetup(t, clk, tt.bearer, nil)
			status, _, err := e.get("/")
			switch {
			case tt.wantOK && (err != nil || status != http.StatusOK):
				t.Fatalf("got status %d and error %v, want 200", status, err)
			case tt.wantOK:
				if got := e.rec.auths(); !slices.Equal(got, []string{tokBearer(fresh)}) {
					t.Errorf("server got %q, want one request with the refreshed token", got)
				}
			default:
				tokWantRefused(t, err, e.rec.count())
				if strings.Contains(err.Error(), "bug") {
					t.Errorf("got error %q, want it without the panic's value, which may quote anything", err)
				}
			}
		})
	}
}

// silentEndpoint is a plain-HTTP token endpoint on 127.0.0.1 that accepts
// connections and never answers. release closes its connections, which
// frees whatever waits on them; it runs when the test ends at the latest.
type silentEndpoint struct {
	url      string
	accepted chan struct{} // receives once per accepted connection
	release  func()
}

func newSilentEndpoint(t *testing.T) *silentEndpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := &silentEndpoint{url: "http://" + ln.Addr().String() + "/token", accepted: make(chan struct{}, 16)}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ep.accepted <- struct{}{}:
			default:
			}
		}
	})
	var once sync.Once
	ep.release = func() {
		once.Do(func() {
			ln.Close()
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
	}
	t.Cleanup(ep.release)
	return ep
}

// hangingOAuth2Refresh is an x/oauth2 client-credentials source, through
// OAuth2Refresh, whose HTTP client has no timeout and whose token endpoint
// never answers: a Refresh that ignores its context.
func hangingOAuth2Refresh(t *testing.T, ep *silentEndpoint) func(context.Context) (Token, error) {
	t.Helper()
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base})
	cc := clientcredentials.Config{ClientID: "client", ClientSecret: "secret", TokenURL: ep.url}
	return OAuth2Refresh(cc.TokenSource(ctx))
}

// TestRefreshIgnoringContextBounded: a Refresh that ignores its context (an
// x/oauth2 source whose token endpoint never answers) holds no request past
// RefreshTimeout, is abandoned in the background once its deadline passes,
// and, once no request waits for it, is stopped by CloseIdleConnections,
// which waits for it only a bounded time.
func TestRefreshIgnoringContextBounded(t *testing.T) {
	t.Parallel()
	t.Run("waiters give up at RefreshTimeout", func(t *testing.T) {
		t.Parallel()
		ep := newSilentEndpoint(t)
		const timeout = 200 * time.Millisecond
		e := tokSetup(t, tokNewClock(), &Bearer{Refresh: hangingOAuth2Refresh(t, ep), Hosts: []string{hostAPI},
			RefreshTimeout: timeout}, nil)
		// Before the Transport stops (cleanups run last first), so that
		// the test ends even if stopping waited for the stuck refresh.
		t.Cleanup(ep.release)
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, _, err := e.get("/")
			done <- err
		}()
		err := tokWait(t, done, "request while Refresh ignores its context")
		elapsed := time.Since(start)
		tokWantRefused(t, err, e.rec.count(), context.DeadlineExceeded)
		if elapsed < timeout {
			t.Fatalf("request failed after %v, before RefreshTimeout %v", elapsed, timeout)
		}
		tokWait(t, ep.accepted, "token endpoint connection")

		// The abandoned refresh is still stuck; the next request fails at
		// once with the last error instead of waiting or calling again.
		_, _, err = e.get("/")
		tokWantRefused(t, err, e.rec.count())
		select {
		case <-ep.accepted:
			t.Fatal("a second token request was made during the backoff, want none")
		default:
		}
	})
	t.Run("stuck background refresh is abandoned", func(t *testing.T) {
		t.Parallel()
		ep := newSilentEndpoint(t)
		clk := tokNewClock()
		old := tokFresh(t, clk.Now(), 10*time.Minute)
		// x/oauth2's source serialises its calls: the second call waits
		// behind the first, stuck one, so calls are counted here rather
		// than at the endpoint.
		hanging := hangingOAuth2Refresh(t, ep)
		calls := make(chan struct{}, 4)
		refresh := func(ctx context.Context) (Token, error) {
			calls <- struct{}{}
			return hanging(ctx)
		}
		e := tokSetup(t, clk, &Bearer{Store: NewMemoryStore(Token{Value: old}), Refresh: refresh,
			Hosts: []string{hostAPI}, RefreshTimeout: 50 * time.Millisecond}, nil)
		t.Cleanup(ep.release)
		if got := e.tokMustGet(t); got != tokBearer(old) {
			t.Fatalf("server got %q, want the stored token", got)
		}
		clk.Add(10*time.Minute - 30*time.Second) // inside the refresh window
		if got := e.tokMustGet(t); got != tokBearer(old) {
			t.Fatalf("server got %q, want the stored token", got)
		}
		tokWait(t, calls, "background refresh")
		tokWait(t, ep.accepted, "background token request")
		// Wait, boundedly, for the stuck refresh's own deadline.
		deadline := time.Now().Add(tokPatience)
		for {
			e.tr.bearer.mu.Lock()
			f := e.tr.bearer.flight
			e.tr.bearer.mu.Unlock()
			if f == nil || f.ctx.Err() != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the refresh's deadline has not passed after %v", tokPatience)
			}
			time.Sleep(5 * time.Millisecond)
		}
		// The stuck refresh is given up, and after the backoff another
		// one starts while the token is still valid.
		if got := e.tokMustGet(t); got != tokBearer(old) {
			t.Fatalf("server got %q, want the stored token", got)
		}
		clk.Add(minRefreshBackoff)
		if got := e.tokMustGet(t); got != tokBearer(old) {
			t.Fatalf("server got %q, want the stored token", got)
		}
		tokWait(t, calls, "a second background refresh")
	})
	t.Run("CloseIdleConnections is bounded", func(t *testing.T) {
		t.Parallel()
		ep := newSilentEndpoint(t)
		hanging := hangingOAuth2Refresh(t, ep)
		var calls atomic.Int64
		refresh := func(ctx context.Context) (Token, error) {
			calls.Add(1)
			return hanging(ctx)
		}
		e := tokSetup(t, tokNewClock(), &Bearer{Refresh: refresh, Hosts: []string{hostAPI},
			RefreshTimeout: time.Hour}, nil)
		t.Cleanup(ep.release)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		reqErr := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url(hostAPI, "/"), nil)
			_, _, err := tokDo(e.client, req)
			reqErr <- err
		}()
		tokWait(t, ep.accepted, "token endpoint connection")
		// The request gives up, and no one waits for the refresh any more:
		// CloseIdleConnections stops it, and waits for it a bounded time.
		cancel()
		err := tokWait(t, reqErr, "request giving up on the refresh")
		tokWantRefused(t, err, e.rec.count(), context.Canceled)
		closed := make(chan struct{})
		go func() {
			e.tr.CloseIdleConnections()
			close(closed)
		}()
		tokWait(t, closed, "CloseIdleConnections with a Refresh ignoring its context")
		if got := calls.Load(); got != 1 {
			t.Fatalf("Refresh calls: got %d, want 1", got)
		}
	})
}

// TestRefreshBackoffStopsStorms: a failing Refresh, or tokens every one of
// which a server refuses with 401, cost one refresh per backoff period, not
// one per request, and the backoff grows while the failures go on.
func TestRefreshBackoffStopsStorms(t *testing.T) {
	t.Parallel()
	t.Run("failing refresh, no token", func(t *testing.T) {
		t.Parallel()
		errDown := errors.New("identity provider down")
		refresh, calls := tokCounted(func(context.Context) (string, error) { return "", errDown })
		e := tokSetup(t, tokNewClock(), &Bearer{Refresh: refresh, Hosts: []string{hostAPI}}, nil)
		for i := range 50 {
			_, _, err := e.get("/")
			var re *RefreshError
			if !errors.As(err, &re) || !errors.Is(err, errDown) {
				t.Fatalf("request %d: got error %v, want a *RefreshError wrapping the Refresh error", i, err)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("Refresh called %d times for 50 requests within the backoff, want 1", n)
		}
		if n := e.rec.count(); n != 0 {
			t.Fatalf("server got %d requests, want 0", n)
		}
		// After the backoff one more refresh is tried.
		e.clk.Add(maxRefreshBackoff)
		e.get("/")
		if n := calls.Load(); n != 2 {
			t.Fatalf("after the backoff Refresh was called %d times in all, want 2", n)
		}
	})
	t.Run("every token refused with 401", func(t *testing.T) {
		t.Parallel()
		refresh, calls := tokCounted(func(context.Context) (string, error) { return tokOpaque("refused"), nil })
		e := tokSetup(t, tokNewClock(), &Bearer{Refresh: refresh, Hosts: []string{hostAPI}},
			func(w http.ResponseWriter, r *http.Request, _ tokHit) {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				w.WriteHeader(http.StatusUnauthorized)
			})
		for i := range 30 {
			status, _, err := e.get("/")
			if err != nil || status != http.StatusUnauthorized {
				t.Fatalf("request %d: got status %d and error %v, want the 401", i, status, err)
			}
		}
		// One refresh for the first token, one after the first 401; the
		// next 401-triggered refresh waits for the backoff.
		if n := calls.Load(); n != 2 {
			t.Fatalf("Refresh called %d times for 30 requests answered 401, want 2", n)
		}
		e.clk.Add(minRefreshBackoff)
		e.get("/")
		if n := calls.Load(); n != 3 {
			t.Fatalf("after the backoff Refresh was called %d times in all, want 3", n)
		}
		// The backoff doubles while every new token is refused.
		e.clk.Add(minRefreshBackoff)
		e.get("/")
		if n := calls.Load(); n != 3 {
			t.Fatalf("one second after a second 401 refresh Refresh was called %d times in all, want 3", n)
		}
	})
}

// TestTokenNotBeforeClockSkew: a token whose nbf lies a little ahead of the
// client's clock (an issuer's clock running ahead) is used, and kept, rather
// than refreshed on every request; beyond nbfLeeway it is refused.
func TestTokenNotBeforeClockSkew(t *testing.T) {
	t.Parallel()
	clk := tokNewClock()
	const lag = 10 * time.Second // the client's clock is behind its issuer's
	refresh, calls := tokCounted(func(context.Context) (string, error) {
		issued := clk.Now().Add(lag)
		return tokJWT(t, tokKey(), jwt.RegisteredClaims{
			IssuedAt:  jwt.NewNumericDate(issued),
			NotBefore: jwt.NewNumericDate(issued),
			ExpiresAt: jwt.NewNumericDate(issued.Add(time.Hour)),
		}), nil
	})
	e := tokSetup(t, clk, &Bearer{Refresh: refresh, Hosts: []string{hostAPI}}, nil)
	first := e.tokMustGet(t)
	for range 10 {
		if got := e.tokMustGet(t); got != first {
			t.Fatalf("server got %q, want the first token again", got)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("Refresh called %d times, want 1", n)
	}
	// Beyond the leeway the token is refused rather than sent.
	e2 := tokSetup(t, tokNewClock(), &Bearer{Refresh: refreshOf(func(context.Context) (string, error) {
		now := time.Now().Add(nbfLeeway + time.Minute)
		return tokJWT(t, tokKey(), jwt.RegisteredClaims{NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}), nil
	}), Hosts: []string{hostAPI}}, nil)
	_, _, err := e2.get("/")
	tokWantRefused(t, err, e2.rec.count())
}

// TestTokenNotSentToOtherPort: a Bearer.Hosts entry with a port keeps the
// token from every other port of the host, a redirect hop included; an entry
// without one covers any port.
func TestTokenNotSentToOtherPort(t *testing.T) {
	t.Parallel()
	other := tokStartServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "auth="+r.Header.Get("Authorization"))
	}))
	for _, tt := range []struct {
		name      string
		withPort  bool
		wantOther bool // the other port receives the token
	}{
		{"pattern with the port", true, false},
		{"pattern without a port: any port", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := tokOpaque("port")
			b := &Bearer{Store: NewMemoryStore(Token{Value: tok}), Hosts: []string{hostAPI}}
			// The server's port is known only once it runs: set the
			// pattern before the Transport copies the Bearer.
			srv := tokStartServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, testutil.HostURL(other, hostAPI, "/end"), http.StatusFound)
			}))
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			if tt.withPort {
				b.Hosts = []string{hostAPI + ":" + port}
			}
			e := &tokEnv{srv: srv, rec: &tokRecorder{}}
			cfg := testConfig(t)
			cfg.Bearer = b
			e.tr = newTestTransport(t, cfg)
			e.client = &http.Client{Transport: e.tr}
			status, body, err := e.get("/start")
			if err != nil || status != http.StatusOK {
				t.Fatalf("got status %d and error %v, want 200", status, err)
			}
			want := "auth="
			if tt.wantOther {
				want += tokBearer(tok)
			}
			if body != want {
				t.Fatalf("the other port got %q, want %q", body, want)
			}
		})
	}
	t.Run("patterns", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			pattern, host, port string
			want                bool
		}{
			{"api.test:8443", "api.test", "8443", true},
			{"api.test:8443", "api.test", "443", false},
			{"api.test:8443", "api.test", "", false},
			{"api.test:443", "api.test", "", true},
			{"api.test:443", "api.test", "0443", true},
			{"api.test", "api.test", "8443", true},
			{"[::1]:8443", "::1", "8443", true},
			{"::1", "::1", "8443", true},
			{"*.api.test:8443", "v1.api.test", "8443", true},
		} {
			p, err := parseHostPortPattern(tt.pattern)
			if err != nil {
				t.Fatalf("parseHostPortPattern(%q): %v", tt.pattern, err)
			}
			if got := p.match(tt.host) && p.matchPort(tt.port); got != tt.want {
				t.Errorf("%q covers %s port %q: got %v, want %v", tt.pattern, tt.host, tt.port, got, tt.want)
			}
		}
		for _, bad := range []string{"api.test:", "api.test:0", "api.test:65536", "api.test:https", "[::1]x", "[::1]:", "[::1"} {
			_, err := newTransport(Config{Bearer: &Bearer{Store: NewMemoryStore(Token{}), Hosts: []string{bad}}})
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != "Bearer.Hosts[0]" {
				t.Errorf("Hosts %q: got error %v, want a *ConfigError for Bearer.Hosts[0]", bad, err)
			}
		}
	})
}

// TestRefusedTokenErrorText: the error for a refused token quotes neither
// its claims nor its bytes, says what was wrong (an expired stored token),
// and carries the "securehttp:" prefix once however deep the cause.
func TestRefusedTokenErrorText(t *testing.T) {
	t.Parallel()
	t.Run("JWT errors quote no claim and no token bytes", func(t *testing.T) {
		t.Parallel()
		const secret = "SECRETCLAIMVALUE"
		enc := base64.RawURLEncoding.EncodeToString
		header := enc([]byte(`{"alg":"HS256","typ":"JWT"}`))
		for _, payload := range []string{
			`{"exp":"` + secret + `"}`,
			`{"sub":"` + secret + ``,
			`{"sub":["` + secret + `"],"nbf":true}`,
			secret,
		} {
			tok := header + "." + enc([]byte(payload)) + "." + enc([]byte(secret))
			keyfunc := func(*jwt.Token) (any, error) { return tokKey(), nil }
			e := tokSetup(t, tokNewClock(), &Bearer{Refresh: tokStaticT(tok), Hosts: []string{hostAPI},
				Keyfunc: keyfunc, ValidMethods: []string{"HS256"}}, nil)
			_, _, err := e.get("/")
			tokWantRefused(t, err, e.rec.count())
			msg := err.Error() + e.logs.String()
			for _, leak := range append([]string{secret, enc([]byte(payload))}, tokSecretParts(tok)...) {
				if strings.Contains(msg, leak) {
					t.Fatalf("error or log %q quotes %q, want neither claims nor token bytes", msg, leak)
				}
			}
		}
	})
	t.Run("expired stored token", func(t *testing.T) {
		t.Parallel()
		clk := tokNewClock()
		expired := tokFresh(t, clk.Now().Add(-2*time.Hour), time.Hour)
		e := tokSetup(t, clk, &Bearer{Store: NewMemoryStore(Token{Value: expired}), Hosts: []string{hostAPI}}, nil)
		_, _, err := e.get("/")
		tokWantRefused(t, err, e.rec.count())
		if msg := err.Error(); !strings.Contains(msg, "stored token has expired") || strings.Contains(msg, "holds no token") {
			t.Fatalf("got %q, want it to say that the stored token has expired", msg)
		}
	})
	t.Run("one securehttp: prefix", func(t *testing.T) {
		t.Parallel()
		if runtime.GOOS == "windows" {
			t.Skip("no Unix permissions")
		}
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte("tok-loose"), 0o644); err != nil {
			t.Fatal(err)
		}
		e := tokSetup(t, tokNewClock(), &Bearer{Store: tokNewFileStore(t, path), Hosts: []string{hostAPI}}, nil)
		_, _, err := e.get("/")
		tokWantRefused(t, err, e.rec.count(), ErrInsecureTokenFile)
		if n := strings.Count(err.Error(), "securehttp:"); n != 1 {
			t.Fatalf("%q holds \"securehttp:\" %d times, want 1", err, n)
		}
		// A Refresh failing with an error of this package: still once.
		e2 := tokSetup(t, tokNewClock(), &Bearer{Refresh: func(context.Context) (Token, error) {
			return Token{}, fmt.Errorf("%w: from a wrapped transport", ErrInsecureScheme)
		}, Hosts: []string{hostAPI}}, nil)
		_, _, err = e2.get("/")
		tokWantRefused(t, err, e2.rec.count(), ErrInsecureScheme)
		if n := strings.Count(err.Error(), "securehttp:"); n != 1 {
			t.Fatalf("%q holds \"securehttp:\" %d times, want 1", err, n)
		}
	})
}

// stormServer is a token endpoint and an API behind one listener, on
// other.test and api.test, with counters.
type stormServer struct {
	srv                *httptest.Server
	tokenReqs, apiReqs atomic.Int64
}

func newStormServer(t *testing.T, token, api http.HandlerFunc) *stormServer {
	s := &stormServer{}
	s.srv = testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Host, hostAPI) {
			s.apiReqs.Add(1)
			api(w, r)
			return
		}
		s.tokenReqs.Add(1)
		token(w, r)
	}))
	return s
}

func (s *stormServer) config(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.Bearer = &Bearer{
		ClientCredentials: &ClientCredentials{TokenURL: testutil.HostURL(s.srv, hostOther, "/token"), ClientID: "c", ClientSecret: "s"},
		Hosts:             []string{hostAPI},
		RefreshTimeout:    5 * time.Second,
	}
	return cfg
}

// storm sends n concurrent GETs to the API and returns how many failed.
func storm(t *testing.T, c *http.Client, s *stormServer, n int) int {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		wg.Go(func() {
			resp, err := c.Get(testutil.HostURL(s.srv, hostAPI, "/v1"))
			if err != nil {
				failed.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// Under 200 concurrent requests, a failing token endpoint gets one refresh
// (its own bounded retries), not one per request, and a second wave within
// the backoff gets none.
func TestFailingTokenEndpointRefreshedOnce(t *testing.T) {
	t.Parallel()
	s := newStormServer(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}, func(w http.ResponseWriter, _ *http.Request) {})
	c := &http.Client{Transport: newTestTransport(t, s.config(t))}
	if failed := storm(t, c, s, 200); failed != 200 {
		t.Errorf("got %d failed requests, want 200", failed)
	}
	if got := s.tokenReqs.Load(); got != (tokenRequestRetries + 1) {
		t.Errorf("got %d token requests, want %d (one refresh)", got, (tokenRequestRetries + 1))
	}
	if failed := storm(t, c, s, 200); failed != 200 {
		t.Errorf("second wave: got %d failed requests, want 200", failed)
	}
	if got := s.tokenReqs.Load(); got != (tokenRequestRetries + 1) {
		t.Errorf("after a second wave within the backoff: got %d token requests, want %d", got, (tokenRequestRetries + 1))
	}
	if got := s.apiReqs.Load(); got != 0 {
		t.Errorf("the API got %d requests, want none without a token", got)
	}
}

// An API that refuses every token with 401 under 200 concurrent requests
// costs a bounded number of token requests, not one per request.
func TestUnauthorizedStormBoundsRefreshes(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	s := newStormServer(t, func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"bearer","expires_in":"3600"}`, n.Add(1))
	}, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	c := &http.Client{Transport: newTestTransport(t, s.config(t))}
	if failed := storm(t, c, s, 200); failed != 200 {
		t.Errorf("got %d failed requests, want 200", failed)
	}
	// The first token, and at most one refresh that a 401 caused: the
	// next one waits for the backoff.
	if got := s.tokenReqs.Load(); got > 2 {
		t.Errorf("got %d token requests, want at most 2", got)
	}
	t.Logf("%d token requests, %d API requests", s.tokenReqs.Load(), s.apiReqs.Load())
}

// A token endpoint that sends its headers and then stalls, or sends an
// endless body, fails the waiting requests within RefreshTimeout.
func TestStalledTokenEndpointBoundedByRefreshTimeout(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"stalls after headers", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, `{"access_token":`)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}},
		{"endless body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			chunk := []byte(strings.Repeat(" ", 32<<10))
			for i := 0; i < 1<<15 && r.Context().Err() == nil; i++ { // 1 GiB at most
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStormServer(t, tt.h, func(w http.ResponseWriter, _ *http.Request) {})
			cfg := s.config(t)
			cfg.Bearer.RefreshTimeout = 500 * time.Millisecond
			c := &http.Client{Transport: newTestTransport(t, cfg)}
			start := time.Now()
			failed := storm(t, c, s, 20)
			elapsed := time.Since(start)
			if failed != 20 {
				t.Errorf("got %d failed requests, want 20", failed)
			}
			if elapsed > 3*time.Second {
				t.Errorf("requests took %v, want them to fail within about RefreshTimeout (500ms)", elapsed)
			}
			if got := s.tokenReqs.Load(); got > (tokenRequestRetries + 1) {
				t.Errorf("got %d token requests, want at most %d", got, (tokenRequestRetries + 1))
			}
		})
	}
}
