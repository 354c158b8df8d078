package securehttp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
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
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// Tests for the defects of the security review (issue 16), one per defect,
// each named after it.

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

func TestDefect01RefreshIgnoresContext(t *testing.T) {
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

func TestDefect02FileStoreFIFO(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs at file system paths on Windows")
	}
	path := filepath.Join(t.TempDir(), "token")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	t.Cleanup(func() {
		// Release a Load stuck in open(2), as before the fix, so that
		// the test ends: a writer opening the FIFO unblocks its reader.
		if fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			syscall.Close(fd)
		}
	})
	s := tokNewFileStore(t, path)
	done := make(chan error, 1)
	go func() {
		_, err := s.Load(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrInsecureTokenFile) {
			t.Fatalf("got error %v, want ErrInsecureTokenFile", err)
		}
	case <-time.After(tokPatience):
		t.Fatalf("Load on a FIFO still blocked after %v, want an error at once", tokPatience)
	}
}

func TestDefect02FileStoreContext(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	s := tokNewFileStore(t, path)
	if err := s.Save(context.Background(), Token{Value: "tok-ctx"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := s.Load(ctx); !errors.Is(err, context.Canceled) || got.Value != "" {
		t.Fatalf("Load with a cancelled context: got %d bytes and error %v, want nothing and context.Canceled", len(got.Value), err)
	}
	if err := s.Save(ctx, Token{Value: "tok-other"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Save with a cancelled context: got error %v, want context.Canceled", err)
	}
	if got, err := s.Load(context.Background()); err != nil || got.Value != "tok-ctx" {
		t.Fatalf("after the cancelled Save: got %q and %v, want the first token", got.Value, err)
	}
}

func TestDefect02FileStoreSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, []byte("tok-via-link"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "token")
	if err := os.Symlink(target, path); err != nil {
		t.Skipf("cannot make a symbolic link here: %v", err)
	}
	got, err := tokNewFileStore(t, path).Load(context.Background())
	if !errors.Is(err, ErrInsecureTokenFile) || got.Value != "" {
		t.Fatalf("got %q and error %v, want no token and ErrInsecureTokenFile", got.Value, err)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "missing"), dangling); err != nil {
		t.Fatal(err)
	}
	if _, err := tokNewFileStore(t, dangling).Load(context.Background()); !errors.Is(err, ErrInsecureTokenFile) {
		t.Fatalf("dangling link: got error %v, want ErrInsecureTokenFile", err)
	}
}

func TestDefect02FileStoreOwner(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("file owners are not uids on Windows; the check is Unix-only")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user (chown); CI runs this test as root")
	}
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("tok-not-mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := tokNewFileStore(t, path)
	if got, err := s.Load(context.Background()); err != nil || got.Value != "tok-not-mine" {
		t.Fatalf("own file: got %q and %v, want it loaded", got.Value, err)
	}
	const nobody = 65534
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(context.Background())
	if !errors.Is(err, ErrInsecureTokenFile) || got.Value != "" {
		t.Fatalf("file of uid %d: got %q and error %v, want no token and ErrInsecureTokenFile", nobody, got.Value, err)
	}
}

func TestDefect02FileStoreStaleTemp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	stale := filepath.Join(dir, ".token.tmp-1234567")
	recent := filepath.Join(dir, ".token.tmp-7654321") // another writer's, in progress
	other := filepath.Join(dir, ".other.tmp-1")        // not this store's
	for _, p := range []string{stale, recent, other} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTempAge)
	for _, p := range []string{stale, other} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := tokNewFileStore(t, path).Save(context.Background(), Token{Value: "tok-saved"}); err != nil {
		t.Fatal(err)
	}
	want := []string{".other.tmp-1", ".token.tmp-7654321", "token"}
	if got := tokDirNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("after Save the directory holds %q, want %q", got, want)
	}
}

func TestDefect03HostPatternsStrict(t *testing.T) {
	t.Parallel()
	label63 := strings.Repeat("a", 63)
	name253 := label63 + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	for _, tt := range []struct {
		pattern string
		want    string // the normalised pattern; "" for a *ConfigError
	}{
		{".api.test", ""},
		{"api.test\n", ""},
		{"api.test\t", ""},
		{"api.test..", ""},
		{"api..test", ""},
		{"..", ""},
		{".", ""},
		{"api test", ""},
		{"api_test.example", ""},
		{"-api.test", ""},
		{"api-.test", ""},
		{"api.test/", ""},
		{"api%2etest", ""},
		{"*.0.0.1", ""},
		{"**.0.1", ""},
		{"*.127.0.0.1", ""},
		{"**.[::1]", ""},
		{"*.*.api.test", ""},
		{"0.0.1", ""},
		{"api.0x7f", ""},
		{"[127.0.0.1]", ""},
		{strings.Repeat("a", 64) + ".test", ""},
		{name253 + "d", ""},
		{"xn--a.test", ""}, // invalid Punycode
		{"api.test", "api.test"},
		{"API.Test.", "api.test"},
		{"*.api.test", "*.api.test"},
		{"**.api.test", "**.api.test"},
		{"127.0.0.1", "127.0.0.1"},
		{"::1", "::1"},
		{"[::1]", "::1"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"},
		{"1.api.test", "1.api.test"},
		{"a-b.test", "a-b.test"},
		{label63 + ".test", label63 + ".test"},
		{name253, name253},
		{name253 + ".", name253},
	} {
		t.Run(fmt.Sprintf("%q", tt.pattern), func(t *testing.T) {
			t.Parallel()
			p, err := parseHostPattern(tt.pattern)
			if tt.want != "" {
				if err != nil || p.String() != tt.want {
					t.Fatalf("got %q and error %v, want %q", p.String(), err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got pattern %q, want an error", p.String())
			}
			// Every place that takes a host pattern refuses it.
			good := "sha256/" + strings.Repeat("A", 43) + "="
			for _, c := range []struct {
				field string
				cfg   Config
			}{
				{"Pins[0].Host", Config{Pins: []PinSet{{Host: tt.pattern, Pins: []string{good}}}}},
				{"Bearer.Hosts[0]", Config{Bearer: &Bearer{Store: NewMemoryStore(Token{}), Hosts: []string{tt.pattern}}}},
			} {
				tr, err := newTransport(c.cfg)
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Field != c.field || tr != nil {
					t.Fatalf("got %v and error %v, want only a *ConfigError for %s", tr, err, c.field)
				}
			}
		})
	}
}

// findChallengeHeader builds a WWW-Authenticate value of about size bytes:
// a Basic challenge with many parameters, then a Bearer challenge.
func findChallengeHeader(size int) string {
	var b strings.Builder
	b.WriteString(`Basic realm="x"`)
	for b.Len() < size {
		b.WriteString(`, a=b`)
	}
	b.WriteString(`, Bearer error="invalid_token"`)
	return b.String()
}

// Not parallel: testing.AllocsPerRun refuses parallel tests.
func TestDefect04ChallengeParseCapped(t *testing.T) {
	for _, size := range []int{400 << 10, 10 << 20} {
		// A parser that fails at 400 KiB would take an hour at 10 MiB.
		ok := t.Run(fmt.Sprintf("%d KiB", size>>10), func(t *testing.T) {
			h := http.Header{}
			h.Set("Www-Authenticate", findChallengeHeader(size))
			// The Bearer challenge lies beyond the bytes examined: it is
			// not seen, however large the header.
			if _, _, ok := findChallenge(h, "Bearer"); ok {
				t.Fatalf("found a Bearer challenge %d bytes in, want the header read only to %d bytes", size, maxChallengeBytes)
			}
			if tokenRejected(h) {
				t.Fatalf("tokenRejected: got true, want false (the challenge is past the %d bytes read)", maxChallengeBytes)
			}
			// Parsing makes no copies: the quadratic parser built each
			// challenge by concatenating its parameters.
			if n := testing.AllocsPerRun(3, func() { tokenRejected(h) }); n != 0 {
				t.Fatalf("tokenRejected allocated %v times, want 0", n)
			}

			// A Bearer challenge first is found at once: parsing stops at it.
			first := http.Header{}
			first.Set("Www-Authenticate", `Bearer error="insufficient_scope", `+findChallengeHeader(size))
			scheme, params, ok := findChallenge(first, "DPoP", "Bearer")
			if !ok || scheme != "Bearer" || params.Get("error") != "insufficient_scope" {
				t.Fatalf("got %q, %q, %v, want Bearer with error insufficient_scope", scheme, params.Get("error"), ok)
			}
		})
		if !ok {
			return
		}
	}
	t.Run("cap spans header lines", func(t *testing.T) {
		t.Parallel()
		h := http.Header{}
		h.Add("Www-Authenticate", findChallengeHeader(maxChallengeBytes))
		h.Add("Www-Authenticate", `Bearer error="invalid_token"`)
		if _, _, ok := findChallenge(h, "Bearer"); ok {
			t.Fatal("found a Bearer challenge on a line after the cap, want none")
		}
		small := http.Header{}
		small.Add("Www-Authenticate", `Basic realm="x"`)
		small.Add("Www-Authenticate", `DPoP algs="ES256", error="use_dpop_nonce"`)
		scheme, params, ok := findChallenge(small, "DPoP")
		if !ok || scheme != "DPoP" || params.Get("algs") != "ES256" || params.Get("error") != "use_dpop_nonce" {
			t.Fatalf("got %q %q %q %v, want the DPoP challenge with its parameters", scheme, params.Get("algs"), params.Get("error"), ok)
		}
	})
}

// BenchmarkChallengeParse reports the cost of reading a 401's
// WWW-Authenticate header of each size: it stays flat, since at most
// maxChallengeBytes are read.
func BenchmarkChallengeParse(b *testing.B) {
	for _, size := range []int{1 << 10, 400 << 10, 10 << 20} {
		h := http.Header{}
		h.Set("Www-Authenticate", findChallengeHeader(size))
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tokenRejected(h)
			}
		})
	}
}

func TestDefect06RefreshStorms(t *testing.T) {
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

func TestDefect07ClockSkewNotBefore(t *testing.T) {
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

func TestDefect08StapleOnResumption(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	now := time.Now()
	staple, err := p.leaf.OCSPResponse(testpki.OCSPGood, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cert := p.serverCert()
	cert.OCSPStaple = staple
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewUnstartedServer(http.HandlerFunc(okHandler))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: version}
			srv.Config.ErrorLog = testutil.QuietLog()
			srv.StartTLS()
			t.Cleanup(srv.Close)
			url := testutil.HostURL(srv, hostAPI, "/")

			clk := testutil.NewClock(now)
			cfg := testConfig(t)
			cfg.RequireOCSPStaple = true
			cfg.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin()}}}
			tr := newTestTransport(t, cfg)
			tr.now = clk.Now
			var resumed atomic.Bool
			verify := tr.conns.base.TLSClientConfig.VerifyConnection
			tr.conns.base.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
				resumed.Store(cs.DidResume)
				return verify(cs)
			}
			if _, err := get(t, tr, url); err != nil || resumed.Load() {
				t.Fatalf("full handshake: got error %v and resumed %v, want success on a full handshake", err, resumed.Load())
			}
			tr.conns.base.CloseIdleConnections()

			// Past the staple's nextUpdate and the skew allowance.
			clk.Add(2*time.Hour + stapleSkew)
			if _, err := get(t, tr, url); err != nil || !resumed.Load() {
				t.Fatalf("resumed handshake with the original staple: got error %v and resumed %v, want success on a resumed handshake", err, resumed.Load())
			}

			// The staple is stale at that time: a full handshake refuses it.
			fresh := newTestTransport(t, cfg)
			fresh.now = clk.Now
			if _, err := get(t, fresh, url); !errors.Is(err, ErrOCSPStaple) {
				t.Fatalf("full handshake with the stale staple: got error %v, want ErrOCSPStaple", err)
			}
		})
	}
}

func TestDefect09TokenPort(t *testing.T) {
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

func TestDefect10OpaqueTokenWithTwoDots(t *testing.T) {
	t.Parallel()
	payload := base64.RawURLEncoding.EncodeToString([]byte("not JSON: a signed PASETO message body, 64 bytes of it ....."))
	for _, tok := range []string{
		"v4.public." + payload,
		"v4.local." + payload,
		"a.b.c",
		"eyJhbGciOiJIUzI1NiJ9." + payload + ".sig", // a JWT-like header, a payload that is not JSON
	} {
		t.Run(tok[:min(len(tok), 12)], func(t *testing.T) {
			t.Parallel()
			e := tokSetup(t, tokNewClock(), &Bearer{Store: NewMemoryStore(Token{Value: tok}), Hosts: []string{hostAPI}}, nil)
			if got := e.tokMustGet(t); got != tokBearer(tok) {
				t.Fatalf("server got %q, want the opaque token", got)
			}
		})
	}
}

func TestDefect11AlgorithmConfusion(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	now := time.Now().Truncate(time.Second)
	claims := jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}
	rs256, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	// The attacker knows the public key and signs with it as an HMAC secret.
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	// A Keyfunc that hands back "the key" whatever the token's alg says.
	asBytes := func(*jwt.Token) (any, error) { return pubPEM, nil }
	asKey := func(*jwt.Token) (any, error) { return &key.PublicKey, nil }
	for _, tt := range []struct {
		name    string
		keyfunc jwt.Keyfunc
		methods []string
		tok     string
		cause   error // nil: accepted
	}{
		{"HS256 with the public key as secret, no ValidMethods", asBytes, nil, forged, jwt.ErrTokenUnverifiable},
		{"HS256 with the public key as secret, RS256 valid", asBytes, []string{"RS256"}, forged, jwt.ErrTokenSignatureInvalid},
		{"HS256 against an RSA key", asKey, nil, forged, jwt.ErrTokenUnverifiable},
		{"RS256 against its RSA key", asKey, nil, rs256, nil},
		{"RS256 listed", asKey, []string{"RS256"}, rs256, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := testutil.NewClock(now)
			e := tokSetup(t, clk, &Bearer{Refresh: tokStaticT(tt.tok), Hosts: []string{hostAPI}, Keyfunc: tt.keyfunc, ValidMethods: tt.methods}, nil)
			status, _, err := e.get("/")
			if tt.cause == nil {
				if err != nil || status != http.StatusOK {
					t.Fatalf("got status %d and error %v, want 200", status, err)
				}
				return
			}
			tokWantRefused(t, err, e.rec.count(), tt.cause)
		})
	}
}

func TestDefect12ErrorText(t *testing.T) {
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
