package securehttp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// These tests staple OCSP responses that openssl ocsp signed offline, as an
// operator makes them for nginx's ssl_stapling_file, and check what the
// client makes of each one when a real nginx serves it.

// ocspSpec describes one OCSP response for openssl ocsp to sign.
type ocspSpec struct {
	subject *testpki.Cert // the certificate the response speaks of
	ca      *testpki.Cert // the CA its CertID names; nil means subject.Issuer
	revoked bool
	signer  *testpki.Cert // the responder (-rsigner); nil means the CA itself
	noCerts bool          // -resp_no_certs: no certificate travels with the response
	trusted bool          // whether openssl, trusting only the root, accepts it
}

// opensslTime formats t as an OpenSSL CA database does.
func opensslTime(t time.Time) string { return t.UTC().Format("060102150405Z") }

// opensslOCSP has openssl ocsp write a request for spec and sign a response
// to it from a CA index, then checks that the response says what spec asks
// for: openssl must verify it against root exactly when spec.trusted, and
// otherwise when told to trust the signer outright, so that trust is the
// only thing wrong with it.
func opensslOCSP(t *testing.T, openssl string, root *testpki.Cert, spec ocspSpec) []byte {
	t.Helper()
	ca := spec.ca
	if ca == nil {
		ca = spec.subject.Issuer
	}
	signer := spec.signer
	if signer == nil {
		signer = ca
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, openssl, args...).CombinedOutput()
		return string(out), err
	}

	caPEM := write("ca.pem", ca.CertPEM())
	rootPEM := write("root.pem", root.CertPEM())
	subjectPEM := write("subject.pem", spec.subject.CertPEM())
	signerPEM := write("signer.pem", signer.CertPEM())
	signerKey := write("signer.key", signer.KeyPEM())

	// openssl looks serials up as BN_bn2hex writes them: upper case, whole
	// octets.
	serial := fmt.Sprintf("%X", spec.subject.Cert.SerialNumber)
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	status, revokedAt := "V", ""
	if spec.revoked {
		status, revokedAt = "R", opensslTime(time.Now().Add(-time.Hour))
	}
	index := write("index.txt", []byte(strings.Join([]string{
		status, opensslTime(spec.subject.Cert.NotAfter), revokedAt, serial, "unknown",
		"/CN=" + spec.subject.Cert.Subject.CommonName,
	}, "\t")+"\n"))

	// The CertID names ca. For the subject's own issuer -cert does; for
	// another CA, the subject's serial is named under that CA's name and key.
	id := []string{"-issuer", caPEM, "-cert", subjectPEM}
	if ca != spec.subject.Issuer {
		id = []string{"-issuer", caPEM, "-serial", "0x" + serial}
	}
	req, resp := filepath.Join(dir, "req.der"), filepath.Join(dir, "resp.der")
	args := append(append([]string{"ocsp"}, id...), "-no_nonce", "-reqout", req)
	if out, err := run(args...); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	args = []string{"ocsp", "-index", index, "-rsigner", signerPEM, "-rkey", signerKey, "-CA", caPEM,
		"-reqin", req, "-respout", resp, "-ndays", "1"}
	if spec.noCerts {
		args = append(args, "-resp_no_certs")
	}
	if out, err := run(args...); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	verified := func(trust ...string) (bool, string) {
		args := append(append([]string{"ocsp", "-respin", resp}, id...), trust...)
		args = append(args, "-resp_text")
		out, err := run(args...)
		return err == nil && strings.Contains(out, "Response verify OK"), "openssl " + strings.Join(args, " ") + "\n" + out
	}
	if ok, out := verified("-CAfile", rootPEM, "-verify_other", caPEM); ok != spec.trusted {
		t.Fatalf("openssl verified the response: got %v, want %v\n%s", ok, spec.trusted, out)
	}
	if !spec.trusted {
		if ok, out := verified("-VAfile", signerPEM); !ok {
			t.Fatalf("openssl did not verify the response even trusting its signer\n%s", out)
		}
	}

	der, err := os.ReadFile(resp)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ocsp.ParseResponse(der, nil)
	if err != nil {
		t.Fatalf("parse the response openssl signed: %v", err)
	}
	wantStatus := ocsp.Good
	if spec.revoked {
		wantStatus = ocsp.Revoked
	}
	if parsed.Status != wantStatus || parsed.SerialNumber.Cmp(spec.subject.Cert.SerialNumber) != 0 {
		t.Fatalf("openssl signed: got status %d for serial %X, want status %d for %X",
			parsed.Status, parsed.SerialNumber, wantStatus, spec.subject.Cert.SerialNumber)
	}
	if gotCerts := parsed.Certificate != nil; gotCerts == spec.noCerts {
		t.Fatalf("response carries a certificate: got %v, want %v", gotCerts, !spec.noCerts)
	}
	return der
}

func TestOCSPStapleNginx(t *testing.T) {
	t.Parallel()
	openssl := peers.Require(t, "openssl")
	peers.Require(t, "nginx")
	p := sharedPKI(t)

	// crypto/x509 checks certificates against the real clock, the client
	// checks staples against its own: the leaves outlive by far the clock
	// moved forward in the expired case.
	month := time.Now().Add(30 * 24 * time.Hour)
	newLeaf := func(cn string, o testpki.Options) *testpki.Cert {
		if o.NotAfter.IsZero() {
			o.NotAfter = month
		}
		return testpki.Must(p.inter.NewLeaf(cn, o))
	}
	api := testpki.Options{DNSNames: []string{hostAPI}}
	leaf := newLeaf(hostAPI, api)
	other := newLeaf(hostAPI, api)
	mustStapleLeaf := newLeaf(hostAPI, testpki.Options{DNSNames: []string{hostAPI}, MustStaple: true})
	stranger := testpki.Must(testpki.NewRoot("unrelated OCSP signer", testpki.Options{}))
	sibling := testpki.Must(p.root.NewIntermediate("sibling intermediate", testpki.Options{}))
	ocspSigning := []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	responder := newLeaf("delegated OCSP responder", testpki.Options{ExtKeyUsage: ocspSigning})
	notResponder := newLeaf("responder without OCSP signing", testpki.Options{})
	expiredResponder := newLeaf("expired OCSP responder", testpki.Options{ExtKeyUsage: ocspSigning,
		NotAfter: time.Now().Add(-time.Hour)})

	type testCase struct {
		name    string
		leaf    *testpki.Cert
		staple  []byte        // nil: nginx staples nothing
		require bool          // Config.RequireOCSPStaple
		ahead   time.Duration // how far the client's clock runs ahead
		want    error         // nil: the request succeeds
	}
	// Only the cases that say so require a staple, so an ErrOCSPStaple in
	// any other case comes from a staple that nginx did send.
	var tests []testCase
	for _, form := range []struct {
		name    string
		noCerts bool
	}{
		{"issuer certificate sent", false}, // what openssl ocsp writes by default
		{"no certificate sent", true},
	} {
		staple := func(s ocspSpec) []byte {
			s.noCerts = form.noCerts
			return opensslOCSP(t, openssl, p.root, s)
		}
		good := staple(ocspSpec{subject: leaf, trusted: true})
		cases := []testCase{
			{name: "good", leaf: leaf, staple: good},
			{name: "good, staple required", leaf: leaf, staple: good, require: true},
			{name: "revoked", leaf: leaf, staple: staple(ocspSpec{subject: leaf, revoked: true, trusted: true}), want: ErrRevoked},
			// openssl cannot date nextUpdate in the past; the client's clock
			// moves past it instead. The same bytes pass in "good".
			{name: "expired", leaf: leaf, staple: good, ahead: 72 * time.Hour, want: ErrOCSPStaple},
			{name: "another certificate", leaf: leaf, staple: staple(ocspSpec{subject: other, trusted: true}), want: ErrOCSPStaple},
			// Signed by the leaf's own issuer and for the leaf's serial, but
			// the CertID names another CA: a serial is unique only within
			// one issuer.
			{name: "another CA's certificate with the same serial", leaf: leaf,
				staple: staple(ocspSpec{subject: leaf, ca: sibling, signer: p.inter}), want: ErrOCSPStaple},
			{name: "signed by an unrelated key", leaf: leaf, staple: staple(ocspSpec{subject: leaf, signer: stranger}), want: ErrOCSPStaple},
			{name: "must-staple leaf, good", leaf: mustStapleLeaf, staple: staple(ocspSpec{subject: mustStapleLeaf, trusted: true})},
		}
		for _, c := range cases {
			c.name += " (" + form.name + ")"
			tests = append(tests, c)
		}
	}
	// A delegated responder's certificate always travels with the response.
	delegated := func(signer *testpki.Cert, trusted bool) []byte {
		return opensslOCSP(t, openssl, p.root, ocspSpec{subject: leaf, signer: signer, trusted: trusted})
	}
	tests = append(tests,
		testCase{name: "delegated responder", leaf: leaf, staple: delegated(responder, true)},
		testCase{name: "delegated responder without OCSP signing", leaf: leaf, staple: delegated(notResponder, false), want: ErrOCSPStaple},
		testCase{name: "expired delegated responder", leaf: leaf, staple: delegated(expiredResponder, false), want: ErrOCSPStaple},
		testCase{name: "no staple", leaf: leaf},
		testCase{name: "no staple, staple required", leaf: leaf, require: true, want: ErrOCSPStaple},
		testCase{name: "must-staple leaf, no staple", leaf: mustStapleLeaf, want: ErrOCSPStaple},
	)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := peers.StartNginx(t, peers.NginxConfig{
				CertPEM:    testpki.ChainPEM(tt.leaf, p.inter), // nginx staples only with the issuer at hand
				KeyPEM:     tt.leaf.KeyPEM(),
				StapleFile: tt.staple,
			})
			// Retries stay on, as testConfig sets them: a staple failure
			// must end the request after its one connection.
			var dials atomic.Int32
			cfg := testConfig(t)
			cfg.RequireOCSPStaple = tt.require
			cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return testutil.LoopbackDial(ctx, network, addr)
			}
			tr := newTestTransport(t, cfg)
			if tt.ahead != 0 {
				tr.now = func() time.Time { return time.Now().Add(tt.ahead) }
			}

			resp, err := (&http.Client{Transport: tr}).Get(fmt.Sprintf("https://%s:%d/", hostAPI, srv.Port))
			if n := dials.Load(); n != 1 {
				t.Errorf("got %d connections, want 1 (no retry)", n)
			}
			if tt.want != nil {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got %s, want an error wrapping %q", resp.Status, tt.want)
				}
				if !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want an error wrapping %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want success", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil || string(body) != "ok\n" {
				t.Fatalf("got body %q (%v), want %q", body, err, "ok\n")
			}
			// The client saw exactly the file nginx was given, or nothing.
			if got := resp.TLS.OCSPResponse; !bytes.Equal(got, tt.staple) {
				t.Errorf("got a %d-byte stapled response, want the %d-byte file", len(got), len(tt.staple))
			}
		})
	}
}

// TestOCSPStapleOnResumption: a resumed TLS session is not refused for the
// staple of its full handshake having aged since, for TLS 1.2 and 1.3 alike,
// while a full handshake with the now-stale staple is refused with
// ErrOCSPStaple.
func TestOCSPStapleOnResumption(t *testing.T) {
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

// fzStaplePKI is a chain with a must-staple leaf and OCSP responses for it,
// generated once per test binary.
type fzStaplePKI struct {
	root, inter, leaf *testpki.Cert
	good, revoked     []byte
	seeds             [][]byte
}

var (
	fzStapleOnce sync.Once
	fzStapleVal  *fzStaplePKI
)

func fzStaple(tb testing.TB) *fzStaplePKI {
	tb.Helper()
	fzStapleOnce.Do(func() {
		now := time.Now()
		root := testpki.Must(testpki.NewRoot("fuzz root", testpki.Options{}))
		inter := testpki.Must(root.NewIntermediate("fuzz intermediate", testpki.Options{}))
		leaf := testpki.Must(inter.NewLeaf("fuzz.test", testpki.Options{DNSNames: []string{"fuzz.test"}, MustStaple: true}))
		other := testpki.Must(inter.NewLeaf("other.test", testpki.Options{DNSNames: []string{"other.test"}}))
		stranger := testpki.Must(testpki.Must(root.NewIntermediate("another intermediate", testpki.Options{})).NewLeaf("fuzz.test", testpki.Options{}))
		resp := func(c *testpki.Cert, st testpki.OCSPStatus, this, next time.Time) []byte {
			der, err := c.OCSPResponse(st, this, next)
			if err != nil {
				panic(err)
			}
			return der
		}
		p := &fzStaplePKI{
			root: root, inter: inter, leaf: leaf,
			good:    resp(leaf, testpki.OCSPGood, now.Add(-time.Hour), now.Add(time.Hour)),
			revoked: resp(leaf, testpki.OCSPRevoked, now.Add(-time.Hour), now.Add(time.Hour)),
		}
		p.seeds = [][]byte{
			p.good,
			p.revoked,
			resp(leaf, testpki.OCSPGood, now.Add(-48*time.Hour), now.Add(-24*time.Hour)), // expired
			resp(leaf, testpki.OCSPGood, now.Add(24*time.Hour), now.Add(48*time.Hour)),   // not yet valid
			resp(leaf, testpki.OCSPGood, now.Add(-30*24*time.Hour), time.Time{}),         // stale, no nextUpdate
			resp(other, testpki.OCSPGood, now.Add(-time.Hour), now.Add(time.Hour)),       // another certificate
			resp(stranger, testpki.OCSPGood, now.Add(-time.Hour), now.Add(time.Hour)),    // another issuer
			p.good[:len(p.good)/2],          // truncated
			append(slices.Clone(p.good), 0), // trailing data
			{0x30, 0x03, 0x0a, 0x01, 0x01},  // malformedRequest
			{0x30, 0x03, 0x0a, 0x01, 0x03},  // tryLater
			{0x30, 0x03, 0x0a, 0x01, 0x00},  // successful, no body
			{0x30, 0x00},
			{0x30, 0x80, 0x00, 0x00}, // BER indefinite length
			{},
		}
		fzStapleVal = p
	})
	return fzStapleVal
}

// FuzzOCSPStaple: of all byte strings, verifyStaple and checkStaple accept
// only the issuer's good response, report only its revoked one as
// ErrRevoked, and refuse anything else with ErrOCSPStaple.
func FuzzOCSPStaple(f *testing.F) {
	p := fzStaple(f)
	for _, s := range p.seeds {
		f.Add(s)
	}
	tr, err := newTransport(Config{})
	if err != nil {
		f.Fatalf("NewTransport: %v", err)
	}
	chains := [][]*x509.Certificate{{p.leaf.Cert, p.inter.Cert, p.root.Cert}}
	f.Fuzz(func(t *testing.T, staple []byte) {
		err := tr.verifyStaple(staple, p.leaf.Cert, p.inter.Cert, true)
		fzCheckStapleErr(t, "verifyStaple", p, staple, err)

		err = tr.checkStaple(tls.ConnectionState{OCSPResponse: staple}, chains)
		if len(staple) == 0 {
			// The leaf is must-staple: no staple is an error.
			if !errors.Is(err, ErrOCSPStaple) {
				t.Errorf("checkStaple with no staple for a must-staple leaf: got %v, want ErrOCSPStaple", err)
			}
			return
		}
		fzCheckStapleErr(t, "checkStaple", p, staple, err)
	})
}

// fzCheckStapleErr holds a staple verdict to what the bytes are: only the
// issuer's own good response passes, only its revoked one is ErrRevoked, and
// anything else is ErrOCSPStaple.
func fzCheckStapleErr(t *testing.T, fn string, p *fzStaplePKI, staple []byte, err error) {
	t.Helper()
	switch {
	case bytes.Equal(staple, p.good):
		if err != nil {
			t.Errorf("%s refused the issuer's good response: %v", fn, err)
		}
	case bytes.Equal(staple, p.revoked):
		if !errors.Is(err, ErrRevoked) {
			t.Errorf("%s on the issuer's revoked response: got %v, want ErrRevoked", fn, err)
		}
	case err == nil:
		t.Errorf("%s accepted %d bytes that are not the issuer's good response: %x", fn, len(staple), staple)
	case errors.Is(err, ErrRevoked):
		t.Logf("%s reports revoked for bytes other than the issuer's revoked response (a re-encoding of it?): %x", fn, staple)
	case !errors.Is(err, ErrOCSPStaple):
		t.Errorf("%s: got %v, want ErrOCSPStaple", fn, err)
	}
}

// FuzzMustStaple: mustStaple reads a TLS Feature extension that lists
// status_request as must-staple, and one it cannot read as must-staple too,
// the strictest reading.
func FuzzMustStaple(f *testing.F) {
	for _, s := range [][]byte{
		{0x30, 0x03, 0x02, 0x01, 0x05},                            // status_request
		{0x30, 0x06, 0x02, 0x01, 0x11, 0x02, 0x01, 0x05},          // status_request_v2, status_request
		{0x30, 0x03, 0x02, 0x01, 0x11},                            // status_request_v2 only
		{0x30, 0x00},                                              // no feature
		{0x30, 0x00, 0x02, 0x01, 0x05},                            // status_request after the list
		{0x30, 0x03, 0x02, 0x01, 0x05, 0x00},                      // trailing byte
		{0x30, 0x0b, 0x02, 0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x05}, // integer too large for int
		{0x31, 0x03, 0x02, 0x01, 0x05},                            // SET instead of SEQUENCE
		{0x02, 0x01, 0x05},                                        // bare INTEGER
		{},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		cert := &x509.Certificate{Extensions: []pkix.Extension{{Id: oidTLSFeature, Value: value}}}
		got := mustStaple(cert)
		var features []int
		rest, err := asn1.Unmarshal(value, &features)
		switch {
		case err != nil || len(rest) > 0:
			// Not a well-formed SEQUENCE OF INTEGER: the strictest reading.
			if !got {
				t.Errorf("mustStaple(% x) = false for an unreadable feature list, want true", value)
			}
		case got != slices.Contains(features, featureStatusRequest):
			t.Errorf("mustStaple(% x) = %v for features %v", value, got, features)
		}
	})
}
