package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"go/parser"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// wantSPKI and wantFingerprint compute pins independently of the library.
func wantSPKI(c *testpki.Cert) string {
	sum := sha256.Sum256(c.Cert.RawSubjectPublicKeyInfo)
	return "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
}

func wantFingerprint(c *testpki.Cert) string {
	sum := sha256.Sum256(c.Cert.Raw)
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(hexes, ":")
}

// printedCert is one certificate block of the pins output.
type printedCert struct {
	spki, fingerprint string
	sent              bool
}

// parseCerts reads the certificate blocks of the pins output, which start
// with "[i] role, origin".
func parseCerts(t *testing.T, out string) []printedCert {
	t.Helper()
	var certs []printedCert
	for _, block := range strings.Split(out, "\n\n") {
		if len(block) < 2 || block[0] != '[' || block[1] < '0' || block[1] > '9' {
			continue
		}
		lines := strings.Split(block, "\n")
		c := printedCert{sent: strings.HasSuffix(lines[0], ", sent by the server")}
		for _, l := range lines[1:] {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "SPKI pin"); ok {
				c.spki = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "fingerprint"); ok {
				c.fingerprint = strings.TrimSpace(v)
			}
		}
		certs = append(certs, c)
	}
	return certs
}

func pinsServer(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	p := sharedChain()
	srv := testutil.StartServer(t, testpki.TLSCertificate(p.leaf, p.inter), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	return srv, writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
}

func TestPins(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	srv, rootPEM := pinsServer(t)

	code, out, errOut := runCmd(t, "pins", "--cacert", rootPEM, srv.URL+"/")
	if code != exitOK {
		t.Fatalf("pins exit code = %d, want %d; stderr:\n%s", code, exitOK, errOut)
	}

	t.Run("chain", func(t *testing.T) {
		want := []printedCert{
			{wantSPKI(p.leaf), wantFingerprint(p.leaf), true},
			{wantSPKI(p.inter), wantFingerprint(p.inter), true},
			{wantSPKI(p.root), wantFingerprint(p.root), false}, // from --cacert
		}
		if got := parseCerts(t, out); !slices.Equal(got, want) {
			t.Errorf("printed certificates:\ngot  %+v\nwant %+v\noutput:\n%s", got, want, out)
		}
	})

	// The recommendation: the intermediate's key, and the root's as backup.
	wantPins := []string{wantSPKI(p.inter), wantSPKI(p.root)}

	t.Run("json", func(t *testing.T) {
		sets := printedJSON(t, out)
		if len(sets) != 1 || sets[0].Host != "127.0.0.1" || !slices.Equal(sets[0].Pins, wantPins) {
			t.Fatalf("got %+v, want one set for 127.0.0.1 with pins %q", sets, wantPins)
		}
		// The pasted pins work: a client with them reaches the server.
		client, err := securehttp.NewClient(securehttp.Config{RootCAs: p.root.Pool(), Pins: sets})
		if err != nil {
			t.Fatalf("NewClient with the printed pins: %v", err)
		}
		defer client.CloseIdleConnections()
		resp, err := client.Get(srv.URL + "/")
		if err != nil {
			t.Fatalf("GET with the printed pins: %v", err)
		}
		resp.Body.Close()
	})

	t.Run("go", func(t *testing.T) {
		literal := printedGo(t, out)
		for _, pin := range wantPins {
			if !strings.Contains(literal, fmt.Sprintf("%q", pin)) {
				t.Errorf("the Go literal lacks %q:\n%s", pin, literal)
			}
		}
	})

	t.Run("openssl", func(t *testing.T) {
		for _, tool := range []string{"openssl", "sh", "base64"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not on PATH", tool)
			}
		}
		printed := parseCerts(t, out)
		for i, c := range []*testpki.Cert{p.leaf, p.inter, p.root} {
			spki := "sha256/" + shell(t, c.CertPEM(),
				"openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64")
			_, fp, _ := strings.Cut(shell(t, c.CertPEM(), "openssl x509 -fingerprint -sha256 -noout"), "=")
			if i >= len(printed) {
				t.Fatalf("only %d certificates printed", len(printed))
			}
			if got := printed[i]; got.spki != spki || got.fingerprint != fp {
				t.Errorf("certificate %d: printed %s and %s, openssl computes %s and %s", i, got.spki, got.fingerprint, spki, fp)
			}
		}
	})
}

// printedGo returns the securehttp.PinSet literal of the pins output,
// checking that it parses as Go.
func printedGo(t *testing.T, out string) string {
	t.Helper()
	start := strings.Index(out, "\nsecurehttp.PinSet{\n")
	if start < 0 {
		t.Fatalf("no securehttp.PinSet literal in the output:\n%s", out)
	}
	end := strings.Index(out[start+1:], "\n}\n")
	if end < 0 {
		t.Fatalf("the securehttp.PinSet literal does not end:\n%s", out)
	}
	literal := out[start+1 : start+1+end+2]
	if _, err := parser.ParseExpr(literal); err != nil {
		t.Errorf("the Go literal does not parse: %v\n%s", err, literal)
	}
	return literal
}

// printedJSON unmarshals the JSON array that ends the pins output.
func printedJSON(t *testing.T, out string) []securehttp.PinSet {
	t.Helper()
	i := strings.Index(out, "\n[\n")
	if i < 0 {
		t.Fatalf("no JSON array in the output:\n%s", out)
	}
	var sets []securehttp.PinSet
	if err := json.Unmarshal([]byte(out[i+1:]), &sets); err != nil {
		t.Fatalf("the JSON does not unmarshal into []securehttp.PinSet: %v\n%s", err, out[i+1:])
	}
	return sets
}

func TestPinsChainShapes(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	localhost := testpki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	selfSigned := testpki.Must(testpki.SelfSignedLeaf("127.0.0.1", localhost))
	directLeaf := testpki.Must(p.root.NewLeaf("127.0.0.1", localhost))
	stranger := testpki.Must(testpki.NewRoot("stranger", testpki.Options{}))

	tests := []struct {
		name     string
		cert     tls.Certificate
		trust    *testpki.Cert
		wantPins []string // the recommended primary and backup
		wantSent []bool   // per certificate of the chain, leaf first
		notShown string   // a pin that must not be printed
	}{
		{"self-signed leaf trusted directly", testpki.TLSCertificate(selfSigned), selfSigned,
			[]string{wantSPKI(selfSigned)}, []bool{true}, ""},
		{"leaf issued by the root", testpki.TLSCertificate(directLeaf), p.root,
			[]string{wantSPKI(directLeaf), wantSPKI(p.root)}, []bool{true, false}, ""},
		{"extra certificate sent", testpki.TLSCertificate(p.leaf, p.inter, stranger), p.root,
			[]string{wantSPKI(p.inter), wantSPKI(p.root)}, []bool{true, true, false}, wantSPKI(stranger)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := testutil.StartServer(t, tt.cert, http.NotFoundHandler())
			rootPEM := writeFile(t, "root.pem", tt.trust.CertPEM(), 0o644)
			code, out, errOut := runCmd(t, "pins", "--cacert", rootPEM, srv.URL+"/")
			if code != exitOK {
				t.Fatalf("exit code = %d, want %d; stderr: %s", code, exitOK, errOut)
			}
			var sent []bool
			for _, c := range parseCerts(t, out) {
				sent = append(sent, c.sent)
			}
			if !slices.Equal(sent, tt.wantSent) {
				t.Errorf("sent marks = %v, want %v\n%s", sent, tt.wantSent, out)
			}
			if sets := printedJSON(t, out); len(sets) != 1 || !slices.Equal(sets[0].Pins, tt.wantPins) {
				t.Errorf("got pin sets %+v, want pins %q", sets, tt.wantPins)
			}
			printedGo(t, out)
			if tt.notShown != "" && strings.Contains(out, tt.notShown) {
				t.Errorf("the output shows %s, a pin of a certificate outside the verified chain:\n%s", tt.notShown, out)
			}
		})
	}
}

// shell runs a shell pipeline with stdin and returns its trimmed output.
func shell(t *testing.T, stdin []byte, pipeline string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", "set -e; "+pipeline)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", pipeline, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func TestPinsUntrusted(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	srv, rootPEM := pinsServer(t)
	other := testpki.Must(testpki.NewRoot("another root", testpki.Options{}))
	otherPEM := writeFile(t, "other.pem", other.CertPEM(), 0o644)
	expired := testpki.Must(p.inter.NewLeaf("127.0.0.1", testpki.Options{
		IPs:      []net.IP{net.IPv4(127, 0, 0, 1)},
		NotAfter: time.Now().Add(-time.Hour),
	}))
	expiredSrv := testutil.StartServer(t, testpki.TLSCertificate(expired, p.inter), http.NotFoundHandler())

	tests := []struct {
		name string
		args []string
		want int
	}{
		{"system roots", []string{"pins", srv.URL + "/"}, exitCertificate},
		{"another root", []string{"pins", "--cacert", otherPEM, srv.URL + "/"}, exitCertificate},
		{"expired leaf", []string{"pins", "--cacert", rootPEM, expiredSrv.URL + "/"}, exitCertificate},
		{"plain http", []string{"pins", "http://127.0.0.1:1/"}, exitInsecure},
		{"no scheme means https", []string{"pins", closedPort(t)}, exitConnect},
		{"missing --cacert file", []string{"pins", "--cacert", "/nonexistent/root.pem", srv.URL + "/"}, exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, tt.args...)
			if code != tt.want {
				t.Errorf("exit code = %d, want %d; stderr: %s", code, tt.want, errOut)
			}
			if out != "" || errOut == "" {
				t.Errorf("got stdout %q and stderr %q, want only an error on stderr", out, errOut)
			}
		})
	}
}

// TestPinsEscapesServerText checks that pins escapes the control characters
// of an error that quotes the server's certificate: the DNS names of a leaf
// that does not match the host are the server's choice, and an escape
// sequence among them (OSC 52 writes the clipboard) must reach the terminal
// as text.
func TestPinsEscapesServerText(t *testing.T) {
	t.Parallel()
	const (
		osc52      = "\x1b]52;c;cHduZWQ=\x07"
		osc52Shown = `\x1b]52;c;cHduZWQ=\x07`
	)
	p := sharedChain()
	leaf := testpki.Must(p.inter.NewLeaf("evil", testpki.Options{DNSNames: []string{"a" + osc52 + ".test"}}))
	srv := testutil.StartServer(t, testpki.TLSCertificate(leaf, p.inter), http.NotFoundHandler())
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCmd(t, "pins", "--cacert", rootPEM, "https://localhost:"+port+"/")
	if code != exitCertificate {
		t.Fatalf("got exit code %d, want %d; stderr %q", code, exitCertificate, errOut)
	}
	if out != "" {
		t.Errorf("got stdout %q, want nothing", out)
	}
	if strings.ContainsAny(errOut, "\x1b\x07") {
		t.Errorf("got stderr %q, want its control characters escaped", errOut)
	}
	if !strings.Contains(errOut, osc52Shown) {
		t.Errorf("got stderr %q, want it to hold %q", errOut, osc52Shown)
	}
}

// TestPinsJSON: pins --json prints the JSON alone, and it is the
// recommended []PinSet.
func TestPinsJSON(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	srv, rootPEM := pinsServer(t)
	code, out, errOut := runCmd(t, "pins", "--json", "--cacert", rootPEM, srv.URL+"/")
	if code != exitOK {
		t.Fatalf("got exit code %d, stderr %q", code, errOut)
	}
	var sets []securehttp.PinSet
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sets); err != nil {
		t.Fatalf("stdout is not a JSON []PinSet: %v\n%s", err, out)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); strings.TrimSpace(string(rest)) != "" {
		t.Errorf("stdout has %q after the JSON", rest)
	}
	u, _ := url.Parse(srv.URL)
	want := []string{wantSPKI(p.inter), wantSPKI(p.root)}
	if len(sets) != 1 || sets[0].Host != u.Hostname() || !slices.Equal(sets[0].Pins, want) {
		t.Errorf("got %+v, want one set for %s with %v", sets, u.Hostname(), want)
	}
	// What it prints configures a client that reaches the server.
	pool := p.root.Pool()
	c, err := securehttp.NewClient(securehttp.Config{RootCAs: pool, Pins: sets})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	resp, err := c.Get(srv.URL + "/")
	if err != nil {
		t.Fatalf("a client configured with the printed pins: %v", err)
	}
	resp.Body.Close()
}

// TestPinsTargetForms: pins takes the server as the pin-mismatch hint
// prints it and as people type it: an https URL with or without a port or
// a path, or a bare host[:port][/path], which means https. Flags may come
// after it.
func TestPinsTargetForms(t *testing.T) {
	t.Parallel()
	srv, rootPEM := pinsServer(t)
	hostPort := srv.Listener.Addr().String()
	for _, args := range [][]string{
		{"--cacert", rootPEM, "https://" + hostPort + "/"},
		{"--cacert", rootPEM, "https://" + hostPort},
		{"--cacert", rootPEM, "https://" + hostPort + "/v1/me?x=1"},
		{"--cacert", rootPEM, hostPort},
		{hostPort, "--cacert", rootPEM},
		{"--cacert=" + rootPEM, hostPort},
		{"--cacert", rootPEM, hostPort + "/any/path"},
	} {
		code, out, errOut := runCmd(t, append([]string{"pins", "--json"}, args...)...)
		var sets []securehttp.PinSet
		if err := json.Unmarshal([]byte(out), &sets); code != exitOK || err != nil || len(sets) != 1 {
			t.Errorf("pins --json %q: got exit code %d and stdout %q, want 0 and one PinSet; stderr %q", args, code, out, errOut)
		}
	}
	for _, tt := range []struct {
		target string
		want   int
	}{
		{"http://" + hostPort + "/", exitInsecure},
		{"ftp://" + hostPort + "/", exitInsecure},
		{"https:///path", exitUsage},
	} {
		if code, _, errOut := runCmd(t, "pins", "--cacert", rootPEM, tt.target); code != tt.want {
			t.Errorf("pins %q: got exit code %d, want %d; stderr %q", tt.target, code, tt.want, errOut)
		}
	}
}
