package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

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

// TestAttackGetRedirectCredentials: with -L, the credentials given for the
// URL (the --token-file token, an Authorization or Cookie header given with
// -H) go to the URL's host and port only, as curl sends them: not to
// another port of the same host, which may be another service, nor to a
// subdomain, which net/http alone would forward an Authorization header to.
func TestAttackGetRedirectCredentials(t *testing.T) {
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

// TestAttackGetBadURLSecrets: a URL refused as malformed is not echoed with
// its query or userinfo, which may hold a token or a password.
func TestAttackGetBadURLSecrets(t *testing.T) {
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

// TestAttackGetUnicodeHost: a URL, or a redirect hop, naming its host in
// Unicode ("ａｐｉ.example.test", full-width) is fetched once, over one
// connection, not redialled in a loop until --max-time.
func TestAttackGetUnicodeHost(t *testing.T) {
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
