package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"testing"
)

// startServed runs demo --serve's servers in process for one test.
func startServed(t *testing.T) *served {
	t.Helper()
	s, err := startServe(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

// servedTLS is a TLS configuration that trusts demo --serve's root, for
// the tests' own requests.
func servedTLS(t *testing.T, s *served) *tls.Config {
	t.Helper()
	pemData, err := os.ReadFile(s.rootFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		t.Fatalf("%s holds no certificate", s.rootFile)
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// echoed is what /v1/echo answers.
type echoed struct {
	Method        string `json:"method"`
	Host          string `json:"host"`
	Path          string `json:"path"`
	ContentType   string `json:"content_type"`
	Body          string `json:"body"`
	Authorization string `json:"authorization"`
	Token         *struct {
		JTI   string   `json:"jti"`
		Scope string   `json:"scope"`
		Aud   []string `json:"aud"`
	} `json:"token"`
}

// TestDemoServeEcho: /v1/echo answers any method with what it received:
// the method, host, path, content type and body, and the scheme of the
// Authorization header, never its value.
func TestDemoServeEcho(t *testing.T) {
	t.Parallel()
	s := startServed(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: servedTLS(t, s)}}
	defer client.CloseIdleConnections()
	const credential = "not-ours-0123456789"
	req, _ := http.NewRequest(http.MethodPost, s.base+"/v1/echo", strings.NewReader("a=1&b=2"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+credential)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got echoed
	if err := json.Unmarshal(raw, &got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("got %s and %q (%v), want 200 and JSON", resp.Status, raw, err)
	}
	want := echoed{Method: "POST", Host: strings.TrimPrefix(s.base, "https://"), Path: "/v1/echo",
		ContentType: "application/x-www-form-urlencoded", Body: "a=1&b=2", Authorization: "Bearer"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if strings.Contains(string(raw), credential) {
		t.Errorf("the echo %q holds the credential", raw)
	}
}

// TestDemoServeRedirects: /v1/redirect/same-host sends the client to
// /v1/echo on the same host and port, /v1/redirect/other-host to /v1/echo
// on localhost, another host of the same server. Followed with get -L,
// the first keeps the token and the second gets none.
func TestDemoServeRedirects(t *testing.T) {
	t.Parallel()
	s := startServed(t)
	port := s.base[strings.LastIndexByte(s.base, ':')+1:]
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: servedTLS(t, s)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	tests := []struct {
		path, wantLocation, wantHost, wantAuth string
	}{
		{"/v1/redirect/same-host", "/v1/echo", "127.0.0.1:" + port, "Bearer"},
		{"/v1/redirect/other-host", "https://localhost:" + port + "/v1/echo", "localhost:" + port, "none"},
	}
	for _, tt := range tests {
		resp, err := client.Get(s.base + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != tt.wantLocation {
			t.Errorf("%s: got %s to %q, want 307 to %q", tt.path, resp.Status, resp.Header.Get("Location"), tt.wantLocation)
		}

		code, out, errOut := runCmd(t, "get", "-L", "--fail", "--cacert", s.rootFile, "--client-id", serveClientID,
			"--client-secret-file", s.secretFile, "--issuer", s.base, "-d", "x=1", s.base+tt.path)
		var got echoed
		if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil {
			t.Errorf("get -L %s: got exit code %d and stdout %q (%v); stderr %q", tt.path, code, out, err, errOut)
			continue
		}
		if got.Host != tt.wantHost || got.Authorization != tt.wantAuth || got.Method != "POST" || got.Body != "x=1" {
			t.Errorf("get -L %s: the echo saw %+v, want a POST of x=1 to %s with authorization %q", tt.path, got, tt.wantHost, tt.wantAuth)
		}
	}
}

// TestDemoServeFiles: demo --serve exports the issuer and the files that
// get's token flags read: the secret, as it is exported, and a private key,
// both readable by their owner only, and prints a get command that uses
// them.
func TestDemoServeFiles(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	code := run(t.Context(), []string{"demo", "--serve", "--for", "1ms"}, strings.NewReader(""), &out, io.Discard)
	if code != exitOK {
		t.Fatalf("demo --serve --for 1ms: exit code %d, want 0", code)
	}
	env := readServeEnv(t, strings.NewReader(out.String()))
	base := env["SECUREHTTP_BASE"]
	if env["SECUREHTTP_ISSUER"] != base || base == "" {
		t.Errorf("got SECUREHTTP_ISSUER %q, want the base URL %q", env["SECUREHTTP_ISSUER"], base)
	}
	for _, k := range []string{"SECUREHTTP_CLIENT_SECRET_FILE", "SECUREHTTP_CLIENT_KEY"} {
		if env[k] == "" {
			t.Errorf("demo --serve exports no %s", k)
		}
	}
	if !strings.Contains(out.String(), `get --cacert "$SECUREHTTP_CACERT" --pin "$SECUREHTTP_PINS" --client-id "$SECUREHTTP_CLIENT_ID" --client-secret-file "$SECUREHTTP_CLIENT_SECRET_FILE" --issuer "$SECUREHTTP_ISSUER"`) {
		t.Errorf("demo --serve prints no get command with the token flags:\n%s", out.String())
	}

	// The files themselves, checked while the servers run.
	s := startServed(t)
	for _, f := range []string{s.secretFile, s.keyFile} {
		info, err := os.Stat(f)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: got %v (%v), want mode 0600", f, info.Mode(), err)
		}
	}
	if b, _ := os.ReadFile(s.secretFile); strings.TrimSpace(string(b)) != s.secret {
		t.Errorf("the secret file holds %d bytes that are not the secret", len(b))
	}
	readPKCS8(t, s.keyFile)
	s.close()
	for _, f := range []string{s.secretFile, s.keyFile} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there after the servers stopped (%v)", f, err)
		}
	}
}
