package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/securehttp/securehttp"
)

// readServeEnv reads demo --serve's output up to the quick start command
// and returns the exported variables.
func readServeEnv(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "go run ./examples/quickstart" {
			return env
		}
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = strings.Trim(v, "'")
		}
	}
	t.Fatalf("demo --serve ended its output without the quick start command (%v); got %v", sc.Err(), env)
	return nil
}

// TestDemoServe: demo --serve keeps its servers up until interrupted, and
// what it prints configures a client, as the quick start does, that gets a
// token and calls the API; it cleans up after itself.
func TestDemoServe(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errOut strings.Builder
	done := make(chan int, 1)
	go func() {
		code := run(ctx, []string{"demo", "--serve"}, strings.NewReader(""), pw, &errOut)
		pw.Close()
		done <- code
	}()
	env := readServeEnv(t, pr)
	go io.Copy(io.Discard, pr) // the servers' request log

	for _, k := range []string{"SECUREHTTP_URL", "SECUREHTTP_CACERT", "SECUREHTTP_PINS", "SECUREHTTP_TOKEN_URL", "SECUREHTTP_CLIENT_ID", "SECUREHTTP_CLIENT_SECRET"} {
		if env[k] == "" {
			t.Fatalf("demo --serve did not export %s; got %v", k, env)
		}
	}
	rootPEM, err := os.ReadFile(env["SECUREHTTP_CACERT"])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("%s holds no certificate", env["SECUREHTTP_CACERT"])
	}
	api, _ := url.Parse(env["SECUREHTTP_URL"])
	pins := strings.Split(env["SECUREHTTP_PINS"], ",")
	if len(pins) != 2 {
		t.Errorf("got pins %q, want a primary and a backup", pins)
	}
	client := func(secret string) *http.Client {
		c, err := securehttp.NewClient(securehttp.Config{
			RootCAs: roots,
			Pins:    []securehttp.PinSet{{Host: api.Hostname(), Pins: pins}},
			Bearer: &securehttp.Bearer{
				Hosts: []string{api.Hostname()},
				ClientCredentials: &securehttp.ClientCredentials{
					TokenURL: env["SECUREHTTP_TOKEN_URL"], ClientID: env["SECUREHTTP_CLIENT_ID"], ClientSecret: secret,
				},
			},
			Retry: securehttp.RetryPolicy{MaxRetries: -1},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}

	resp, err := client(env["SECUREHTTP_CLIENT_SECRET"]).Get(api.String())
	if err != nil {
		t.Fatalf("the quick start's request: %v", err)
	}
	var me struct{ Sub string }
	err = json.NewDecoder(resp.Body).Decode(&me)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || me.Sub != "demo-user" {
		t.Errorf("got %s, sub %q (%v); want 200 for demo-user", resp.Status, me.Sub, err)
	}

	// A wrong secret gets no token: the client credentials are checked.
	_, err = client("wrong").Get(api.String())
	var oe *securehttp.OAuthError
	if !errors.As(err, &oe) || oe.StatusCode != http.StatusUnauthorized {
		t.Errorf("with a wrong secret got %v, want an *OAuthError with status 401", err)
	}

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("demo --serve exit code = %d after the interrupt, want 0; stderr %q", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo --serve still runs 10 s after the interrupt")
	}
	if _, err := os.Stat(env["SECUREHTTP_CACERT"]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the root CA file is still there after the demo stopped (%v)", err)
	}
}

// TestDemoServeFor: --for bounds demo --serve without a signal.
func TestDemoServeFor(t *testing.T) {
	t.Parallel()
	start := time.Now()
	code, out, errOut := runCmd(t, "demo", "--serve", "--for", "200ms")
	if code != exitOK || !strings.Contains(out, "servers stopped") {
		t.Errorf("got exit code %d, stdout %q, stderr %q; want 0 and the servers stopped", code, out, errOut)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 10*time.Second {
		t.Errorf("ran for %v, want about 200 ms", d)
	}
	if code, _, _ := runCmd(t, "demo", "--for", "1s"); code != exitUsage {
		t.Errorf("--for without --serve: exit code %d, want %d", code, exitUsage)
	}
}

// TestDemoServeLogEscapesPath: the request log of demo --serve escapes the
// control characters of a request's path, which any local process chooses
// and percent-encoding hides from net/http's checks: an escape sequence
// reaches the terminal as text.
func TestDemoServeLogEscapesPath(t *testing.T) {
	t.Parallel()
	var log strings.Builder
	h := logRequests(&log, http.NotFoundHandler())
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/%1b]52;c;cHduZWQ=%07", nil))
	got := log.String()
	if strings.ContainsAny(got, "\x1b\x07") {
		t.Errorf("got log line %q, want its control characters escaped", got)
	}
	if want := `/v1/\x1b]52;c;cHduZWQ=\x07 → 404`; !strings.Contains(got, want) {
		t.Errorf("got log line %q, want it to hold %q", got, want)
	}
}
