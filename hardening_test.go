package securehttp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// Tests for the defects of the security review (issue 16), one per defect,
// each named after it.

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
