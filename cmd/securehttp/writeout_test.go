package main

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testpki"
)

func TestParseWriteOut(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("https://user:pw@api.example.test:8443/v1/x?key=secret#frag")
	resp := &http.Response{
		StatusCode: 404, Proto: "HTTP/2.0", ProtoMajor: 2,
		Header:  http.Header{"Content-Type": {"text/plain\x1b[2J"}},
		Request: &http.Request{URL: u},
	}
	hop := &http.Response{Request: &http.Request{URL: u}}
	redirected := *resp
	redirected.Request = &http.Request{URL: u, Response: hop}
	http11 := *resp
	http11.Proto, http11.ProtoMajor, http11.ProtoMinor = "HTTP/1.1", 1, 1
	tests := []struct {
		format string
		st     transferStats
		want   string
	}{
		{"%{http_code}", transferStats{resp: resp}, "404"},
		{"%{response_code}\n", transferStats{resp: resp}, "404\n"},
		{"%{http_code}", transferStats{}, "000"},
		{"%{http_version}", transferStats{resp: resp}, "2"},
		{"%{http_version}", transferStats{resp: &http11}, "1.1"},
		{"%{http_version}", transferStats{}, "0"},
		{"%{size_download} bytes", transferStats{resp: resp, size: 1234}, "1234 bytes"},
		{"%{time_total}", transferStats{elapsed: 1500 * time.Millisecond}, "1.500000"},
		{"%{content_type}", transferStats{resp: resp}, `text/plain\x1b[2J`},
		{"%{num_redirects}", transferStats{resp: &redirected}, "1"},
		{"%{num_redirects}", transferStats{resp: resp}, "0"},
		{"%{url_effective}", transferStats{resp: resp}, "https://api.example.test:8443/v1/x"},
		{"%{url_effective}", transferStats{url: u}, "https://api.example.test:8443/v1/x"},
		{"%{exitcode}", transferStats{exit: exitConnect}, "7"},
		{`code=%{http_code}\tv=%{http_version}\r\n`, transferStats{resp: resp}, "code=404\tv=2\r\n"},
		{`100%% \\ \q`, transferStats{}, `100% \ \q`},
		{"plain", transferStats{}, "plain"},
	}
	for _, tt := range tests {
		w, err := parseWriteOut(tt.format)
		if err != nil {
			t.Errorf("parseWriteOut(%q): %v", tt.format, err)
			continue
		}
		if got := w.render(tt.st); got != tt.want {
			t.Errorf("parseWriteOut(%q).render() = %q, want %q", tt.format, got, tt.want)
		}
	}
	for _, bad := range []string{"%{http_cod}", "%{http_code", "%{}", "@format.txt", "%{url}"} {
		if _, err := parseWriteOut(bad); err == nil {
			t.Errorf("parseWriteOut(%q) = nil error, want one", bad)
		}
	}
}

// TestGetWriteOut: -w writes its variables to stdout after the body, for
// an answer of any status and for a failed transfer too, as curl does.
func TestGetWriteOut(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	srv := getServer(t, testpki.TLSCertificate(p.leaf, p.inter))
	h1 := rawServer(t, map[string]string{
		"/ok": "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
	})
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	refused := "https://" + closedPort(t) + "/"
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStdout string
	}{
		{"200", []string{"-w", "%{http_code}", srv.URL + "/ok"}, exitOK, "hello\n200"},
		{"200, body to /dev/null", []string{"-o", "/dev/null", "--write-out", "%{http_code}\n", srv.URL + "/ok"}, exitOK, "200\n"},
		{"404 without --fail", []string{"-w", "%{http_code}", srv.URL + "/missing"}, exitOK, "404 page not found\n404"},
		{"404 with --fail", []string{"-f", "-w", "%{http_code} %{exitcode}", srv.URL + "/missing"}, exitHTTP, "404 22"},
		{"connection refused", []string{"-s", "-w", "%{http_code} %{exitcode}", refused}, exitConnect, "000 7"},
		{"HTTP/2 and its size", []string{"-o", "/dev/null", "-w", "%{http_version} %{size_download}", srv.URL + "/ok"}, exitOK, "2 6"},
		{"HTTP/1.1", []string{"-o", "/dev/null", "-w", "%{http_version}", h1.URL + "/ok"}, exitOK, "1.1"},
		{"unknown variable", []string{"-w", "%{bogus}", srv.URL + "/ok"}, exitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, append([]string{"get", "--cacert", rootPEM}, tt.args...)...)
			if code != tt.want || out != tt.wantStdout {
				t.Errorf("got exit code %d and stdout %q, want %d and %q; stderr %q", code, out, tt.want, tt.wantStdout, errOut)
			}
		})
	}

	t.Run("time_total", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runCmd(t, "get", "--cacert", rootPEM, "-o", "/dev/null", "-w", "%{time_total}", srv.URL+"/ok")
		secs, err := strconv.ParseFloat(out, 64)
		if code != exitOK || err != nil || secs <= 0 || !strings.Contains(out, ".") {
			t.Errorf("got exit code %d and stdout %q (%v), want 0 and a positive number of seconds; stderr %q", code, out, err, errOut)
		}
	})
}
