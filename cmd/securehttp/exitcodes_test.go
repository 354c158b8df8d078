package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testpki"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	wrapped := func(err error) error {
		return &url.Error{Op: "Get", URL: "https://example.test/", Err: fmt.Errorf("round trip: %w", err)}
	}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"insecure scheme", wrapped(securehttp.ErrInsecureScheme), exitInsecure},
		{"pin error", wrapped(&securehttp.PinError{Host: "example.test"}), exitPin},
		{"pin error at the token endpoint", wrapped(&securehttp.RefreshError{Err: &securehttp.PinError{Host: "example.test"}}), exitPin},
		{"certificate verification", wrapped(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), exitCertificate},
		{"unknown authority", wrapped(x509.UnknownAuthorityError{}), exitCertificate},
		{"host name", wrapped(x509.HostnameError{}), exitCertificate},
		{"expired", wrapped(x509.CertificateInvalidError{Reason: x509.Expired}), exitCertificate},
		{"weak key", wrapped(securehttp.ErrWeakKey), exitCertificate},
		{"revoked", wrapped(securehttp.ErrRevoked), exitCertStatus},
		{"bad staple", wrapped(securehttp.ErrOCSPStaple), exitCertStatus},
		{"alert", wrapped(tls.AlertError(40)), exitHandshake},
		{"remote alert", wrapped(&net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}), exitHandshake},
		{"not TLS", wrapped(tls.RecordHeaderError{}), exitHandshake},
		{"HTTP answer to HTTPS", wrapped(http.ErrSchemeMismatch), exitHandshake},
		{"no such host", wrapped(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x.test", IsNotFound: true}}), exitResolve},
		{"connection refused", wrapped(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), exitConnect},
		{"timeout", wrapped(context.DeadlineExceeded), exitTimeout},
		{"no token", wrapped(&securehttp.RefreshError{Err: securehttp.ErrNoToken}), exitToken},
		{"token endpoint refused the client", wrapped(&securehttp.RefreshError{Err: &securehttp.OAuthError{StatusCode: 401, Code: "invalid_client"}}), exitToken},
		{"host not allowed", wrapped(securehttp.ErrHostNotAllowed), exitEgress},
		{"blocked address", wrapped(securehttp.ErrBlockedAddress), exitEgress},
		{"cancelled", wrapped(context.Canceled), exitError},
		{"EOF", io.ErrUnexpectedEOF, exitError},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("%s: exitCode(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestExitCodesDocumented: every exit code get can return is listed, with
// the same number, in get --help, in the command's package comment and in
// docs/command.md, and nothing else is listed there.
func TestExitCodesDocumented(t *testing.T) {
	t.Parallel()
	var want []int
	for _, e := range exitCodeTable() {
		want = append(want, e.code)
	}
	codes := func(text string, line *regexp.Regexp) []int {
		var got []int
		for _, m := range line.FindAllStringSubmatch(text, -1) {
			n, _ := strconv.Atoi(m[1])
			got = append(got, n)
		}
		return got
	}

	code, help, _ := runCmd(t, "help", "get")
	if code != exitOK {
		t.Fatalf("help get: exit code %d, want 0", code)
	}
	_, section, ok := strings.Cut(help, "\nexit codes")
	if !ok {
		t.Fatalf("get --help has no exit codes section:\n%s", help)
	}
	if got := codes(section, regexp.MustCompile(`(?m)^  +(\d+) +\S`)); !slices.Equal(got, want) {
		t.Errorf("get --help lists exit codes %v, want %v", got, want)
	}

	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	_, doc, ok := strings.Cut(f.Doc.Text(), "Exit codes")
	if !ok {
		t.Fatal("main.go's package comment has no Exit codes section")
	}
	if got := codes(doc, regexp.MustCompile(`(?m)^\t(\d+) +\S`)); !slices.Equal(got, want) {
		t.Errorf("main.go's package comment lists exit codes %v, want %v", got, want)
	}

	guide, err := os.ReadFile(filepath.Join("..", "..", "docs", "command.md"))
	if err != nil {
		t.Fatal(err)
	}
	if got := codes(string(guide), regexp.MustCompile(`(?m)^\| +(\d+) +\|`)); !slices.Equal(got, want) {
		t.Errorf("docs/command.md's table lists exit codes %v, want %v", got, want)
	}
}

// TestGetNetworkFailureExitCodes: a name that does not resolve, a port
// that refuses and a server that never answers exit with curl's 6, 7 and
// 28, and --max-time says what ran out.
func TestGetNetworkFailureExitCodes(t *testing.T) {
	t.Parallel()
	refused := closedPort(t)
	unresolvable := strings.Repeat("a", 64) + ".invalid"
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		// Accepts and never speaks: the handshake waits.
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	tests := []struct {
		name      string
		args      []string
		want      int
		wantInErr string
	}{
		// A label longer than 63 bytes is no domain name: Go's resolver
		// answers "no such host" without asking a server.
		{"name does not resolve", []string{"https://" + unresolvable + "/"}, exitResolve, unresolvable},
		{"connection refused", []string{"https://" + refused + "/"}, exitConnect, refused},
		{"--max-time during the handshake", []string{"--max-time", "0.3", "https://" + silent.Addr().String() + "/"}, exitTimeout, "--max-time 0.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, append([]string{"get"}, tt.args...)...)
			if code != tt.want || out != "" || !strings.Contains(errOut, tt.wantInErr) {
				t.Errorf("got exit code %d, stdout %q, stderr %q; want %d, nothing on stdout and %q on stderr",
					code, out, errOut, tt.want, tt.wantInErr)
			}
			if strings.Contains(errOut, "Client.Timeout") || strings.Contains(errOut, "context deadline exceeded") {
				t.Errorf("got stderr %q, want a message without Go's internals", errOut)
			}
		})
	}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestGetHTTPErrorStatus: as with curl, a status of 400 or more is an
// answer, exit code 0, its body written where a body goes, unless --fail
// (no body) or --fail-with-body asks for exit code 22; with those, a file
// named by -o is left as it was.
func TestGetHTTPErrorStatus(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	srv := getServer(t, testpki.TLSCertificate(p.leaf, p.inter))
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	const notFound = "404 page not found\n"
	tests := []struct {
		name       string
		args       []string
		output     bool // -o FILE, which holds "previous" before
		want       int
		wantStdout string
		wantFile   string
		wantInErr  string // "" means stderr must be empty
	}{
		{"no flag: body on stdout", nil, false, exitOK, notFound, "", ""},
		{"no flag: body in -o FILE", nil, true, exitOK, "", notFound, ""},
		{"--fail: no body", []string{"--fail"}, false, exitHTTP, "", "", "HTTP 404"},
		{"--fail: -o FILE untouched", []string{"--fail"}, true, exitHTTP, "", "previous", "HTTP 404"},
		{"--fail-with-body: body on stdout", []string{"--fail-with-body"}, false, exitHTTP, notFound, "", "HTTP 404"},
		{"--fail-with-body: -o FILE untouched, body on stderr", []string{"--fail-with-body"}, true, exitHTTP, "", "previous", notFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"get", "--cacert", rootPEM}, tt.args...)
			var dst string
			if tt.output {
				dst = writeFile(t, "out", []byte("previous"), 0o600)
				args = append(args, "-o", dst)
			}
			code, out, errOut := runCmd(t, append(args, srv.URL+"/missing")...)
			if code != tt.want || out != tt.wantStdout {
				t.Errorf("got exit code %d and stdout %q, want %d and %q; stderr %q", code, out, tt.want, tt.wantStdout, errOut)
			}
			if tt.wantInErr == "" && errOut != "" || !strings.Contains(errOut, tt.wantInErr) {
				t.Errorf("got stderr %q, want %q", errOut, tt.wantInErr)
			}
			if tt.output {
				if b, _ := os.ReadFile(dst); string(b) != tt.wantFile {
					t.Errorf("-o FILE holds %q, want %q", b, tt.wantFile)
				}
			}
		})
	}
}
