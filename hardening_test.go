package securehttp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// Tests for the defects of the security review (issue 16), one per defect,
// each named after it.

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
