package securehttp

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// TestPinInputForms feeds parsePin what people paste from curl, openssl and
// HPKP headers: each reads as the canonical pin, and a near miss is refused
// with an error that names what it looks like and shows the right form.
func TestPinInputForms(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	spki := p.leaf.SPKIPin()
	b64 := strings.TrimPrefix(spki, "sha256/")
	fp := p.leaf.Fingerprint()
	wantSPKI, err := parsePin(spki)
	if err != nil {
		t.Fatal(err)
	}
	wantCert, err := parsePin(fp)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(b64)
	slashDigest := sha256.Sum256([]byte("a digest whose base64 starts with a slash"))
	for i := 0; slashDigest[0]>>2 != 63; i++ {
		slashDigest = sha256.Sum256(append(slashDigest[:], byte(i)))
	}
	slashB64 := base64.StdEncoding.EncodeToString(slashDigest[:])
	accepted := []struct {
		name, in string
		want     pin
	}{
		{"canonical SPKI", spki, wantSPKI},
		{"curl sha256//", "sha256//" + b64, wantSPKI},
		{"upper-case SHA256/", "SHA256/" + b64, wantSPKI},
		{"HPKP pin-sha256", `pin-sha256="` + b64 + `"`, wantSPKI},
		{"HPKP pin-sha256 with a semicolon", `pin-sha256="` + b64 + `";`, wantSPKI},
		{"HPKP header with directives", `max-age=5184000; pin-sha256="` + b64 + `"; includeSubDomains`, wantSPKI},
		{"canonical digest starting with a slash", "sha256/" + slashB64, pin{kind: pinSPKI, digest: slashDigest}},
		{"curl form of a digest starting with a slash", "sha256//" + slashB64, pin{kind: pinSPKI, digest: slashDigest}},
		{"openssl fingerprint", fp, wantCert},
		{"openssl's whole line", "sha256 Fingerprint=" + fp, wantCert},
		{"openssl 1.x's whole line", "SHA256 Fingerprint=" + fp, wantCert},
		{"plain hex", strings.ReplaceAll(fp, ":", ""), wantCert},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parsePin(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("parsePin(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
			}
		})
	}

	sha1Hex := strings.Repeat("AB:", 19) + "AB"
	refused := []struct {
		name, in string
		hints    []string // what the message must name: the form it looks like, and the right one
	}{
		{"sha1 SPKI", "sha1/" + b64, []string{`"sha1"`, "sha256/<base64"}},
		// The slash digest's base64url form differs from its base64 form.
		{"base64url", "sha256/" + base64.URLEncoding.EncodeToString(slashDigest[:]), []string{"base64url", "sha256/<base64"}},
		{"unpadded", "sha256/" + base64.RawStdEncoding.EncodeToString(raw), []string{"padding", "sha256/<base64"}},
		{"short digest", "sha256/" + base64.StdEncoding.EncodeToString(raw[:20]), []string{"20 bytes", "sha256/<base64"}},
		{"openssl SHA-1 line", "SHA1 Fingerprint=" + sha1Hex, []string{"SHA1 fingerprint", "-sha256"}},
		{"SHA-1 hex", sha1Hex, []string{"SHA-1", "-fingerprint -sha256"}},
		{"HPKP sha1", `pin-sha1="` + b64 + `"`, []string{"HPKP", "sha256/<base64"}},
		{"HPKP without quotes", `pin-sha256=` + b64, []string{"HPKP", `pin-sha256="<base64>"`}},
		{"SPKI without prefix", b64, []string{"without its prefix", spki}},
		{"curl list", "sha256//" + b64 + ";sha256//" + b64, []string{"several pins", "own entry"}},
		{"HPKP header with two pins", `pin-sha256="` + b64 + `"; pin-sha256="` + b64 + `"; max-age=10`, []string{"several pins", "own entry"}},
		{"only directives", `max-age=10; includeSubDomains`, []string{"HPKP directives", "sha256/<base64"}},
		{"bad colons", fp[1:], []string{"fingerprint", "64 hex digits"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := newTransport(Config{Pins: []PinSet{{Host: hostAPI, Pins: []string{tt.in}}}})
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != "Pins[0].Pins[0]" {
				t.Fatalf("got %v, want a *ConfigError for Pins[0].Pins[0]", err)
			}
			for _, h := range tt.hints {
				if !strings.Contains(err.Error(), h) {
					t.Errorf("got %q, want it to mention %q", err, h)
				}
			}
			if n := strings.Count(err.Error(), "securehttp:"); n != 1 {
				t.Errorf("got %d \"securehttp:\" prefixes in %q, want 1", n, err)
			}
		})
	}
}

// TestPinSetBackupWarning: duplicates count once, and a set left with one
// pin is warned about at construction, citing RFC 7469.
func TestPinSetBackupWarning(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	a, b := p.leaf.SPKIPin(), p.inter.SPKIPin()
	for _, tt := range []struct {
		name     string
		pins     []string
		wantPins int
		wantWarn bool
	}{
		{"one pin", []string{a}, 1, true},
		{"the same pin twice", []string{a, a}, 1, true},
		{"the same pin in two forms", []string{a, "sha256/" + a[len("sha256/"):]}, 1, true},
		{"a pin and a backup", []string{a, b}, 2, false},
		{"a pin, a backup and a repeat", []string{a, b, "SHA256/" + a[len("sha256/"):]}, 2, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := testutil.NewLogger()
			tr, err := newTransport(Config{Logger: logger, Pins: []PinSet{{Host: hostAPI, Pins: tt.pins}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(tr.pins[0].pins); got != tt.wantPins {
				t.Errorf("got %d distinct pins, want %d", got, tt.wantPins)
			}
			warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "RFC 7469")
			if warned != tt.wantWarn {
				t.Errorf("got a backup-pin warning %v, want %v; log:\n%s", warned, tt.wantWarn, logs)
			}
		})
	}
}

// TestPinErrorDetails: the error lists the configured pins and the chain's,
// each with its position, and points to the pins command, while the
// contract fields keep their meaning.
func TestPinErrorDetails(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(okHandler))
	stranger := testpki.Must(testpki.NewRoot("stranger", testpki.Options{}))
	strangerFP := stranger.Fingerprint()
	cfg := testConfig(t)
	cfg.Pins = []PinSet{{Host: hostAPI, Pins: []string{stranger.SPKIPin(), strings.ToLower(strangerFP), fakePin('B')}}}
	_, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/"))
	var pe *PinError
	if !errors.As(err, &pe) || !errors.Is(err, ErrPinMismatch) {
		t.Fatalf("got %v, want a *PinError", err)
	}
	if want := []string{p.leaf.SPKIPin(), p.inter.SPKIPin(), p.root.SPKIPin()}; !slices.Equal(pe.Pins, want) {
		t.Errorf("got Pins %v, want %v", pe.Pins, want)
	}
	if want := []string{"leaf", "intermediate", "root"}; !slices.Equal(pe.Positions, want) {
		t.Errorf("got Positions %v, want %v", pe.Positions, want)
	}
	if want := []string{stranger.SPKIPin(), strangerFP, fakePin('B')}; !slices.Equal(pe.Configured, want) {
		t.Errorf("got Configured %v, want %v", pe.Configured, want)
	}
	// A PinError made by hand, with the contract fields only, still reads.
	if got, want := (&PinError{Host: "h.test"}).Error(), `securehttp: certificate pin mismatch for h.test`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := (&PinError{Host: "::1", Pins: []string{"sha256/x"}}).Error(); !strings.HasSuffix(got, "has sha256/x") {
		t.Errorf("got %q, want the pin without a position", got)
	}
	// The request's error names host and port, and the pins command works
	// as printed: the port, and --cacert since the client trusts a root of
	// its own.
	msg := err.Error()
	addr := strings.TrimPrefix(testutil.HostURL(srv, hostAPI, ""), "https://")
	for _, want := range []string{"leaf " + p.leaf.SPKIPin(), "intermediate " + p.inter.SPKIPin(), "root " + p.root.SPKIPin(),
		strangerFP, "(at " + addr + ")", `"securehttp pins --cacert FILE https://` + addr + `/"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
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

// TestTLSErrorExplained: an unknown authority names the host and the way
// to trust a private CA; errors.As still finds the crypto/tls and x509
// types.
func TestTLSErrorExplained(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(okHandler))
	cfg := testConfig(t)
	cfg.RootCAs = x509.NewCertPool() // trusts nothing
	_, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/"))
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &cve) || !errors.As(err, &uae) {
		t.Fatalf("got %v, want a *tls.CertificateVerificationError wrapping x509.UnknownAuthorityError", err)
	}
	for _, want := range []string{hostAPI, "Config.RootCAs", "--cacert"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if n := strings.Count(err.Error(), "securehttp:"); n != 1 {
		t.Errorf("got %d \"securehttp:\" prefixes in %q, want 1", n, err)
	}

	// A name mismatch names the host but does not point at the roots.
	_, err = get(t, newTestTransport(t, testConfig(t)), testutil.HostURL(srv, "wrong.test", "/"))
	var hne x509.HostnameError
	if !errors.As(err, &hne) || !strings.Contains(err.Error(), "wrong.test") || strings.Contains(err.Error(), "RootCAs") {
		t.Errorf("got %v, want an x509.HostnameError naming wrong.test without the RootCAs hint", err)
	}
}

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
	if -1 >= 0 {
		t.Fatalf("got -1 = %d, want a negative value", -1)
	}
	for _, tt := range []struct {
		name string
		max  int
		want int64
	}{
		{"zero value retries 3 times", 0, 4},
		{"-1 sends once", -1, 1},
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
