package securehttp

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

func TestPins(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	leafHex := strings.ReplaceAll(p.leaf.Fingerprint(), ":", "")
	wrong := "sha256/" + strings.Repeat("A", 43) + "="
	tests := []struct {
		name       string
		pins       []PinSet
		wantErr    bool
		wantReport int // report-only failures expected through Hooks.PinFailure
	}{
		{"leaf SPKI", []PinSet{{Host: hostAPI, Pins: []string{p.leaf.SPKIPin()}}}, false, 0},
		{"intermediate SPKI", []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin()}}}, false, 0},
		{"root the server does not send", []PinSet{{Host: hostAPI, Pins: []string{p.root.SPKIPin()}}}, false, 0},
		{"leaf fingerprint with colons", []PinSet{{Host: hostAPI, Pins: []string{p.leaf.Fingerprint()}}}, false, 0},
		{"leaf fingerprint plain lower case", []PinSet{{Host: hostAPI, Pins: []string{strings.ToLower(leafHex)}}}, false, 0},
		{"backup pin first", []PinSet{{Host: hostAPI, Pins: []string{wrong, p.inter.SPKIPin()}}}, false, 0},
		{"wrong pin", []PinSet{{Host: hostAPI, Pins: []string{wrong}}}, true, 0},
		{"wrong pin, host in upper case with dot", []PinSet{{Host: "API.TEST.", Pins: []string{wrong}}}, true, 0},
		{"pins of another host do not apply", []PinSet{{Host: hostOther, Pins: []string{wrong}}}, false, 0},
		{"wildcard one label does not match the apex", []PinSet{{Host: "*.api.test", Pins: []string{wrong}}}, false, 0},
		{"double wildcard matches the apex", []PinSet{{Host: "**.api.test", Pins: []string{wrong}}}, true, 0},
		{"wildcard one label", []PinSet{{Host: "*.test", Pins: []string{wrong}}}, true, 0},
		{"report only", []PinSet{{Host: hostAPI, Pins: []string{wrong}, ReportOnly: true}}, false, 1},
		{"expired set is not enforced", []PinSet{{Host: hostAPI, Pins: []string{wrong}, Expires: time.Now().Add(-time.Hour)}}, false, 0},
		{"unexpired set is enforced", []PinSet{{Host: hostAPI, Pins: []string{wrong}, Expires: time.Now().Add(time.Hour)}}, true, 0},
		{"enforced set wins over report-only", []PinSet{
			{Host: hostAPI, Pins: []string{wrong}},
			{Host: hostAPI, Pins: []string{wrong}, ReportOnly: true},
		}, true, 1},
		{"any matching set may hold the pin", []PinSet{
			{Host: hostAPI, Pins: []string{wrong}},
			{Host: "**.test", Pins: []string{p.root.SPKIPin()}},
		}, false, 0},
	}
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(okHandler))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var reports atomic.Int64
			cfg := testConfig(t)
			cfg.Pins = tt.pins
			cfg.Hooks = &Hooks{PinFailure: func(e *PinError) {
				if e.ReportOnly {
					reports.Add(1)
				}
			}}
			logger, logs := testutil.NewLogger()
			cfg.Logger = logger
			tr := newTestTransport(t, cfg)
			_, err := get(t, tr, testutil.HostURL(srv, hostAPI, "/"))
			if tt.wantErr {
				var pe *PinError
				if !errors.Is(err, ErrPinMismatch) || !errors.As(err, &pe) {
					t.Fatalf("got %v, want a *PinError matching ErrPinMismatch", err)
				}
				want := []string{p.leaf.SPKIPin(), p.inter.SPKIPin(), p.root.SPKIPin()}
				if pe.Host != hostAPI || !reflect.DeepEqual(pe.Pins, want) {
					t.Fatalf("got PinError{Host: %q, Pins: %v}, want {%q, %v}", pe.Host, pe.Pins, hostAPI, want)
				}
				if !strings.Contains(err.Error(), p.root.SPKIPin()) {
					t.Fatalf("error %q does not show the verified chain's pins", err)
				}
			} else if err != nil {
				t.Fatalf("got %v, want success", err)
			}
			if got := reports.Load(); got != int64(tt.wantReport) {
				t.Fatalf("got %d report-only failures, want %d", got, tt.wantReport)
			}
			if tt.wantReport > 0 && !strings.Contains(logs.String(), "pin mismatch") {
				t.Fatalf("report-only mismatch was not logged: %q", logs.String())
			}
		})
	}
}

func TestPinIPHost(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(okHandler))
	for _, tt := range []struct {
		name    string
		pin     string
		wantErr bool
	}{
		{"right pin", p.inter.SPKIPin(), false},
		{"leaf fingerprint", p.leaf.Fingerprint(), false},
		{"wrong SPKI pin", fakePin('B'), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.Pins = []PinSet{{Host: "127.0.0.1", Pins: []string{tt.pin}}}
			_, err := get(t, newTestTransport(t, cfg), srv.URL+"/")
			if got := errors.Is(err, ErrPinMismatch); got != tt.wantErr {
				t.Fatalf("got error %v, want pin mismatch %v", err, tt.wantErr)
			}
		})
	}
}

// TestAppendedCertificate is OkHttp's CVE-2016-2402: a server with a chain
// that verifies through one trusted root appends the pinned certificate of
// another hierarchy. Only the verified chain may count.
func TestAppendedCertificate(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	rogueRoot := testpki.Must(testpki.NewRoot("rogue but trusted root", testpki.Options{}))
	rogueInter := testpki.Must(rogueRoot.NewIntermediate("rogue intermediate", testpki.Options{}))
	rogueLeaf := testpki.Must(rogueInter.NewLeaf(hostAPI, testpki.Options{DNSNames: []string{hostAPI}}))
	srv := testutil.StartServer(t, testpki.TLSCertificate(rogueLeaf, rogueInter, p.inter, p.root), http.HandlerFunc(okHandler))

	roots := x509.NewCertPool()
	roots.AddCert(p.root.Cert)
	roots.AddCert(rogueRoot.Cert)
	for _, pinned := range []*testpki.Cert{p.inter, p.root} {
		cfg := testConfig(t)
		cfg.RootCAs = roots
		cfg.Pins = []PinSet{{Host: hostAPI, Pins: []string{pinned.SPKIPin(), pinned.Fingerprint()}}}
		_, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/"))
		var pe *PinError
		if !errors.As(err, &pe) {
			t.Fatalf("pinned %s: got %v, want a *PinError", pinned.Cert.Subject.CommonName, err)
		}
		want := []string{rogueLeaf.SPKIPin(), rogueInter.SPKIPin(), rogueRoot.SPKIPin()}
		if !reflect.DeepEqual(pe.Pins, want) {
			t.Fatalf("got chain pins %v, want the rogue verified chain %v", pe.Pins, want)
		}
	}
}

// TestPinsOnResumedConnections shows that VerifyConnection, and so the pin
// check, runs on resumed sessions: a transport with a wrong pin that resumes
// a session established by a correctly pinned one is still refused.
func TestPinsOnResumedConnections(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			t.Parallel()
			var resumed atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.TLS.DidResume {
					resumed.Add(1)
				}
				io.WriteString(w, "ok")
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.serverCert()}, MaxVersion: version}
			srv.Config.ErrorLog = testutil.QuietLog()
			srv.StartTLS()
			t.Cleanup(srv.Close)

			good := testConfig(t)
			good.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin()}}}
			trGood := newTestTransport(t, good)
			url := testutil.HostURL(srv, hostAPI, "/")
			for i := range 2 {
				if _, err := get(t, trGood, url); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				trGood.conns.base.CloseIdleConnections()
			}
			if got := resumed.Load(); got != 1 {
				t.Fatalf("got %d resumed connections, want 1 (the second)", got)
			}

			bad := testConfig(t)
			// The leaf's fingerprint with its last byte changed: a pin that
			// can never match (setting it to 00 matched one leaf in 256).
			fp := p.leaf.Fingerprint()
			last := "00"
			if strings.HasSuffix(fp, "00") {
				last = "FF"
			}
			bad.Pins = []PinSet{{Host: hostAPI, Pins: []string{fp[:len(fp)-2] + last}}}
			trBad := newTestTransport(t, bad)
			trBad.conns.base.TLSClientConfig.ClientSessionCache = trGood.conns.base.TLSClientConfig.ClientSessionCache
			var didResume atomic.Bool
			verify := trBad.conns.base.TLSClientConfig.VerifyConnection
			trBad.conns.base.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
				didResume.Store(cs.DidResume)
				return verify(cs)
			}
			_, err := get(t, trBad, url)
			if !didResume.Load() {
				t.Fatalf("the handshake did not resume; the test proves nothing")
			}
			if !errors.Is(err, ErrPinMismatch) {
				t.Fatalf("got %v on a resumed connection, want ErrPinMismatch", err)
			}
		})
	}
}

func TestPinParsing(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	fp := p.leaf.Fingerprint()
	for _, tt := range []struct {
		in   string
		kind pinKind
	}{
		{p.leaf.SPKIPin(), pinSPKI},
		{fp, pinCert},
		{strings.ToLower(fp), pinCert},
		{strings.ReplaceAll(fp, ":", ""), pinCert},
	} {
		got, err := parsePin(tt.in)
		if err != nil || got.kind != tt.kind {
			t.Fatalf("parsePin(%q) = (%v, %v), want kind %v", tt.in, got.kind, err, tt.kind)
		}
	}
	if fp != p.leaf.Fingerprint() || SPKIPin(p.leaf.Cert) != p.leaf.SPKIPin() {
		t.Fatalf("Fingerprint/SPKIPin disagree with the test PKI's independent computation")
	}
}

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

// TestPinsOpenSSLServer uses openssl s_server as a second TLS stack.
func TestPinsOpenSSLServer(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	pinned := func(c *Config) { c.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin()}}} }
	for _, tt := range []struct {
		name, want string
		args       []string
	}{
		{"TLS 1.3 only", "TLSv1.3", []string{"-tls1_3"}},
		{"TLS 1.2 only, one ECDHE suite", "ECDHE-ECDSA-AES128-GCM-SHA256", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := peers.StartOpenSSL(t, peers.OpenSSLConfig{CertPEM: testpki.ChainPEM(p.leaf, p.inter), KeyPEM: p.leaf.KeyPEM(), Args: tt.args})
			cfg := testConfig(t)
			pinned(&cfg)
			body, err := peerGet(t, cfg, peerURL(srv, hostAPI, "/"))
			if err != nil || !strings.Contains(body, tt.want) {
				t.Fatalf("got (%d bytes, %v), want a status page naming %s", len(body), err, tt.want)
			}
		})
	}

	t.Run("resumption keeps pins", func(t *testing.T) {
		t.Parallel()
		srv := peers.StartOpenSSL(t, peers.OpenSSLConfig{CertPEM: testpki.ChainPEM(p.leaf, p.inter), KeyPEM: p.leaf.KeyPEM(), Args: []string{"-tls1_3"}})
		url := peerURL(srv, hostAPI, "/")
		good := testConfig(t)
		pinned(&good)
		good.Retry.MaxRetries = -1
		trGood := newTestTransport(t, good)
		var resumed atomic.Int64
		verify := trGood.conns.base.TLSClientConfig.VerifyConnection
		trGood.conns.base.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			if cs.DidResume {
				resumed.Add(1)
			}
			return verify(cs)
		}
		for i := range 2 {
			if _, err := get(t, trGood, url); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			trGood.conns.base.CloseIdleConnections()
		}
		if resumed.Load() != 1 {
			t.Fatalf("got %d resumed handshakes with s_server, want 1", resumed.Load())
		}

		bad := testConfig(t)
		bad.Pins = []PinSet{{Host: hostAPI, Pins: []string{fakePin('R')}}}
		bad.Retry.MaxRetries = -1
		trBad := newTestTransport(t, bad)
		trBad.conns.base.TLSClientConfig.ClientSessionCache = trGood.conns.base.TLSClientConfig.ClientSessionCache
		var badResumed atomic.Bool
		verifyBad := trBad.conns.base.TLSClientConfig.VerifyConnection
		trBad.conns.base.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			badResumed.Store(cs.DidResume)
			return verifyBad(cs)
		}
		_, err := get(t, trBad, url)
		if !badResumed.Load() {
			t.Fatalf("the wrongly pinned client did not resume; the test proves nothing")
		}
		if !errors.Is(err, ErrPinMismatch) {
			t.Fatalf("got %v on a resumed session, want ErrPinMismatch", err)
		}
	})
}

// FuzzParsePin: whatever the input, parsePin returns an error with the zero
// pin, or a pin that reads back the same from its canonical form. Like every
// fuzz target here, its seeds run with each go test and .ci/fuzz fuzzes it
// for a bounded time.
func FuzzParsePin(f *testing.F) {
	digest := sha256.Sum256([]byte("securehttp fuzz"))
	spki := "sha256/" + base64.StdEncoding.EncodeToString(digest[:])
	for _, s := range []string{
		spki,
		"sha256/r/mIkG3eEpVdm+u/ko/cwxzOMo1bk4TyHIlByibiA5E=",
		"sha256/" + base64.RawStdEncoding.EncodeToString(digest[:]), // unpadded
		"sha256/" + base64.URLEncoding.EncodeToString(digest[:]),    // URL alphabet
		"sha256/" + spki[7:50] + "F",                                // non-zero padding bits
		"sha256/" + spki[7:30] + "\n" + spki[30:],                   // embedded newline
		"SHA256/" + spki[7:],
		"sha256//" + spki[7:],
		`pin-sha256="` + spki[7:] + `"`,
		"sha256 Fingerprint=" + fzColonHex(digest[:]),
		"SHA1 Fingerprint=" + fzColonHex(digest[:20]),
		spki[7:],
		spki + ";" + spki,
		"sha1/" + spki[7:],
		"sha256/",
		"sha256//",
		"/",
		hex.EncodeToString(digest[:]),
		strings.ToUpper(hex.EncodeToString(digest[:])),
		fzColonHex(digest[:]),
		fzColonHex(digest[:])[1:],
		":" + hex.EncodeToString(digest[:]),
		strings.Repeat(":", 63),
		strings.Repeat("zz", 32),
		strings.Repeat("é", 32),
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePin(s)
		if err != nil {
			if p != (pin{}) {
				t.Errorf("parsePin(%q) returned %v with error %v, want the zero pin", s, p, err)
			}
			return
		}
		switch p.kind {
		case pinSPKI:
			// The canonical form must read back as the same digest.
			canon := "sha256/" + base64.StdEncoding.EncodeToString(p.digest[:])
			again, err := parsePin(canon)
			if err != nil || again != p {
				t.Errorf("SPKI pin %q re-encoded as %q reads back as %v, %v; want %v", s, canon, again, err, p)
			}
		case pinCert:
			// The hex may follow openssl's "sha256 Fingerprint=" label.
			h := strings.ReplaceAll(s, ":", "")
			if _, after, ok := strings.Cut(h, "="); ok {
				h = after
			}
			// Surrounding space and a trailing ";" are dropped, as pasted
			// input has them.
			h = strings.TrimSpace(strings.Trim(strings.TrimSpace(h), ";"))
			if len(h) != 2*sha256.Size {
				t.Errorf("fingerprint %q has %d hex digits, want %d", s, len(h), 2*sha256.Size)
			}
			if got := hex.EncodeToString(p.digest[:]); got != strings.ToLower(h) {
				t.Errorf("fingerprint %q decoded to %s", s, got)
			}
			again, err := parsePin(fzColonHex(p.digest[:]))
			if err != nil || again != p {
				t.Errorf("fingerprint %q in openssl form reads back as %v, %v; want %v", s, again, err, p)
			}
		default:
			t.Errorf("parsePin(%q) returned kind %d", s, p.kind)
		}
	})
}

// fzColonHex formats b as openssl prints fingerprints: AB:CD:...
func fzColonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = strings.ToUpper(hex.EncodeToString([]byte{c}))
	}
	return strings.Join(parts, ":")
}

// TestUnpinnedHostWarnedOnce: pins configured for a valid but wrong host
// (127.0.0.2 where the API is 127.0.0.1) leave the real host unpinned; that
// is a warning, once per host however many connections and requests, naming
// the PinSet.Host it probably meant.
func TestUnpinnedHostWarnedOnce(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(okHandler))
	logger, logs := testutil.NewLogger()
	cfg := testConfig(t)
	cfg.Logger = logger
	cfg.Pins = []PinSet{{Host: "127.0.0.2", Pins: []string{p.inter.SPKIPin(), p.root.SPKIPin()}}}
	tr := newTestTransport(t, cfg)
	for range 3 {
		if _, err := get(t, tr, srv.URL+"/"); err != nil {
			t.Fatal(err)
		}
		tr.CloseIdleConnections() // a new handshake each time
	}
	var warnings []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "no PinSet covers this host") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 1 {
		t.Fatalf("got %d warnings, want 1 for three connections; log:\n%s", len(warnings), logs)
	}
	if !strings.Contains(warnings[0], "host=127.0.0.1") || !strings.Contains(warnings[0], "did_you_mean=127.0.0.2") {
		t.Errorf("got %q, want the host and the PinSet.Host it resembles", warnings[0])
	}
}

// TestRequirePins: with RequirePins, a host that no enforced PinSet in force
// covers is refused with ErrNotPinned before any connection (errors.Is
// through *url.Error), the error naming host:port and the nearest PinSet;
// a covered host is served; an expired or report-only set does not count.
func TestRequirePins(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &testutil.CountingListener{Listener: ln}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(okHandler))
	srv.Listener = l
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.serverCert()}}
	srv.Config.ErrorLog = testutil.QuietLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	good := []string{p.inter.SPKIPin(), p.root.SPKIPin()}
	tests := []struct {
		name    string
		pins    []PinSet
		host    string
		refused bool
	}{
		{"covered host", []PinSet{{Host: hostAPI, Pins: good}}, hostAPI, false},
		{"other host", []PinSet{{Host: hostAPI, Pins: good}}, hostOther, true},
		{"typo", []PinSet{{Host: "api.tset", Pins: good}}, hostAPI, true},
		{"expired set", []PinSet{{Host: hostAPI, Pins: good, Expires: time.Now().Add(-time.Hour)}}, hostAPI, true},
		{"report-only set", []PinSet{{Host: hostAPI, Pins: good, ReportOnly: true}}, hostAPI, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Pins, cfg.RequirePins = tt.pins, true
			before := l.N.Load()
			_, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, tt.host, "/"))
			if !tt.refused {
				if err != nil {
					t.Fatalf("got %v, want the covered host served", err)
				}
				return
			}
			if !errors.Is(err, ErrNotPinned) {
				t.Fatalf("got %v, want ErrNotPinned", err)
			}
			if n := l.N.Load() - before; n != 0 {
				t.Errorf("got %d connections, want none before the refusal", n)
			}
			if addr := strings.TrimPrefix(testutil.HostURL(srv, tt.host, ""), "https://"); !strings.Contains(err.Error(), addr) {
				t.Errorf("error %q does not name %s", err, addr)
			}
			if tt.name == "typo" && !strings.Contains(err.Error(), `"api.tset"`) {
				t.Errorf("error %q does not name the PinSet it resembles", err)
			}
		})
	}
}

// TestRequirePinsTokenEndpoint: with RequirePins the token endpoint needs
// pins too, and the error says which host lacks them.
func TestRequirePinsTokenEndpoint(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(okHandler))
	cfg := testConfig(t)
	cfg.RequirePins = true
	cfg.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin(), p.root.SPKIPin()}}}
	cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, ClientCredentials: &ClientCredentials{
		TokenURL: testutil.HostURL(srv, hostOther, "/token"), ClientID: "c", ClientSecret: "s"}}
	_, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/"))
	var re *RefreshError
	if !errors.As(err, &re) || !errors.Is(err, ErrNotPinned) {
		t.Fatalf("got %v, want a *RefreshError for ErrNotPinned", err)
	}
	if addr := strings.TrimPrefix(testutil.HostURL(srv, hostOther, ""), "https://"); !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the token endpoint's host and port %s", err, addr)
	}
}

// TestEmptyPinSaysSo: an empty entry, as a trailing comma leaves, is named
// as such, not as a fingerprint with 0 hex digits.
func TestEmptyPinSaysSo(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", "  "} {
		_, err := parsePin(raw)
		if err == nil || !strings.Contains(err.Error(), "empty pin") || strings.Contains(err.Error(), "hex digits") {
			t.Errorf("parsePin(%q): got %v, want an empty-pin error", raw, err)
		}
	}
}
