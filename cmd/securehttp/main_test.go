package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/securehttp/securehttp/internal/testpki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testChain is a root, an intermediate and a leaf for 127.0.0.1, generated
// once per test binary.
type testChain struct {
	root, inter, leaf *testpki.Cert
}

var (
	chainOnce sync.Once
	chainVal  *testChain
)

func sharedChain() *testChain {
	chainOnce.Do(func() {
		root := testpki.Must(testpki.NewRoot("cmd test root", testpki.Options{}))
		inter := testpki.Must(root.NewIntermediate("cmd test intermediate", testpki.Options{}))
		leaf := testpki.Must(inter.NewLeaf("127.0.0.1", testpki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}))
		chainVal = &testChain{root: root, inter: inter, leaf: leaf}
	})
	return chainVal
}

// startTLS starts a TLS server on 127.0.0.1 that sends cert, closed when
// the test ends.
func startTLS(t *testing.T, cert tls.Certificate, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes fail on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// writeFile writes data to a new file in a temporary directory.
func writeFile(t *testing.T, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
	return path
}

// runCmd runs the command in process, with an empty stdin.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCmdIn(t, "", args...)
}

// runCmdIn runs the command in process, with stdin as its standard input.
func runCmdIn(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no command", nil, exitUsage},
		{"unknown command", []string{"fetch"}, exitUsage},
		{"help", []string{"help"}, exitOK},
		{"demo with an argument", []string{"demo", "extra"}, exitUsage},
		{"demo unknown flag", []string{"demo", "--fast"}, exitUsage},
		{"pins without URL", []string{"pins"}, exitUsage},
		{"pins -h", []string{"pins", "-h"}, exitOK},
		{"get -h", []string{"get", "-h"}, exitOK},
		{"get unknown flag", []string{"get", "--no-such-flag", "https://127.0.0.1/"}, exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got, _, _ := runCmd(t, tt.args...); got != tt.want {
				t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.want)
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args           []string
		wantPositional []string
		wantO          string
		wantPins       []string
	}{
		{[]string{"URL"}, []string{"URL"}, "", nil},
		{[]string{"-o", "f", "URL"}, []string{"URL"}, "f", nil},
		{[]string{"URL", "-o", "f"}, []string{"URL"}, "f", nil},
		{[]string{"--pin", "a", "URL", "--pin", "b"}, []string{"URL"}, "", []string{"a", "b"}},
		{[]string{"A", "B"}, []string{"A", "B"}, "", nil},
		{[]string{"-o", "f", "--", "-o", "URL"}, []string{"-o", "URL"}, "f", nil},
		{[]string{"URL", "--", "-x"}, []string{"URL", "-x"}, "", nil},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		o := fs.String("o", "", "")
		var pins []string
		fs.Func("pin", "", func(s string) error { pins = append(pins, s); return nil })
		got, err := parseInterspersed(fs, tt.args)
		if err != nil {
			t.Errorf("parseInterspersed(%q): %v", tt.args, err)
			continue
		}
		if !slices.Equal(got, tt.wantPositional) || *o != tt.wantO || !slices.Equal(pins, tt.wantPins) {
			t.Errorf("parseInterspersed(%q) = %q, -o %q, pins %q; want %q, -o %q, pins %q",
				tt.args, got, *o, pins, tt.wantPositional, tt.wantO, tt.wantPins)
		}
	}
}
