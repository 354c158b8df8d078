package securehttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/secrettest"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// fakePin returns a well-formed SPKI pin that matches no key.
func fakePin(c byte) string { return "sha256/" + strings.Repeat(string(c), 42) + "A=" }

func okHandler(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }

// get performs a GET through tr and returns the body, or the error.
func get(t testing.TB, tr http.RoundTripper, rawURL string) (string, error) {
	t.Helper()
	c := &http.Client{Transport: tr}
	resp, err := c.Get(rawURL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestChainValidation(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	now := time.Now()
	names := testpki.Options{DNSNames: []string{hostAPI}}
	leafWith := func(issuer *testpki.Cert, o testpki.Options) *testpki.Cert {
		if o.DNSNames == nil {
			o.DNSNames = names.DNSNames
		}
		return testpki.Must(issuer.NewLeaf(hostAPI, o))
	}
	otherRoot := testpki.Must(testpki.NewRoot("untrusted root", testpki.Options{}))
	otherInter := testpki.Must(otherRoot.NewIntermediate("untrusted intermediate", testpki.Options{}))
	expiredInter := testpki.Must(p.root.NewIntermediate("expired intermediate", testpki.Options{NotAfter: now.Add(-time.Hour)}))
	notCA := testpki.Must(p.root.NewIntermediate("not a CA", testpki.Options{NotCA: true}))
	weakInter := testpki.Must(p.root.NewIntermediate("weak intermediate", testpki.Options{KeyType: testpki.RSA1024}))

	expired := func(err error) bool {
		var invalid x509.CertificateInvalidError
		return errors.As(err, &invalid) && invalid.Reason == x509.Expired
	}
	unknownAuthority := func(err error) bool {
		var unknown x509.UnknownAuthorityError
		return errors.As(err, &unknown)
	}
	weakP224 := testpki.Must(p.root.NewIntermediate("weak P-224 intermediate", testpki.Options{KeyType: testpki.ECDSAP224}))
	tests := []struct {
		name string
		cert tls.Certificate
		// check inspects the error; nil means the request must succeed.
		check func(error) bool
	}{
		{"valid chain", p.serverCert(), nil},
		{"valid RSA 2048 leaf", testpki.TLSCertificate(leafWith(p.inter, testpki.Options{KeyType: testpki.RSA2048}), p.inter), nil},
		{"valid Ed25519 leaf", testpki.TLSCertificate(leafWith(p.inter, testpki.Options{KeyType: testpki.Ed25519}), p.inter), nil},
		{"expired leaf",
			testpki.TLSCertificate(leafWith(p.inter, testpki.Options{NotAfter: now.Add(-time.Minute)}), p.inter),
			expired},
		{"not yet valid leaf",
			testpki.TLSCertificate(leafWith(p.inter, testpki.Options{NotBefore: now.Add(time.Hour)}), p.inter),
			expired},
		{"expired intermediate",
			testpki.TLSCertificate(leafWith(expiredInter, testpki.Options{NotAfter: now.Add(time.Hour)}), expiredInter),
			expired},
		{"wrong host",
			testpki.TLSCertificate(leafWith(p.inter, testpki.Options{DNSNames: []string{"elsewhere.test"}}), p.inter),
			func(err error) bool { var hostname x509.HostnameError; return errors.As(err, &hostname) }},
		{"self-signed",
			testpki.TLSCertificate(testpki.Must(testpki.SelfSignedLeaf(hostAPI, names))),
			unknownAuthority},
		{"untrusted root",
			testpki.TLSCertificate(leafWith(otherInter, testpki.Options{}), otherInter),
			unknownAuthority},
		{"missing intermediate",
			testpki.TLSCertificate(leafWith(p.inter, testpki.Options{})),
			unknownAuthority},
		{"intermediate that is not a CA",
			testpki.TLSCertificate(leafWith(notCA, testpki.Options{}), notCA),
			unknownAuthority},
		{"client-auth-only leaf",
			testpki.TLSCertificate(leafWith(p.inter, testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}), p.inter),
			func(err error) bool {
				var invalid x509.CertificateInvalidError
				return errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage
			}},
		{"weak RSA 1024 leaf",
			testpki.TLSCertificate(leafWith(p.inter, testpki.Options{KeyType: testpki.RSA1024}), p.inter),
			func(err error) bool { return errors.Is(err, ErrWeakKey) }},
		{"weak P-224 intermediate",
			testpki.TLSCertificate(leafWith(weakP224, testpki.Options{}), weakP224),
			func(err error) bool { return errors.Is(err, ErrWeakKey) }},
		{"weak RSA 1024 intermediate",
			testpki.TLSCertificate(leafWith(weakInter, testpki.Options{}), weakInter),
			func(err error) bool { return errors.Is(err, ErrWeakKey) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := testutil.StartServer(t, tt.cert, http.HandlerFunc(okHandler))
			tr := newTestTransport(t, testConfig(t))
			body, err := get(t, tr, testutil.HostURL(srv, hostAPI, "/"))
			if tt.check == nil {
				if err != nil || body != "ok" {
					t.Fatalf("got (%q, %v), want (\"ok\", nil)", body, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got a response, want the connection refused")
			}
			if !tt.check(err) {
				t.Fatalf("got error %v (%T), not the expected kind", err, errors.Unwrap(err))
			}
			if errors.Is(err, ErrPinMismatch) {
				t.Fatalf("got ErrPinMismatch without pins: %v", err)
			}
		})
	}
}

func TestPins(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	leafHex := strings.ReplaceAll(p.leaf.Fingerprint(), ":", "")
	wrong := "sha256/" + strings.Repeat("A", 43) + "="
	tests := []struct {
		name       string
		pins       []PinSet
		wantErr    bool
		wantReport int // report-only failures expected through Hooks.PinFailure
	}{
		{"leaf SPKI", []PinSet{{Host: hostAPI, Pins: []string{p.leaf.SPKIPin()}}}, false, 0},
		{"intermediate SPKI", []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin()}}}, false, 0},
		{"root the server does not send", []PinSet{{Host: hostAPI, Pins: []string{p.root.SPKIPin()}}}, false, 0},
		{"leaf fingerprint with colons", []PinSet{{Host: hostAPI, Pins: []string{p.leaf.Fingerprint()}}}, false, 0},
		{"leaf fingerprint plain lower case", []PinSet{{Host: hostAPI, Pins: []string{strings.ToLower(leafHex)}}}, false, 0},
		{"backup pin first", []PinSet{{Host: hostAPI, Pins: []string{wrong, p.inter.SPKIPin()}}}, false, 0},
		{"wrong pin", []PinSet{{Host: hostAPI, Pins: []string{wrong}}}, true, 0},
		{"wrong pin, host in upper case with dot", []PinSet{{Host: "API.TEST.", Pins: []string{wrong}}}, true, 0},
		{"pins of another host do not apply", []PinSet{{Host: hostOther, Pins: []string{wrong}}}, false, 0},
		{"wildcard one label does not match the apex", []PinSet{{Host: "*.api.test", Pins: []string{wrong}}}, false, 0},
		{"double wildcard matches the apex", []PinSet{{Host: "**.api.test", Pins: []string{wrong}}}, true, 0},
		{"wildcard one label", []PinSet{{Host: "*.test", Pins: []string{wrong}}}, true, 0},
		{"report only", []PinSet{{Host: hostAPI, Pins: []string{wrong}, ReportOnly: true}}, false, 1},
		{"expired set is not enforced", []PinSet{{Host: hostAPI, Pins: []string{wrong}, Expires: time.Now().Add(-time.Hour)}}, false, 0},
		{"unexpired set is enforced", []PinSet{{Host: hostAPI, Pins: []string{wrong}, Expires: time.Now().Add(time.Hour)}}, true, 0},
		{"enforced set wins over report-only", []PinSet{
			{Host: hostAPI, Pins: []string{wrong}},
			{Host: hostAPI, Pins: []string{wrong}, ReportOnly: true},
		}, true, 1},
		{"any matching set may hold the pin", []PinSet{
			{Host: hostAPI, Pins: []string{wrong}},
			{Host: "**.test", Pins: []string{p.root.SPKIPin()}},
		}, false, 0},
	}
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(okHandler))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var reports atomic.Int64
			cfg := testConfig(t)
			cfg.Pins = tt.pins
			cfg.Hooks = &Hooks{PinFailure: func(e *PinError) {
				if e.ReportOnly {
					reports.Add(1)
				}
			}}
			logger, logs := testutil.NewLogger()
			cfg.Logger = logger
			tr := newTestTransport(t, cfg)
			_, err := get(t, tr, testutil.HostURL(srv, hostAPI, "/"))
			if tt.wantErr {
				var pe *PinError
				if !errors.Is(err, ErrPinMismatch) || !errors.As(err, &pe) {
					t.Fatalf("got %v, want a *PinError matching ErrPinMismatch", err)
				}
				want := []string{p.leaf.SPKIPin(), p.inter.SPKIPin(), p.root.SPKIPin()}
				if pe.Host != hostAPI || !reflect.DeepEqual(pe.Pins, want) {
					t.Fatalf("got PinError{Host: %q, Pins: %v}, want {%q, %v}", pe.Host, pe.Pins, hostAPI, want)
				}
				if !strings.Contains(err.Error(), p.root.SPKIPin()) {
					t.Fatalf("error %q does not show the verified chain's pins", err)
				}
			} else if err != nil {
				t.Fatalf("got %v, want success", err)
			}
			if got := reports.Load(); got != int64(tt.wantReport) {
				t.Fatalf("got %d report-only failures, want %d", got, tt.wantReport)
			}
			if tt.wantReport > 0 && !strings.Contains(logs.String(), "pin mismatch") {
				t.Fatalf("report-only mismatch was not logged: %q", logs.String())
			}
		})
	}
}

func TestPinIPHost(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(okHandler))
	for _, tt := range []struct {
		name    string
		pin     string
		wantErr bool
	}{
		{"right pin", p.inter.SPKIPin(), false},
		{"leaf fingerprint", p.leaf.Fingerprint(), false},
		{"wrong SPKI pin", fakePin('B'), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.Pins = []PinSet{{Host: "127.0.0.1", Pins: []string{tt.pin}}}
			_, err := get(t, newTestTransport(t, cfg), srv.URL+"/")
			if got := errors.Is(err, ErrPinMismatch); got != tt.wantErr {
				t.Fatalf("got error %v, want pin mismatch %v", err, tt.wantErr)
			}
		})
	}
}

// TestAppendedCertificate is OkHttp's CVE-2016-2402: a server with a chain
// that verifies through one trusted root appends the pinned certificate of
// another hierarchy. Only the verified chain may count.
func TestAppendedCertificate(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	rogueRoot := testpki.Must(testpki.NewRoot("rogue but trusted root", testpki.Options{}))
	rogueInter := testpki.Must(rogueRoot.NewIntermediate("rogue intermediate", testpki.Options{}))
	rogueLeaf := testpki.Must(rogueInter.NewLeaf(hostAPI, testpki.Options{DNSNames: []string{hostAPI}}))
	srv := testutil.StartServer(t, testpki.TLSCertificate(rogueLeaf, rogueInter, p.inter, p.root), http.HandlerFunc(okHandler))

	roots := x509.NewCertPool()
	roots.AddCert(p.root.Cert)
	roots.AddCert(rogueRoot.Cert)
	for _, pinned := range []*testpki.Cert{p.inter, p.root} {
		cfg := testConfig(t)
		cfg.RootCAs = roots
		cfg.Pins = []PinSet{{Host: hostAPI, Pins: []string{pinned.SPKIPin(), pinned.Fingerprint()}}}
		_, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/"))
		var pe *PinError
		if !errors.As(err, &pe) {
			t.Fatalf("pinned %s: got %v, want a *PinError", pinned.Cert.Subject.CommonName, err)
		}
		want := []string{rogueLeaf.SPKIPin(), rogueInter.SPKIPin(), rogueRoot.SPKIPin()}
		if !reflect.DeepEqual(pe.Pins, want) {
			t.Fatalf("got chain pins %v, want the rogue verified chain %v", pe.Pins, want)
		}
	}
}

// TestPinsOnResumedConnections shows that VerifyConnection, and so the pin
// check, runs on resumed sessions: a transport with a wrong pin that resumes
// a session established by a correctly pinned one is still refused.
func TestPinsOnResumedConnections(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			t.Parallel()
			var resumed atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.TLS.DidResume {
					resumed.Add(1)
				}
				io.WriteString(w, "ok")
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.serverCert()}, MaxVersion: version}
			srv.Config.ErrorLog = testutil.QuietLog()
			srv.StartTLS()
			t.Cleanup(srv.Close)

			good := testConfig(t)
			good.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin()}}}
			trGood := newTestTransport(t, good)
			url := testutil.HostURL(srv, hostAPI, "/")
			for i := range 2 {
				if _, err := get(t, trGood, url); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				trGood.conns.base.CloseIdleConnections()
			}
			if got := resumed.Load(); got != 1 {
				t.Fatalf("got %d resumed connections, want 1 (the second)", got)
			}

			bad := testConfig(t)
			bad.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.leaf.Fingerprint()[:len(p.leaf.Fingerprint())-2] + "00"}}}
			trBad := newTestTransport(t, bad)
			trBad.conns.base.TLSClientConfig.ClientSessionCache = trGood.conns.base.TLSClientConfig.ClientSessionCache
			var didResume atomic.Bool
			verify := trBad.conns.base.TLSClientConfig.VerifyConnection
			trBad.conns.base.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
				didResume.Store(cs.DidResume)
				return verify(cs)
			}
			_, err := get(t, trBad, url)
			if !didResume.Load() {
				t.Fatalf("the handshake did not resume; the test proves nothing")
			}
			if !errors.Is(err, ErrPinMismatch) {
				t.Fatalf("got %v on a resumed connection, want ErrPinMismatch", err)
			}
		})
	}
}

func TestHTTP2(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.ProtoMajor)
	}))
	cfg := testConfig(t)
	cfg.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.leaf.SPKIPin()}}}
	c := &http.Client{Transport: newTestTransport(t, cfg)}
	resp, err := c.Get(testutil.HostURL(srv, hostAPI, "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || string(body) != "2" {
		t.Fatalf("got client protocol %d, server protocol %s, want 2 and 2", resp.ProtoMajor, body)
	}
}

// plainListener is a plain TCP listener that counts the connections it
// accepts and answers each with a redirect or a 200.
func plainListener(t *testing.T) (*testutil.CountingListener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &testutil.CountingListener{Listener: ln}
	srv := &http.Server{Handler: http.HandlerFunc(okHandler), ErrorLog: testutil.QuietLog()}
	go srv.Serve(cl)
	t.Cleanup(func() { srv.Close() })
	return cl, "http://" + ln.Addr().String()
}

func TestPlainHTTPRefused(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	ln, plainURL := plainListener(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plainURL+"/downgraded", http.StatusFound)
	}))
	client, err := NewClient(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)

	for _, tt := range []struct{ name, url string }{
		{"plain URL", plainURL + "/"},
		{"upper-case scheme", strings.Replace(plainURL, "http", "HTTP", 1) + "/"},
		{"downgrade redirect", testutil.HostURL(srv, hostAPI, "/start")},
		{"ws scheme", strings.Replace(plainURL, "http", "ws", 1)},
	} {
		body := &closeTracker{Reader: strings.NewReader("secret body")}
		req, err := http.NewRequest(http.MethodPut, tt.url, body)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(tt.name, "redirect") {
			req, _ = http.NewRequest(http.MethodGet, tt.url, nil)
		}
		resp, err := client.Do(req)
		if resp != nil {
			resp.Body.Close()
			t.Fatalf("%s: got a response with status %d, want none", tt.name, resp.StatusCode)
		}
		if !errors.Is(err, ErrInsecureScheme) {
			t.Fatalf("%s: got %v, want ErrInsecureScheme", tt.name, err)
		}
		if req.Body != nil && req.Body != http.NoBody && !body.closed.Load() {
			t.Fatalf("%s: request body was not closed", tt.name)
		}
	}
	if n := ln.N.Load(); n != 0 {
		t.Fatalf("the plain listener accepted %d connections, want 0", n)
	}
}

type closeTracker struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeTracker) Close() error { c.closed.Store(true); return nil }

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	good := "sha256/" + strings.Repeat("A", 43) + "="
	tests := []struct {
		name, field string
		cfg         Config
	}{
		{"empty host", "Pins[0].Host", Config{Pins: []PinSet{{Pins: []string{good}}}}},
		{"host with port", "Pins[0].Host", Config{Pins: []PinSet{{Host: "a.test:443", Pins: []string{good}}}}},
		{"wildcard inside", "Pins[0].Host", Config{Pins: []PinSet{{Host: "a.*.test", Pins: []string{good}}}}},
		{"empty pin list", "Pins[1].Pins", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{good}}, {Host: "b.test"}}}},
		{"sha1 pin", "Pins[0].Pins[1]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{good, "sha1/AAAAAAAAAAAAAAAAAAAAAAAAAAA="}}}}},
		{"bad base64", "Pins[0].Pins[0]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{"sha256/not*base64"}}}}},
		{"short digest", "Pins[0].Pins[0]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{"sha256/AAAA"}}}}},
		{"hex too short", "Pins[0].Pins[0]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{strings.Repeat("ab", 31)}}}}},
		{"hex not hex", "Pins[0].Pins[0]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{strings.Repeat("zz", 32)}}}}},
		{"ragged colons", "Pins[0].Pins[0]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{"A" + strings.Repeat(":AB", 31) + "B"}}}}},
		{"empty pin", "Pins[0].Pins[0]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{""}}}}},
		{"negative MinWait", "Retry.MinWait", Config{Retry: RetryPolicy{MinWait: -time.Second}}},
		{"MaxWait below MinWait", "Retry.MaxWait", Config{Retry: RetryPolicy{MinWait: time.Second, MaxWait: time.Millisecond}}},
		{"bearer without hosts", "Bearer.Hosts", Config{Bearer: &Bearer{Store: NewMemoryStore(Token{Value: "t"})}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(tt.cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got (%v, %v), want a *ConfigError", c, err)
			}
			if ce.Field != tt.field {
				t.Fatalf("got field %q, want %q", ce.Field, tt.field)
			}
			if !strings.HasPrefix(err.Error(), "securehttp: ") || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q should start with securehttp: and name %s", err, tt.field)
			}
		})
	}
}

// A ConfigError that quotes a URL, or a URL typed where a host was
// expected, shows it without userinfo, query or fragment: they may hold a
// password or a key, and configuration errors end up in logs.
func TestConfigErrorHidesURLSecrets(t *testing.T) {
	t.Parallel()
	const (
		password = "Pa55w0rdInURL"
		query    = "qS3cretInURL"
		fragment = "fS3cretInURL"
	)
	u := "https://svc:" + password + "@as.test/token?key=" + query + "#" + fragment
	cc := func(c ClientCredentials) Config {
		c.ClientID, c.ClientSecret = "c", "s"
		if c.Issuer == "" && c.TokenURL == "" {
			c.Issuer = "https://as.test"
		}
		return Config{Bearer: &Bearer{ClientCredentials: &c, Hosts: []string{hostAPI}}}
	}
	for _, tt := range []struct {
		name, field string
		cfg         Config
	}{
		{"TokenURL with userinfo", "Bearer.ClientCredentials.TokenURL", cc(ClientCredentials{TokenURL: u})},
		{"plain-HTTP TokenURL", "Bearer.ClientCredentials.TokenURL", cc(ClientCredentials{TokenURL: "http://svc:" + password + "@as.test/token?key=" + query})},
		{"TokenURL that does not parse", "Bearer.ClientCredentials.TokenURL", cc(ClientCredentials{TokenURL: "https://svc:" + password + "@as.test:port/token?key=" + query})},
		{"Issuer with userinfo", "Bearer.ClientCredentials.Issuer", cc(ClientCredentials{Issuer: u})},
		{"Issuer with a query", "Bearer.ClientCredentials.Issuer", cc(ClientCredentials{Issuer: "https://as.test/?key=" + query + "#" + fragment})},
		{"Resource with a fragment", "Bearer.ClientCredentials.Resource[0]", cc(ClientCredentials{Resource: []string{u}})},
		{"URL in Bearer.Hosts", "Bearer.Hosts[0]", Config{Bearer: &Bearer{Refresh: tokStaticT("t"), Hosts: []string{u}}}},
		{"userinfo in Bearer.Hosts", "Bearer.Hosts[0]", Config{Bearer: &Bearer{Refresh: tokStaticT("t"), Hosts: []string{"svc:" + password + "@as.test"}}}},
		{"URL in PinSet.Host", "Pins[0].Host", Config{Pins: []PinSet{{Host: u, Pins: []string{fakePin('A')}}}}},
		{"URL in AllowHosts", "AllowHosts[0]", Config{AllowHosts: []string{u}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := newTransport(tt.cfg)
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok || ce.Field != tt.field {
				t.Fatalf("got %v, want a *ConfigError for %s", err, tt.field)
			}
			for _, shown := range []string{err.Error(), fmt.Sprintf("%v|%+v|%s|%q", err, err, err, err)} {
				for _, secret := range []string{password, query, fragment} {
					if strings.Contains(shown, secret) {
						t.Fatalf("got %q, want it without %q", shown, secret)
					}
				}
				if !strings.Contains(shown, "as.test") {
					t.Fatalf("got %q, want the host as.test still shown", shown)
				}
			}
		})
	}
}

// A ConfigError hides a URL's userinfo, query and fragment however it is
// printed, not only in its message: %#v, %d, encoding/json and a JSON log
// of a struct holding it show the struct's fields, Value among them.
func TestConfigErrorPrintsNoURLSecret(t *testing.T) {
	t.Parallel()
	var (
		password = secrettest.Canary("config-password", 24)
		query    = secrettest.Canary("config-query", 24)
		fragment = secrettest.Canary("config-fragment", 24)
	)
	_, err := newTransport(Config{Bearer: &Bearer{Hosts: []string{hostAPI}, ClientCredentials: &ClientCredentials{
		ClientID: "c", ClientSecret: "s",
		TokenURL: "http://svc:" + password + "@as.test/token?key=" + query + "#" + fragment,
	}}})
	ce, ok := errors.AsType[*ConfigError](err)
	if !ok {
		t.Fatalf("got %v, want a *ConfigError", err)
	}
	secrettest.Check(t, ce, password, query, fragment)
}

func TestDropIn(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", okHandler)
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/set-cookie", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s1", Secure: true, Path: "/"})
		http.SetCookie(w, &http.Cookie{Name: "insecure", Value: "i1", Path: "/"})
	})
	mux.HandleFunc("/cookies", func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for _, c := range r.Cookies() {
			names = append(names, c.Name+"="+c.Value)
		}
		io.WriteString(w, strings.Join(names, ";"))
	})
	srv := testutil.StartServer(t, p.serverCert(), mux)

	t.Run("context cancellation", func(t *testing.T) {
		t.Parallel()
		client, err := NewClient(testConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.CloseIdleConnections)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, testutil.HostURL(srv, hostAPI, "/block"), nil)
		start := time.Now()
		resp, err := client.Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("cancellation took %v", d)
		}
	})

	t.Run("CheckRedirect", func(t *testing.T) {
		t.Parallel()
		client, err := NewClient(testConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.CloseIdleConnections)
		var hops atomic.Int64
		client.CheckRedirect = func(*http.Request, []*http.Request) error {
			hops.Add(1)
			return http.ErrUseLastResponse
		}
		resp, err := client.Get(testutil.HostURL(srv, hostAPI, "/redirect"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || hops.Load() != 1 {
			t.Fatalf("got status %d after %d CheckRedirect calls, want 302 after 1", resp.StatusCode, hops.Load())
		}
	})

	t.Run("cookie jar", func(t *testing.T) {
		t.Parallel()
		client, err := NewClient(testConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.CloseIdleConnections)
		if client.Jar != nil {
			t.Fatalf("NewClient set a cookie jar, want none")
		}
		client.Jar = NewCookieJar()
		resp, err := client.Get(testutil.HostURL(srv, hostAPI, "/set-cookie"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		body, err := get(t, clientTransport{client}, testutil.HostURL(srv, hostAPI, "/cookies"))
		if err != nil || body != "session=s1" {
			t.Fatalf("got cookies %q (%v), want only the Secure one, session=s1", body, err)
		}
	})

	t.Run("CloseIdleConnections", func(t *testing.T) {
		t.Parallel()
		var conns atomic.Int64
		cfg := testConfig(t)
		cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conns.Add(1)
			return testutil.LoopbackDial(ctx, network, addr)
		}
		client, err := NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := get(t, clientTransport{client}, testutil.HostURL(srv, hostAPI, "/ok")); err != nil {
				t.Fatal(err)
			}
		}
		client.CloseIdleConnections()
		if _, err := get(t, clientTransport{client}, testutil.HostURL(srv, hostAPI, "/ok")); err != nil {
			t.Fatal(err)
		}
		client.CloseIdleConnections()
		if got := conns.Load(); got != 2 {
			t.Fatalf("got %d dials, want 2 (one reused, one after CloseIdleConnections)", got)
		}
	})
}

// clientTransport lets get use a whole *http.Client, jar and all.
type clientTransport struct{ c *http.Client }

func (ct clientTransport) RoundTrip(r *http.Request) (*http.Response, error) { return ct.c.Do(r) }

// TestPoolNoChurn sends rounds of 64 concurrent HTTP/1.1 requests to one
// host: the pool keeps the connections, so later rounds handshake no more.
func TestPoolNoChurn(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	var handshakes atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond) // keep requests overlapping
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{p.serverCert()},
		NextProtos:   []string{"http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			handshakes.Add(1)
			return nil, nil
		},
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tr := newTestTransport(t, testConfig(t))
	round := func() {
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				if _, err := get(t, tr, testutil.HostURL(srv, hostAPI, "/")); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	round()
	first := handshakes.Load()
	for range 3 {
		round()
	}
	// A pool of two idle connections per host (net/http's default) would
	// handshake about 62 times a round; a few new connections across three
	// rounds are timing, not churn.
	if got := handshakes.Load(); first > 64 || got-first > 8 {
		t.Fatalf("got %d handshakes in the first round and %d more in the next three, want at most 64 and at most 8", first, got-first)
	}
}

// TestRoundTripperContract checks that the caller's request and Config are
// left as they were and that bodies are closed on error paths.
func TestRoundTripperContract(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	var gotAuth atomic.Value
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization"))
		io.Copy(io.Discard, r.Body)
	}))
	cfg := testConfig(t)
	cfg.Pins = []PinSet{{Host: "**.test", Pins: []string{p.root.SPKIPin()}}}
	cfg.Bearer = &Bearer{Store: NewMemoryStore(Token{Value: "opaque-token"}), Hosts: []string{hostAPI}}
	before := fmt.Sprintf("%+v %v", cfg.Pins, cfg.Bearer.Hosts)
	tr := newTestTransport(t, cfg)

	req, _ := http.NewRequest(http.MethodPost, testutil.HostURL(srv, hostAPI, "/"), strings.NewReader("body"))
	req.Header.Set("X-Test", "1")
	headerBefore := req.Header.Clone()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := gotAuth.Load(); got != "Bearer opaque-token" {
		t.Fatalf("server got Authorization %q, want the bearer token", got)
	}
	if !reflect.DeepEqual(req.Header, headerBefore) {
		t.Fatalf("request header changed: got %v, want %v", req.Header, headerBefore)
	}
	if after := fmt.Sprintf("%+v %v", cfg.Pins, cfg.Bearer.Hosts); after != before {
		t.Fatalf("config changed: got %s, want %s", after, before)
	}

	// A failing dial closes the body too.
	cfgDown := testConfig(t)
	cfgDown.Retry.MaxRetries = -1
	cfgDown.DialContext = func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no network in this test")
	}
	body := &closeTracker{Reader: strings.NewReader("x")}
	req, _ = http.NewRequest(http.MethodPost, testutil.HostURL(srv, hostAPI, "/"), body)
	resp, err = newTestTransport(t, cfgDown).RoundTrip(req)
	if resp != nil || err == nil {
		t.Fatalf("got (%v, %v), want (nil, error)", resp, err)
	}
	if !body.closed.Load() {
		t.Fatalf("request body was not closed after a dial error")
	}
}

// TestClientsShareNoState shows two clients from one Config keep separate
// pools and session caches: the second client's first connection is a full
// handshake.
func TestClientsShareNoState(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	var resumed atomic.Int64
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.DidResume {
			resumed.Add(1)
		}
	}))
	cfg := testConfig(t)
	a, b := newTestTransport(t, cfg), newTestTransport(t, cfg)
	if a.conns.base == b.conns.base || a.conns.base.TLSClientConfig.ClientSessionCache == b.conns.base.TLSClientConfig.ClientSessionCache {
		t.Fatalf("two transports share a pool or a session cache")
	}
	for _, tr := range []*transport{a, b} {
		if _, err := get(t, tr, testutil.HostURL(srv, hostAPI, "/")); err != nil {
			t.Fatal(err)
		}
	}
	if got := resumed.Load(); got != 0 {
		t.Fatalf("got %d resumed sessions across clients, want 0", got)
	}
}

func TestExpiryWarningOncePerCertificate(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	soon := testpki.Must(p.inter.NewLeaf(hostAPI, testpki.Options{
		DNSNames: []string{hostAPI}, NotAfter: time.Now().Add(72 * time.Hour),
	}))
	srv := testutil.StartServer(t, testpki.TLSCertificate(soon, p.inter), http.HandlerFunc(okHandler))
	logger, logs := testutil.NewLogger()
	cfg := testConfig(t)
	cfg.Logger = logger
	tr := newTestTransport(t, cfg)
	for range 3 {
		if _, err := get(t, tr, testutil.HostURL(srv, hostAPI, "/")); err != nil {
			t.Fatal(err)
		}
		tr.conns.base.CloseIdleConnections() // a new handshake each time
	}
	if got := strings.Count(logs.String(), "expires soon"); got != 1 {
		t.Fatalf("got %d expiry warnings, want 1:\n%s", got, logs)
	}

	quiet := testConfig(t)
	quietLogger, quietLogs := testutil.NewLogger()
	quiet.Logger, quiet.ExpiryWarning = quietLogger, time.Hour
	if _, err := get(t, newTestTransport(t, quiet), testutil.HostURL(srv, hostAPI, "/")); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(quietLogs.String(), "expires soon") {
		t.Fatalf("warned with a 1 h window for a certificate valid 72 h")
	}
}

func TestConnectProxy(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(okHandler))
	proxyURL, tunnels := testutil.ConnectProxy(t)
	for _, tt := range []struct {
		name    string
		pin     string
		wantErr bool
	}{
		{"right pin", p.root.SPKIPin(), false},
		{"wrong pin", fakePin('C'), true},
	} {
		cfg := testConfig(t)
		cfg.Proxy = http.ProxyURL(proxyURL)
		cfg.Retry.MaxRetries = -1
		cfg.Pins = []PinSet{{Host: hostAPI, Pins: []string{tt.pin}}}
		// Only the proxy is dialled; the tunnel reaches the server.
		cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != proxyURL.Host {
				return nil, fmt.Errorf("dialled %s directly, want only the proxy", addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
		before := tunnels.Load()
		body, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/"))
		if tt.wantErr != errors.Is(err, ErrPinMismatch) || (!tt.wantErr && body != "ok") {
			t.Fatalf("%s: got (%q, %v), want pin mismatch %v", tt.name, body, err, tt.wantErr)
		}
		if tunnels.Load() != before+1 {
			t.Fatalf("%s: the proxy opened %d tunnels, want 1", tt.name, tunnels.Load()-before)
		}
	}
}

func TestPinParsing(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	fp := p.leaf.Fingerprint()
	for _, tt := range []struct {
		in   string
		kind pinKind
	}{
		{p.leaf.SPKIPin(), pinSPKI},
		{fp, pinCert},
		{strings.ToLower(fp), pinCert},
		{strings.ReplaceAll(fp, ":", ""), pinCert},
	} {
		got, err := parsePin(tt.in)
		if err != nil || got.kind != tt.kind {
			t.Fatalf("parsePin(%q) = (%v, %v), want kind %v", tt.in, got.kind, err, tt.kind)
		}
	}
	if fp != p.leaf.Fingerprint() || SPKIPin(p.leaf.Cert) != p.leaf.SPKIPin() {
		t.Fatalf("Fingerprint/SPKIPin disagree with the test PKI's independent computation")
	}
}

func TestHostPatterns(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		pattern, host string
		want          bool
	}{
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "API.Example.COM.", true},
		{"API.EXAMPLE.COM.", "api.example.com", true},
		{"api.example.com", "x.api.example.com", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", false},
		{"*.example.com", "example.com", false},
		{"*.example.com", "aexample.com", false},
		{"**.example.com", "example.com", true},
		{"**.example.com", "a.b.example.com", true},
		{"**.example.com", "badexample.com", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"::1", "[::1]", true},
		{"bücher.example", "xn--bcher-kva.example", true},
	} {
		p, err := parseHostPattern(tt.pattern)
		if err != nil {
			t.Fatalf("parseHostPattern(%q): %v", tt.pattern, err)
		}
		host, err := normalizeHost(tt.host)
		if err != nil {
			t.Fatalf("normalizeHost(%q): %v", tt.host, err)
		}
		if got := p.match(host); got != tt.want {
			t.Fatalf("%q matches %q: got %v, want %v", tt.pattern, tt.host, got, tt.want)
		}
	}
}
