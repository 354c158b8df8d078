package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// The token the tests keep in token files. It must never be printed.
const secretToken = "s3cr3t-t0ken-value"

// getServer serves /ok, /big, /secret (which wants secretToken) and 404s
// otherwise.
func getServer(t *testing.T, cert tls.Certificate) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("hello\n"))
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, _ *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 1<<20))
	})
	mux.HandleFunc("GET /secret", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+secretToken {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Write([]byte("secret ok\n"))
	})
	return testutil.StartServer(t, cert, mux)
}

func TestGetExitCodes(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	srv := getServer(t, testpki.TLSCertificate(p.leaf, p.inter))
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	otherPEM := writeFile(t, "other.pem", testpki.Must(testpki.NewRoot("another root", testpki.Options{})).CertPEM(), 0o644)
	strangerPin := wantSPKI(testpki.Must(testpki.NewRoot("stranger", testpki.Options{})))

	weakLeaf := testpki.Must(p.inter.NewLeaf("127.0.0.1", testpki.Options{
		KeyType: testpki.RSA1024,
		IPs:     []net.IP{net.IPv4(127, 0, 0, 1)},
	}))
	weak := getServer(t, testpki.TLSCertificate(weakLeaf, p.inter))

	var plainHits atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		plainHits.Add(1)
	}))
	t.Cleanup(plain.Close)
	plainAsHTTPS := "https://" + plain.Listener.Addr().String() + "/ok"

	insecureTokenFile := writeFile(t, "token", []byte(secretToken), 0o644)

	tests := []struct {
		name       string
		args       []string
		want       int
		wantStdout string // checked when not empty
	}{
		{"success", []string{"--cacert", rootPEM, srv.URL + "/ok"}, exitOK, "hello\n"},
		{"success, flags after the URL", []string{srv.URL + "/ok", "--cacert", rootPEM}, exitOK, "hello\n"},
		{"right pin and a backup", []string{"--cacert", rootPEM, "--pin", wantSPKI(p.leaf), "--pin", strangerPin, srv.URL + "/ok"}, exitOK, "hello\n"},
		{"right fingerprint pin", []string{"--cacert", rootPEM, "--pin", wantFingerprint(p.inter), srv.URL + "/ok"}, exitOK, "hello\n"},
		{"plain http URL", []string{plain.URL + "/ok"}, exitInsecure, ""},
		{"untrusted: system roots", []string{srv.URL + "/ok"}, exitCertificate, ""},
		{"untrusted: another root", []string{"--cacert", otherPEM, srv.URL + "/ok"}, exitCertificate, ""},
		{"weak key", []string{"--cacert", rootPEM, weak.URL + "/ok"}, exitCertificate, ""},
		{"server speaks plain HTTP", []string{plainAsHTTPS}, exitHandshake, ""},
		{"wrong pin", []string{"--cacert", rootPEM, "--pin", strangerPin, srv.URL + "/ok"}, exitPin, ""},
		{"404, its body printed", []string{"--cacert", rootPEM, srv.URL + "/missing"}, exitOK, "404 page not found\n"},
		{"401 without a token, its body printed", []string{"--cacert", rootPEM, srv.URL + "/secret"}, exitOK, "no\n"},
		{"401 with --fail, no body", []string{"--fail", "--cacert", rootPEM, srv.URL + "/secret"}, exitHTTP, ""},
		{"no URL", nil, exitUsage, ""},
		{"two URLs", []string{srv.URL, srv.URL}, exitUsage, ""},
		{"URL without scheme", []string{"127.0.0.1:443"}, exitUsage, ""},
		{"malformed pin", []string{"--pin", "sha256/nope", srv.URL + "/ok"}, exitUsage, ""},
		{"missing --cacert file", []string{"--cacert", filepath.Join(t.TempDir(), "none.pem"), srv.URL + "/ok"}, exitUsage, ""},
		{"--cacert without PEM", []string{"--cacert", insecureTokenFile, srv.URL + "/ok"}, exitUsage, ""},
		{"token file readable by others", []string{"--cacert", rootPEM, "--token-file", insecureTokenFile, srv.URL + "/secret"}, exitError, ""},
		{"missing token file", []string{"--cacert", rootPEM, "--token-file", filepath.Join(t.TempDir(), "none"), srv.URL + "/secret"}, exitError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, append([]string{"get"}, tt.args...)...)
			if code != tt.want {
				t.Errorf("exit code = %d, want %d; stderr: %s", code, tt.want, errOut)
			}
			if tt.wantStdout != "" && out != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", out, tt.wantStdout)
			}
			if tt.want != exitOK && (out != tt.wantStdout || errOut == "") {
				t.Errorf("got stdout %q and stderr %q, want only an error on stderr", out, errOut)
			}
			if strings.Contains(out+errOut, secretToken) {
				t.Errorf("the output contains the token:\n%s%s", out, errOut)
			}
		})
	}
	if n := plainHits.Load(); n != 0 {
		t.Errorf("the plain-HTTP server got %d requests, want none", n)
	}
}

func TestGetToken(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	srv := getServer(t, testpki.TLSCertificate(p.leaf, p.inter))
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)

	tests := []struct {
		name     string
		token    string
		want     int
		wantBody string
	}{
		{"accepted", secretToken, exitOK, "secret ok\n"},
		{"refused, the server's answer printed", secretToken + "-revoked", exitOK, "no\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tokenFile := writeFile(t, "token", []byte(tt.token+"\n"), 0o600)
			// -v logs the client's debug events: they must not hold the token either.
			code, out, errOut := runCmd(t, "get", "-v", "--cacert", rootPEM, "--token-file", tokenFile, srv.URL+"/secret")
			if code != tt.want || out != tt.wantBody {
				t.Errorf("got exit code %d and stdout %q, want %d and %q; stderr:\n%s", code, out, tt.want, tt.wantBody, errOut)
			}
			if strings.Contains(out+errOut, secretToken) {
				t.Errorf("the output contains the token:\n%s%s", out, errOut)
			}
		})
	}
}

func TestGetOutputFile(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	srv := getServer(t, testpki.TLSCertificate(p.leaf, p.inter))
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)

	t.Run("written", func(t *testing.T) {
		t.Parallel()
		dst := filepath.Join(t.TempDir(), "big.bin")
		code, out, errOut := runCmd(t, "get", "--cacert", rootPEM, srv.URL+"/big", "-o", dst)
		if code != exitOK {
			t.Fatalf("exit code = %d, want %d; stderr: %s", code, exitOK, errOut)
		}
		got, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		if want := bytes.Repeat([]byte("x"), 1<<20); !bytes.Equal(got, want) {
			t.Errorf("file has %d bytes, want the %d bytes served", len(got), len(want))
		}
		// stderr is no terminal here: no progress bar.
		if out != "" || errOut != "" {
			t.Errorf("got stdout %q and stderr %q, want both empty", out, errOut)
		}
		entries, _ := os.ReadDir(filepath.Dir(dst))
		if len(entries) != 1 {
			t.Errorf("the directory holds %d entries, want only the download", len(entries))
		}
	})

	t.Run("kept on HTTP error", func(t *testing.T) {
		t.Parallel()
		dst := writeFile(t, "keep.txt", []byte("previous"), 0o644)
		if code, _, errOut := runCmd(t, "get", "--fail-with-body", "--cacert", rootPEM, "-o", dst, srv.URL+"/missing"); code != exitHTTP {
			t.Errorf("exit code = %d, want %d; stderr: %s", code, exitHTTP, errOut)
		}
		if got, _ := os.ReadFile(dst); string(got) != "previous" {
			t.Errorf("the existing file now holds %q, want it untouched", got)
		}
	})
}

func TestRenderProgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{0, 100, 0, "[>" + strings.Repeat(" ", 29) + "]   0%  0 B / 100 B"},
		{50, 100, time.Second, "[" + strings.Repeat("=", 15) + ">" + strings.Repeat(" ", 14) + "]  50%  50 B / 100 B  50 B/s"},
		{3 << 20, 3 << 20, 2 * time.Second, "[" + strings.Repeat("=", 30) + "] 100%  3.0 MiB / 3.0 MiB  1.5 MiB/s"},
		{1536, -1, time.Second, "1.5 KiB  1.5 KiB/s"},
	}
	for _, tt := range tests {
		if got := renderProgress(tt.done, tt.total, tt.elapsed); got != tt.want {
			t.Errorf("renderProgress(%d, %d, %v)\ngot  %q\nwant %q", tt.done, tt.total, tt.elapsed, got, tt.want)
		}
	}
}

func TestProgressBarRedraws(t *testing.T) {
	t.Parallel()
	start := time.Unix(1_700_000_000, 0)
	now := start
	var out bytes.Buffer
	bar := newProgressBar(&out, 1000, func() time.Time { return now })
	// 10 writes 50 ms apart, from 0 to 450 ms: draws at 100, 200, 300 and
	// 400 ms, then one by finish.
	for range 10 {
		bar.Write(make([]byte, 100))
		now = now.Add(50 * time.Millisecond)
	}
	bar.finish()
	if got, want := strings.Count(out.String(), "\r"), 5; got != want {
		t.Errorf("got %d redraws, want %d", got, want)
	}
	if !strings.HasSuffix(out.String(), "100%  1000 B / 1000 B  2.0 KiB/s\x1b[K\n") {
		t.Errorf("final line %q, want a full bar ending the line", out.String())
	}
}

func TestIsTerminal(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"buffer": &bytes.Buffer{}, "regular file": f, "pipe": w} {
		if isTerminal(out) {
			t.Errorf("isTerminal(%s) = true, want false", name)
		}
	}
}

// --allow-host and --block-private refuse before any connection; the
// server accepts none.
func TestGetEgressFlags(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	var accepted atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{testpki.TLSCertificate(p.leaf, p.inter)}}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted.Add(1)
		}
	}
	srv.Config.ErrorLog = testutil.QuietLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	for _, tt := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"allowed host", []string{"--allow-host", "127.0.0.1"}, exitOK, ""},
		{"host not allowed", []string{"--allow-host", "api.example.com"}, exitEgress, "AllowHosts"},
		{"private address blocked", []string{"--block-private"}, exitEgress, "non-public address"},
		{"bad allow-host pattern", []string{"--allow-host", "https://x/"}, exitUsage, "AllowHosts[0]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := accepted.Load()
			args := append([]string{"get", "--cacert", rootPEM}, tt.args...)
			code, _, stderr := runCmd(t, append(args, srv.URL+"/ok")...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantStderr) {
				t.Fatalf("got exit %d and stderr %q, want %d and %q", code, stderr, tt.wantCode, tt.wantStderr)
			}
			if got := accepted.Load() - before; tt.wantCode != exitOK && got != 0 {
				t.Fatalf("the server accepted %d connections, want 0", got)
			}
		})
	}
}

// --cert and --key present a client certificate, as curl does; a server
// that requires one sees its serial.
func TestGetClientCert(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	client := testpki.Must(p.inter.NewLeaf("cmd test client", testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}))
	other := testpki.Must(p.inter.NewLeaf("another client", testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "serial=%s", r.TLS.PeerCertificates[0].SerialNumber)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{testpki.TLSCertificate(p.leaf, p.inter)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.root.Pool(),
	}
	srv.Config.ErrorLog = testutil.QuietLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	certPEM := writeFile(t, "client.pem", testpki.ChainPEM(client, p.inter), 0o644)
	keyPEM := writeFile(t, "client.key", client.KeyPEM(), 0o600)
	combined := writeFile(t, "combined.pem", append(testpki.ChainPEM(client, p.inter), client.KeyPEM()...), 0o600)
	otherKey := writeFile(t, "other.key", other.KeyPEM(), 0o600)
	want := "serial=" + client.Cert.SerialNumber.String()
	for _, tt := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
	}{
		{"cert and key", []string{"--cert", certPEM, "--key", keyPEM}, exitOK, want},
		{"key in the cert file", []string{"-E", combined}, exitOK, want},
		{"no certificate", nil, exitHandshake, ""},
		{"key of another certificate", []string{"--cert", certPEM, "--key", otherKey}, exitError, ""},
		{"key without cert", []string{"--key", keyPEM}, exitUsage, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"get", "--cacert", rootPEM}, tt.args...)
			code, stdout, stderr := runCmd(t, append(args, srv.URL+"/")...)
			if code != tt.wantCode || stdout != tt.wantStdout {
				t.Fatalf("got exit %d, stdout %q (stderr %q), want %d and %q", code, stdout, stderr, tt.wantCode, tt.wantStdout)
			}
			if strings.Contains(stderr, "PRIVATE KEY") {
				t.Fatalf("stderr shows key material: %q", stderr)
			}
		})
	}
}

// TestGetRedirectReferer checks that get -L sends no Referer on a redirect
// hop, to the same origin or another, as curl does, while a Referer given
// with -H goes to every hop as it was given.
func TestGetRedirectReferer(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	mux := http.NewServeMux()
	mux.HandleFunc("/go", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	mux.HandleFunc("/land", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%q", r.Header.Values("Referer"))
	})
	cert := testpki.TLSCertificate(p.leaf, p.inter)
	srv := testutil.StartServer(t, cert, mux)
	other := testutil.StartServer(t, cert, mux) // another port
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	via := func(to string) string { return srv.URL + "/go?sig=QSECRET&to=" + url.QueryEscape(to) }
	const given = "https://app.example/page"

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"same origin", []string{via("/land")}, nil},
		{"another port", []string{via(other.URL + "/land")}, nil},
		{"-H Referer, same origin", []string{"-H", "Referer: " + given, via("/land")}, []string{given}},
		{"-H Referer, another port", []string{"-H", "Referer: " + given, via(other.URL + "/land")}, []string{given}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, append([]string{"get", "-L", "--cacert", rootPEM}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("got exit code %d, want %d; stderr %q", code, exitOK, errOut)
			}
			if want := fmt.Sprintf("%q", tt.want); out != want {
				t.Errorf("got Referer %s, want %s", out, want)
			}
		})
	}
}

// rawServer starts an HTTP/1.1 TLS server that answers each path in
// responses with those bytes exactly, status line and headers included,
// which net/http's server would not write.
func rawServer(t *testing.T, responses map[string]string) *httptest.Server {
	t.Helper()
	p := sharedChain()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		buf.WriteString(responses[r.URL.Path])
		buf.Flush()
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{testpki.TLSCertificate(p.leaf, p.inter)}}
	srv.Config.ErrorLog = testutil.QuietLog()
	srv.StartTLS() // without EnableHTTP2: HTTP/1.1, whose connections can be hijacked
	t.Cleanup(srv.Close)
	return srv
}

// TestGetEscapesServerText checks that get escapes the control characters
// of what a server controls when it prints it: the reason phrase in the
// error line (with and without --fail), the headers of -i, and an error
// body sent to stderr with -o, where only newlines and tabs stay. A
// sequence such as OSC 52 (write the clipboard) then reaches the terminal
// as text. A body on stdout stays byte for byte.
func TestGetEscapesServerText(t *testing.T) {
	t.Parallel()
	const (
		osc52      = "\x1b]52;c;cHduZWQ=\x07"
		osc52Shown = `\x1b]52;c;cHduZWQ=\x07`
		errBody    = "line one\r\n" + osc52 + "\tline two\n\rX\x9b2J\u009b2J\xff\n"
		errShown   = "line one\r\n" + osc52Shown + "\tline two\n\\x0dX\\x9b2J\\u009b2J\\xff\n"
		okBody     = "raw " + osc52 + "\r\x00\n"
		c1         = "a\u009b2Jb\x9b31mc" // CSI, as a UTF-8 character and as one byte
		c1Shown    = `a\u009b2Jb\x9b31mc`
	)
	srv := rawServer(t, map[string]string{
		"/reason": "HTTP/1.1 403 Forbidden" + osc52 + "\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbody\n",
		// net/http refuses C0 controls in a header value, not C1 ones.
		"/header": "HTTP/1.1 200 OK\r\nX-Note: " + c1 + "\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
		"/error": fmt.Sprintf("HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			len(errBody), errBody),
		"/ok": fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(okBody), okBody),
	})
	rootPEM := writeFile(t, "root.pem", sharedChain().root.CertPEM(), 0o644)
	raw := func(s string) bool { return strings.ContainsAny(s, "\x1b\x07\u009b") || strings.Contains(s, "\x9b") }

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // checked when not empty
		wantStderr string // a part that stderr must hold, when not empty
		stdoutRaw  bool   // stdout is the body, byte for byte
	}{
		{"reason phrase", []string{srv.URL + "/reason"}, exitOK, "body\n", "", false},
		{"reason phrase, --fail", []string{"--fail", srv.URL + "/reason"}, exitHTTP, "", "HTTP 403 Forbidden" + osc52Shown, false},
		{"header with -i", []string{"-i", srv.URL + "/header"}, exitOK, "", "", false},
		{"error body with -o", []string{"--fail-with-body", "-o", filepath.Join(t.TempDir(), "out"), srv.URL + "/error"}, exitHTTP, "", errShown, false},
		{"error body on stdout", []string{srv.URL + "/error"}, exitOK, errBody, "", true},
		{"body on stdout", []string{srv.URL + "/ok"}, exitOK, okBody, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, append([]string{"get", "--cacert", rootPEM}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("got exit code %d, want %d; stderr %q", code, tt.wantCode, errOut)
			}
			if raw(errOut) {
				t.Errorf("got stderr %q, want its control characters escaped", errOut)
			}
			if tt.wantStderr != "" && !strings.Contains(errOut, tt.wantStderr) {
				t.Errorf("got stderr %q, want it to hold %q", errOut, tt.wantStderr)
			}
			if tt.wantStdout != "" && out != tt.wantStdout {
				t.Errorf("got stdout %q, want %q", out, tt.wantStdout)
			}
			if !tt.stdoutRaw && raw(out) {
				t.Errorf("got stdout %q, want its control characters escaped", out)
			}
		})
	}

	t.Run("the head of -i", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runCmd(t, "get", "--cacert", rootPEM, "-i", srv.URL+"/header")
		if code != exitOK {
			t.Fatalf("got exit code %d, want %d; stderr %q", code, exitOK, errOut)
		}
		if want := "X-Note: " + c1Shown + "\r\n"; !strings.Contains(out, want) || !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") ||
			!strings.HasSuffix(out, "\r\n\r\nok\n") {
			t.Errorf("got stdout %q, want the status line, %q and the body", out, want)
		}
	})
}

// landMux answers /land with the credentials it received, and redirects
// /go?to=URL to URL.
func landMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/land", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "landed host=%s auth=%q cookie=%q\n", r.Host, r.Header.Get("Authorization"), r.Header.Get("Cookie"))
	})
	mux.HandleFunc("/go", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	return mux
}

// TestGetRedirectCredentials: with -L, the credentials given for the
// URL (the --token-file token, an Authorization or Cookie header given with
// -H) go to the URL's host and port only, as curl sends them: not to
// another port of the same host, which may be another service, nor to a
// subdomain, which net/http alone would forward an Authorization header to.
func TestGetRedirectCredentials(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	const name = "api.example.test"
	named := testpki.Must(p.inter.NewLeaf(name, testpki.Options{
		DNSNames: []string{name, "up." + name},
		IPs:      []net.IP{net.IPv4(127, 0, 0, 1)},
	}))
	cert := testpki.TLSCertificate(named, p.inter)
	origin := testutil.StartServer(t, cert, landMux())
	elsewhere := testutil.StartServer(t, cert, landMux()) // another port of the same host
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o600)
	tokenFile := writeFile(t, "token", []byte(secretToken), 0o600)
	_, port, _ := net.SplitHostPort(origin.Listener.Addr().String())
	connectTo := "::127.0.0.1:" + port

	toPort := origin.URL + "/go?to=" + elsewhere.URL + "/land"
	toSub := "https://" + name + ":" + port + "/go?to=https://up." + name + ":" + port + "/land"
	toSelf := origin.URL + "/go?to=/land"
	toHost := origin.URL + "/go?to=https://" + name + ":" + port + "/land"
	tests := []struct {
		name     string
		args     []string
		wantAuth string // the Authorization header that /land saw
		wantCook string
	}{
		{"token, same origin: sent", []string{"--token-file", tokenFile, toSelf}, "Bearer " + secretToken, ""},
		{"-H Authorization, same origin: sent", []string{"-H", "Authorization: Basic dTpw", toSelf}, "Basic dTpw", ""},
		{"token, another port: not sent", []string{"--token-file", tokenFile, toPort}, "", ""},
		{"-H Authorization, another port: not sent", []string{"-H", "Authorization: Basic dTpw", toPort}, "", ""},
		{"-H Cookie, another port: not sent", []string{"-H", "Cookie: sid=" + secretToken, toPort}, "", ""},
		{"-H Authorization, subdomain: not sent", []string{"--connect-to", connectTo, "-H", "Authorization: Basic dTpw", toSub}, "", ""},
		{"-H Authorization, another host: not sent", []string{"--connect-to", connectTo, "-H", "Authorization: Basic dTpw", toHost}, "", ""},
		{"-H Cookie, subdomain: not sent", []string{"--connect-to", connectTo, "-H", "Cookie: sid=" + secretToken, toSub}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, append([]string{"get", "-L", "--cacert", rootPEM}, tt.args...)...)
			if code != exitOK || !strings.HasPrefix(out, "landed ") {
				t.Fatalf("got exit code %d and stdout %q, want %d and the /land answer; stderr %q", code, out, exitOK, errOut)
			}
			want := fmt.Sprintf("auth=%q cookie=%q", tt.wantAuth, tt.wantCook)
			if !strings.Contains(out, want) {
				t.Errorf("got %q, want %s", strings.TrimSpace(out), want)
			}
			if strings.Contains(errOut, secretToken) {
				t.Errorf("stderr holds the token: %q", errOut)
			}
		})
	}
}

// TestGetBadURLSecrets: a URL refused as malformed is not echoed with
// its query or userinfo, which may hold a token or a password.
func TestGetBadURLSecrets(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-in-url"
	tests := []struct {
		raw, wantShown string
	}{
		{"api.example.com/v1?access_token=" + secret, "api.example.com/v1"},
		{"user:" + secret + "@api.example.com/v1", "api.example.com/v1"},
		{"//user:" + secret + "@api.example.com/v1#" + secret, "//api.example.com/v1"},
		{"api.example.com/v1#" + secret, "api.example.com/v1"},
	}
	for _, tt := range tests {
		t.Run(tt.wantShown, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, "get", tt.raw)
			if code != exitUsage || out != "" {
				t.Errorf("got exit code %d and stdout %q, want %d and none", code, out, exitUsage)
			}
			if strings.Contains(errOut, secret) {
				t.Errorf("stderr %q holds the URL's secret, want it left out", errOut)
			}
			if !strings.Contains(errOut, fmt.Sprintf("%q", tt.wantShown)) {
				t.Errorf("stderr %q does not show %q, want the URL without its secrets", errOut, tt.wantShown)
			}
		})
	}
}

// TestGetUnicodeHost: a URL, or a redirect hop, naming its host in
// Unicode ("ａｐｉ.example.test", full-width) is fetched once, over one
// connection, not redialled in a loop until --max-time.
func TestGetUnicodeHost(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	const name = "api.example.test"
	named := testpki.Must(p.inter.NewLeaf(name, testpki.Options{DNSNames: []string{name}}))
	srv := httptest.NewUnstartedServer(landMux())
	cl := &testutil.CountingListener{Listener: srv.Listener}
	srv.Listener = cl
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{testpki.TLSCertificate(named, p.inter)}}
	srv.Config.ErrorLog = testutil.QuietLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o600)
	tokenFile := writeFile(t, "token", []byte(secretToken), 0o600)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	const unicodeName = "ａｐｉ.example.test"
	tests := []struct {
		name, url string
	}{
		{"URL", "https://" + unicodeName + ":" + port + "/land"},
		{"redirect hop", "https://" + name + ":" + port + "/go?to=https://" + unicodeName + ":" + port + "/land"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cl.N.Load()
			code, out, errOut := runCmd(t, "get", "-L", "--max-time", "3", "--cacert", rootPEM, "--token-file", tokenFile,
				"--pin", wantSPKI(p.inter), "--connect-to", "::127.0.0.1:"+port, tt.url)
			if code != exitOK || !strings.Contains(out, `auth="Bearer `+secretToken+`"`) {
				t.Errorf("got exit code %d and stdout %q, want %d and the token received; stderr %q", code, out, exitOK, errOut)
			}
			if n := cl.N.Load() - before; n > 2 {
				t.Errorf("the server accepted %d connections, want at most 2", n)
			}
		})
	}
}

func TestGetCurlFlags(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	base := testutil.StartServer(t, testpki.TLSCertificate(p.leaf, p.inter), echoMux()).URL
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	dataFile := writeFile(t, "data", []byte("a=1\r\nb=2\n"), 0o600)
	b64 := strings.TrimPrefix(wantSPKI(p.inter), "sha256/")
	stranger := wantSPKI(testpki.Must(testpki.NewRoot("stranger", testpki.Options{})))
	tests := []struct {
		name      string
		args      []string
		stdin     string
		want      int
		wantOut   []string // substrings of stdout
		wantNot   []string // not in stdout
		wantInErr []string // substrings of stderr
	}{
		{"GET by default", []string{"/echo"}, "", exitOK, []string{`method=GET`, `body=""`}, nil, nil},
		{"-X PUT", []string{"-X", "PUT", "/echo"}, "", exitOK, []string{"method=PUT"}, nil, nil},
		{"--request DELETE", []string{"--request", "DELETE", "/echo"}, "", exitOK, []string{"method=DELETE"}, nil, nil},
		{"-H twice", []string{"-H", "X-Test: one", "--header", "X-Test: two", "/echo"}, "", exitOK, []string{`x=["one" "two"]`}, nil, nil},
		{"-H Host", []string{"-H", "Host: other.test", "/echo"}, "", exitOK, []string{"host=other.test"}, nil, nil},
		{"-H Authorization is sent as given", []string{"-H", "Authorization: Basic dTpw", "/echo"}, "", exitOK, []string{`auth="Basic dTpw"`}, nil, nil},
		{"-d posts a form", []string{"-d", "x=1", "/echo"}, "", exitOK,
			[]string{"method=POST", `ctype="application/x-www-form-urlencoded"`, `body="x=1"`}, nil, nil},
		{"-d twice joined by &", []string{"-d", "x=1", "--data", "y=2", "/echo"}, "", exitOK, []string{`body="x=1&y=2"`}, nil, nil},
		{"-d @file drops newlines", []string{"-d", "@" + dataFile, "/echo"}, "", exitOK, []string{`body="a=1b=2"`}, nil, nil},
		{"--data-binary @file as is", []string{"--data-binary", "@" + dataFile, "/echo"}, "", exitOK, []string{`body="a=1\r\nb=2\n"`}, nil, nil},
		{"-d @- reads stdin", []string{"-d", "@-", "/echo"}, "from=stdin\n", exitOK, []string{`body="from=stdin"`}, nil, nil},
		{"-X with -d", []string{"-X", "PATCH", "-d", "z", "/echo"}, "", exitOK, []string{"method=PATCH", `body="z"`}, nil, nil},
		{"-d with a missing file", []string{"-d", "@" + filepath.Join(t.TempDir(), "none"), "/echo"}, "", exitUsage, nil, nil, []string{"reading the request body"}},
		{"-i prints the head", []string{"-i", "/echo"}, "", exitOK, []string{"HTTP/2 200\r\n", "X-Echo: yes\r\n", "\r\n\r\nmethod=GET"}, nil, nil},
		{"no -L: the redirect is the answer", []string{"-i", "/redirect"}, "", exitOK, []string{"HTTP/2 302\r\n", "Location: /echo"}, []string{"method=GET"}, nil},
		{"-L follows", []string{"-L", "/redirect"}, "", exitOK, []string{"method=GET"}, nil, nil},
		{"error body printed", []string{"/teapot"}, "", exitOK, []string{`{"error":"short and stout"}`}, nil, nil},
		{"--fail-with-body", []string{"--fail-with-body", "/teapot"}, "", exitHTTP, []string{"short and stout"}, nil, []string{"418"}},
		{"--fail prints no body", []string{"--fail", "-i", "/teapot"}, "", exitHTTP, nil, []string{"short and stout", "418"}, []string{"418"}},
		{"-f with --fail-with-body", []string{"-f", "--fail-with-body", "/teapot"}, "", exitUsage, nil, nil, []string{"choose one"}},
		{"--max-time", []string{"--max-time", "0.3", "/hang"}, "", exitTimeout, nil, nil, []string{"--max-time 0.3"}},
		{"--max-time not a number", []string{"--max-time", "soon", "/echo"}, "", exitUsage, nil, nil, []string{"--max-time"}},
		{"--pin in curl's form", []string{"--pin", "sha256//" + b64, "/echo"}, "", exitOK, []string{"method=GET"}, nil, nil},
		{"--pin curl's list", []string{"--pin", stranger + ";sha256//" + b64, "/echo"}, "", exitOK, []string{"method=GET"}, nil, nil},
		{"--pin comma list", []string{"--pin", stranger + "," + wantSPKI(p.inter), "/echo"}, "", exitOK, []string{"method=GET"}, nil, nil},
		{"--pin openssl's line", []string{"--pin", "sha256 Fingerprint=" + wantFingerprint(p.inter), "/echo"}, "", exitOK, []string{"method=GET"}, nil, nil},
		{"--pin wrong", []string{"--pin", stranger, "/echo"}, "", exitPin, nil, nil, []string{"configured pins", "securehttp pins"}},
		{"--pin malformed names the form", []string{"--pin", "sha1/" + b64, "/echo"}, "", exitUsage, nil, nil, []string{"sha256/<base64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"get", "--cacert", rootPEM}, tt.args...)
			args[len(args)-1] = base + args[len(args)-1]
			start := time.Now()
			code, out, errOut := runCmdIn(t, tt.stdin, args...)
			if code != tt.want {
				t.Errorf("got exit code %d, want %d; stdout %q, stderr %q", code, tt.want, out, errOut)
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(out, s) {
					t.Errorf("stdout %q lacks %q", out, s)
				}
			}
			for _, s := range tt.wantNot {
				if strings.Contains(out, s) {
					t.Errorf("stdout %q holds %q, want it absent", out, s)
				}
			}
			for _, s := range tt.wantInErr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr %q lacks %q", errOut, s)
				}
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("took %v, want well under the server's 5 s hang", d)
			}
		})
	}
}

// echoMux answers /echo with what it received, /redirect with a 302 to
// /echo, /hang never (5 s at most), and /teapot with a 418 and a JSON body.
func echoMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo", "yes")
		fmt.Fprintf(w, "method=%s host=%s ctype=%q x=%q auth=%q body=%q\n", r.Method, r.Host,
			r.Header.Get("Content-Type"), r.Header.Values("X-Test"), r.Header.Get("Authorization"), body)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/echo", http.StatusFound)
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("/teapot", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, `{"error":"short and stout"}`)
	})
	return mux
}

// TestGetConnectTo: --connect-to changes where the client connects, not
// whom it talks to: the certificate, the pins and the token are judged on
// the URL's host.
func TestGetConnectTo(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	const name = "api.example.test"
	named := testpki.Must(p.inter.NewLeaf(name, testpki.Options{DNSNames: []string{name}}))
	namedSrv := testutil.StartServer(t, testpki.TLSCertificate(named, p.inter), echoMux())
	ipSrv := testutil.StartServer(t, testpki.TLSCertificate(p.leaf, p.inter), echoMux()) // valid for 127.0.0.1 only
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	tokenFile := writeFile(t, "token", []byte(secretToken), 0o600)
	_, namedPort, _ := net.SplitHostPort(namedSrv.Listener.Addr().String())
	_, ipPort, _ := net.SplitHostPort(ipSrv.Listener.Addr().String())
	stranger := wantSPKI(testpki.Must(testpki.NewRoot("stranger", testpki.Options{})))
	u := "https://" + name + ":443/echo"
	tests := []struct {
		name    string
		args    []string
		want    int
		wantOut string
	}{
		{"name verified on HOST1", []string{"--connect-to", name + ":443:127.0.0.1:" + namedPort, u}, exitOK, "host=" + name},
		{"empty HOST1 and HOST2", []string{"--connect-to", "::127.0.0.1:" + namedPort, u}, exitOK, "host=" + name},
		{"pin on HOST1 holds", []string{"--pin", wantSPKI(p.inter), "--connect-to", name + ":443:127.0.0.1:" + namedPort, u}, exitOK, "host=" + name},
		{"wrong pin on HOST1 refused", []string{"--pin", stranger, "--connect-to", name + ":443:127.0.0.1:" + namedPort, u}, exitPin, ""},
		{"token goes to HOST1", []string{"--token-file", tokenFile, "--connect-to", name + ":443:127.0.0.1:" + namedPort, u}, exitOK, `auth="Bearer ` + secretToken + `"`},
		{"a certificate for HOST2 alone is refused", []string{"--connect-to", name + ":443:127.0.0.1:" + ipPort, u}, exitCertificate, ""},
		{"rule for another port does not apply", []string{"--max-time", "3", "--connect-to", name + ":8443:127.0.0.1:" + namedPort, "--connect-to", "127.0.0.2:443:127.0.0.1:1", u}, exitResolve, ""},
		{"malformed", []string{"--connect-to", name + ":443:127.0.0.1", u}, exitUsage, ""},
		{"bad port", []string{"--connect-to", name + ":https:127.0.0.1:1", u}, exitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, append([]string{"get", "--cacert", rootPEM}, tt.args...)...)
			if code != tt.want || !strings.Contains(out, tt.wantOut) {
				t.Errorf("got exit code %d and stdout %q, want %d and %q; stderr %q", code, out, tt.want, tt.wantOut, errOut)
			}
		})
	}
}

func TestParseConnectTo(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want connectRule
	}{
		{"a.test:443:127.0.0.1:8443", connectRule{"a.test", "443", "127.0.0.1", "8443"}},
		{"[::1]:443:[::1]:8443", connectRule{"::1", "443", "::1", "8443"}},
		{":::8443", connectRule{"", "", "", "8443"}},
	} {
		got, err := parseConnectTo(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseConnectTo(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}
