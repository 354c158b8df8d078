package main

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/securehttp/securehttp/internal/testpki"
)

// TestInsecureRefusedWithTheWayOut: -k and --insecure, which a curl user
// types at a private CA's certificate, are refused before any connection
// with one line that names the options that solve the problem: --cacert
// and --pin. --client-secret, which would show the secret in ps, is
// refused without the secret ever being printed, and names
// --client-secret-file.
func TestInsecureRefusedWithTheWayOut(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	srv, conns := countingTLS(t, testpki.TLSCertificate(p.leaf, p.inter), http.NotFoundHandler())
	const secret = "do-not-print-me-1234"
	tests := []struct {
		name     string
		args     []string
		wantHint []string
	}{
		{"get -k", []string{"get", "-k", srv.URL}, []string{"--cacert", "--pin"}},
		{"get --insecure", []string{"get", srv.URL, "--insecure"}, []string{"--cacert", "--pin"}},
		{"get -k with -s", []string{"get", "-s", "-k", srv.URL}, []string{"--cacert", "--pin"}},
		{"pins -k", []string{"pins", "-k", srv.URL}, []string{"--cacert"}},
		{"get --client-secret", []string{"get", "--client-id", "c", "--client-secret", secret, "--token-url", srv.URL, srv.URL},
			[]string{"--client-secret-file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, tt.args...)
			if code != exitUsage || out != "" {
				t.Errorf("got exit code %d and stdout %q, want %d and nothing", code, out, exitUsage)
			}
			if n := strings.Count(errOut, "\n"); n != 1 {
				t.Errorf("got %d lines on stderr, want 1:\n%s", n, errOut)
			}
			for _, h := range tt.wantHint {
				if !strings.Contains(errOut, h) {
					t.Errorf("got stderr %q, want it to name %s", errOut, h)
				}
			}
			if strings.Contains(errOut, secret) {
				t.Errorf("got stderr %q, want no secret in it", errOut)
			}
		})
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the server got %d connections, want none", n)
	}
}

// countingTLS starts a TLS server for h that counts the connections it
// accepts.
func countingTLS(t *testing.T, cert tls.Certificate, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &conns
}
