package main

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// TestGetSilent: as with curl, -s prints no error message and -S, with
// -s, prints it again; the exit code is the same either way, and a usage
// error is always reported.
func TestGetSilent(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	srv := getServer(t, testpki.TLSCertificate(p.leaf, p.inter))
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	refused := "https://" + closedPort(t) + "/"
	const plain = "http://127.0.0.1:1/" // refused before any connection
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStdout string
		wantErr    bool // a message on stderr
	}{
		{"-s: success", []string{"-s", srv.URL + "/ok"}, exitOK, "hello\n", false},
		{"-s: connection refused", []string{"-s", refused}, exitConnect, "", false},
		{"-s: plain HTTP", []string{"-s", plain}, exitInsecure, "", false},
		{"--silent: plain HTTP", []string{"--silent", plain}, exitInsecure, "", false},
		{"-sS: plain HTTP", []string{"-sS", plain}, exitInsecure, "", true},
		{"-s --show-error: plain HTTP", []string{"-s", "--show-error", plain}, exitInsecure, "", true},
		{"-S alone: plain HTTP", []string{"-S", plain}, exitInsecure, "", true},
		{"-s --fail: 404", []string{"-s", "--fail", srv.URL + "/missing"}, exitHTTP, "", false},
		{"-sS --fail: 404", []string{"-sS", "--fail", srv.URL + "/missing"}, exitHTTP, "", true},
		{"-s: usage error still reported", []string{"-s", "--max-time", "soon", srv.URL + "/ok"}, exitUsage, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, append([]string{"get", "--cacert", rootPEM}, tt.args...)...)
			if code != tt.want || out != tt.wantStdout {
				t.Errorf("got exit code %d and stdout %q, want %d and %q; stderr %q", code, out, tt.want, tt.wantStdout, errOut)
			}
			if got := errOut != ""; got != tt.wantErr {
				t.Errorf("got stderr %q, want a message: %t", errOut, tt.wantErr)
			}
		})
	}
}

// TestGetMaxTime: --max-time expiring exits with curl's 28 and says that
// --max-time ran out and how far the transfer got, whether it was waiting
// for the response or reading the body.
func TestGetMaxTime(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	mux := http.NewServeMux()
	mux.HandleFunc("/slow-head", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("/slow-body", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first part\n"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := testutil.StartServer(t, testpki.TLSCertificate(p.leaf, p.inter), mux)
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	tests := []struct {
		path       string
		wantStdout string
		wantInErr  []string
	}{
		{"/slow-head", "", []string{"--max-time 0.5", "before the response"}},
		{"/slow-body", "first part\n", []string{"--max-time 0.5", "11 bytes of the body"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, "get", "--cacert", rootPEM, "--max-time", "0.5", srv.URL+tt.path)
			if code != exitTimeout || out != tt.wantStdout {
				t.Errorf("got exit code %d and stdout %q, want %d and %q; stderr %q", code, out, exitTimeout, tt.wantStdout, errOut)
			}
			for _, s := range tt.wantInErr {
				if !strings.Contains(errOut, s) {
					t.Errorf("got stderr %q, want it to say %q", errOut, s)
				}
			}
			if strings.Contains(errOut, "Client.Timeout") || strings.Contains(errOut, "deadline") {
				t.Errorf("got stderr %q, want no Go internals", errOut)
			}
		})
	}
}

// TestClientLoggerSilent: -s silences the client's warnings too, which
// would otherwise reach slog.Default; -v, with or without -s, logs its
// debug events on the command's stderr.
func TestClientLoggerSilent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var buf strings.Builder
	if l := clientLogger(false, true, &buf); l == nil || l.Enabled(ctx, slog.LevelWarn) {
		t.Errorf("-s: got logger %v, want one that drops warnings", l)
	}
	if l := clientLogger(false, false, &buf); l != nil {
		t.Errorf("no flag: got logger %v, want nil, the library's default", l)
	}
	for _, silent := range []bool{false, true} {
		l := clientLogger(true, silent, &buf)
		if l == nil || !l.Enabled(ctx, slog.LevelDebug) {
			t.Fatalf("-v (-s %t): got logger %v, want debug events", silent, l)
		}
		buf.Reset()
		l.Warn("a warning")
		if !strings.Contains(buf.String(), "a warning") {
			t.Errorf("-v (-s %t): the warning went elsewhere than stderr: %q", silent, buf.String())
		}
	}
}
