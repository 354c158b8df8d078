package securehttp

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
