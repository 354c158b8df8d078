package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testpki"
)

func TestGetCurlFlags(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	base := startTLS(t, testpki.TLSCertificate(p.leaf, p.inter), echoMux()).URL
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
	namedSrv := startTLS(t, testpki.TLSCertificate(named, p.inter), echoMux())
	ipSrv := startTLS(t, testpki.TLSCertificate(p.leaf, p.inter), echoMux()) // valid for 127.0.0.1 only
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

// TestHelp: every command's help goes to stdout with exit code 0, however
// it is asked for, and spells its flags as its usage line does; each
// spelling it shows is accepted.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"demo", "pins", "get", "version"} {
		for _, args := range [][]string{{"help", cmd}, {cmd, "-h"}, {cmd, "--help"}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				code, out, errOut := runCmd(t, args...)
				if code != exitOK || errOut != "" || !strings.HasPrefix(out, "usage: securehttp "+cmd) {
					t.Fatalf("got exit code %d, stdout %q, stderr %q; want 0 and the help on stdout", code, out, errOut)
				}
				c, _ := lookup(cmd)
				o := c.opts(io.Discard, io.Discard)
				usage := strings.SplitN(out, "\n", 2)[0]
				shown := helpFlags(out)
				for _, f := range strings.Fields(usage) {
					f = strings.Trim(f, "[]")
					if strings.HasPrefix(f, "-") && !slices.Contains(shown, f) {
						t.Errorf("usage line has %s, but the options list does not: %v", f, shown)
					}
				}
				for _, f := range shown {
					if o.fs.Lookup(strings.TrimLeft(f, "-")) == nil {
						t.Errorf("help shows %s, which the command does not accept", f)
					}
					if long := strings.HasPrefix(f, "--"); long == (len(strings.TrimLeft(f, "-")) == 1) {
						t.Errorf("help spells %s: want -x for one letter and --name otherwise", f)
					}
				}
				if cmd == "get" {
					for _, want := range []string{"-H", "--header", "-X", "-d", "--data-binary", "-i", "-L", "--max-time", "--connect-to", "--fail", "--fail-with-body", "-o", "--pin", "--cacert", "--token-file"} {
						if !slices.Contains(shown, want) {
							t.Errorf("get's help lacks %s", want)
						}
					}
				}
			})
		}
	}
	t.Run("help alone", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runCmd(t, "help")
		if code != exitOK || errOut != "" || !strings.Contains(out, "securehttp get [options] URL") {
			t.Errorf("got %d, %q, %q; want the usage on stdout", code, out, errOut)
		}
	})
	t.Run("help of an unknown command", func(t *testing.T) {
		t.Parallel()
		if code, out, _ := runCmd(t, "help", "fetch"); code != exitUsage || out != "" {
			t.Errorf("got exit code %d and stdout %q, want %d and nothing", code, out, exitUsage)
		}
	})
}

// helpFlags returns the flag spellings of a help text's options list.
func helpFlags(help string) []string {
	var out []string
	_, opts, _ := strings.Cut(help, "\noptions:\n")
	for line := range strings.SplitSeq(opts, "\n") {
		if !strings.HasPrefix(line, "  -") {
			continue
		}
		for f := range strings.SplitSeq(strings.TrimSpace(line), ", ") {
			out = append(out, strings.Fields(f)[0])
		}
	}
	return out
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := runCmd(t, args...)
		if code != exitOK || !strings.HasPrefix(out, "securehttp ") || !strings.Contains(out, runtime.Version()) || errOut != "" {
			t.Errorf("%q: got %d, %q, %q; want 0 and a version line naming %s", args, code, out, errOut, runtime.Version())
		}
	}
}

// TestExtraArguments: a refused argument is named, with the reason.
func TestExtraArguments(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		why  string
	}{
		{[]string{"get", "https://127.0.0.1:1/a", "https://127.0.0.1:1/b"}, `unexpected argument "https://127.0.0.1:1/b": get takes one URL`},
		{[]string{"pins", "https://127.0.0.1:1/", "extra"}, `unexpected argument "extra": pins takes one URL`},
		{[]string{"demo", "fast"}, `unexpected argument "fast": demo takes no arguments`},
		{[]string{"version", "2"}, `unexpected argument "2": version takes no arguments`},
		{[]string{"help", "get", "pins"}, `unexpected argument "pins"`},
		{[]string{"get"}, "missing the URL"},
		{[]string{"pins"}, "missing the URL"},
		{[]string{"get", "--no-such-flag", "https://127.0.0.1:1/"}, "flag provided but not defined"},
	} {
		code, out, errOut := runCmd(t, tt.args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tt.why) {
			t.Errorf("%q: got exit code %d, stdout %q, stderr %q; want %d and %q", tt.args, code, out, errOut, exitUsage, tt.why)
		}
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
