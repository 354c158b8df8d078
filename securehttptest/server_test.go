package securehttptest_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testutil"
	"github.com/securehttp/securehttp/securehttptest"
)

// newClient returns a client made from cfg, whose warnings are discarded
// unless cfg has a Logger.
func newClient(t *testing.T, cfg securehttp.Config) *http.Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return client
}

// get sends a GET to url and reads the answer whole.
func get(client *http.Client, url string) (*http.Response, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp, err
}

// TestServerFailures: each option that makes a server fail makes the
// client return the error it returns for such a server in production.
func TestServerFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  []securehttptest.Option
		check func(err error) bool
	}{
		{"Expired", []securehttptest.Option{securehttptest.Expired()}, invalidCert(x509.Expired)},
		{"NotYetValid", []securehttptest.Option{securehttptest.NotYetValid()}, invalidCert(x509.Expired)},
		{"WrongHost", []securehttptest.Option{securehttptest.WrongHost()}, func(err error) bool {
			var certErr *tls.CertificateVerificationError
			_, ok := errors.AsType[x509.HostnameError](err)
			return errors.As(err, &certErr) && ok
		}},
		{"WeakKey", []securehttptest.Option{securehttptest.WeakKey()}, is(securehttp.ErrWeakKey)},
		{"MisIssued", []securehttptest.Option{securehttptest.MisIssued()}, func(err error) bool {
			pe, ok := errors.AsType[*securehttp.PinError](err)
			return ok && errors.Is(err, securehttp.ErrPinMismatch) && !pe.ReportOnly
		}},
		{"MustStaple without a staple", []securehttptest.Option{securehttptest.MustStaple()}, is(securehttp.ErrOCSPStaple)},
		{"StapleRevoked", []securehttptest.Option{securehttptest.StapleRevoked()}, is(securehttp.ErrRevoked)},
		{"StapleStale", []securehttptest.Option{securehttptest.StapleStale()}, is(securehttp.ErrOCSPStaple)},
		{"RequireClientCert, no certificate", []securehttptest.Option{securehttptest.RequireClientCert()}, func(err error) bool {
			opErr, ok := errors.AsType[*net.OpError](err)
			return ok && opErr.Op == "remote error" && securehttp.ErrorClass(err) == "tls"
		}},
		{"WithCA, another CA than the client's", []securehttptest.Option{securehttptest.WithCA(securehttptest.NewCA(t))}, func(err error) bool {
			var certErr *tls.CertificateVerificationError
			_, ok := errors.AsType[x509.UnknownAuthorityError](err)
			return errors.As(err, &certErr) && ok
		}},
	}
	trusted := securehttptest.NewServer(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := securehttptest.NewServer(t, nil, tt.opts...)
			_, err := get(newClient(t, trusted.Config()), srv.URL)
			if err == nil || !tt.check(err) {
				t.Errorf("got %v (%s), want the error of a %s server", err, securehttp.ErrorClass(err), tt.name)
			}
			if n := len(srv.Requests()); n != 0 {
				t.Errorf("the server received %d requests, want 0", n)
			}
		})
	}
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

// invalidCert matches a chain refused for reason.
func invalidCert(reason x509.InvalidReason) func(error) bool {
	return func(err error) bool {
		var certErr *tls.CertificateVerificationError
		inv, ok := errors.AsType[x509.CertificateInvalidError](err)
		return errors.As(err, &certErr) && ok && inv.Reason == reason
	}
}

// TestServerPasses: what a server does when nothing fails passes the
// client's checks, and the kit's Config warns of nothing.
func TestServerPasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      []securehttptest.Option
		requireOK bool // Config.RequireOCSPStaple
	}{
		{"defaults", nil, false},
		{"StapleOCSP", []securehttptest.Option{securehttptest.StapleOCSP()}, true},
		{"MustStaple and StapleOCSP", []securehttptest.Option{securehttptest.MustStaple(), securehttptest.StapleOCSP()}, false},
		{"Hosts", []securehttptest.Option{securehttptest.Hosts("api.test", "127.0.0.1")}, false},
		{"Validity", []securehttptest.Option{securehttptest.Validity(time.Now().Add(-time.Hour), time.Now().Add(30*24*time.Hour))}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := securehttptest.NewServer(t, nil, tt.opts...)
			logger, logs := testutil.NewLogger()
			cfg := srv.Config()
			cfg.Logger, cfg.RequireOCSPStaple = logger, tt.requireOK
			resp, err := get(newClient(t, cfg), srv.URL+"/x")
			if err != nil {
				t.Fatalf("got %v, want 200", err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Errorf("got status %d, want 200", resp.StatusCode)
			}
			if got := logs.String(); strings.Contains(got, "level=WARN") {
				t.Errorf("got warnings %q, want none", got)
			}
		})
	}
}

// TestConfigReachesEveryServer: a client made from one server's Config
// reaches and trusts every server of the kit, the authorization server and
// those with names of their own included; it pins 127.0.0.1, where they
// all listen, and the names of its own server.
func TestConfigReachesEveryServer(t *testing.T) {
	t.Parallel()
	first := securehttptest.NewServer(t, nil)
	named := securehttptest.NewServer(t, nil, securehttptest.Hosts("api.test"))
	auth := securehttptest.NewAuthServer(t)
	if !strings.HasPrefix(named.URL, "https://api.test:") || named.Host != strings.TrimPrefix(named.URL, "https://") {
		t.Errorf("got URL %q and Host %q, want https://api.test:port and api.test:port", named.URL, named.Host)
	}
	for _, tt := range []struct {
		name        string
		cfg         securehttp.Config
		url         string
		requirePins bool
		want        error
	}{
		{"another server", first.Config(), named.URL, false, nil},
		{"the authorization server", first.Config(), auth.Issuer + "/.well-known/oauth-authorization-server", true, nil},
		{"the server of another name, pins required", first.Config(), named.URL, true, securehttp.ErrNotPinned},
		{"the server of its own name, pins required", named.Config(), named.URL, true, nil},
		{"127.0.0.1 from a named server's Config", named.Config(), first.URL, true, nil},
	} {
		tt.cfg.RequirePins = tt.requirePins
		_, err := get(newClient(t, tt.cfg), tt.url)
		if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	if got := len(named.Requests()) + len(first.Requests()); got != 3 {
		t.Errorf("got %d requests at the two servers, want 3", got)
	}
	if got := auth.Counts().Metadata; got != 1 {
		t.Errorf("got %d metadata requests, want 1", got)
	}
}

// TestServerRecordsRequests: Requests returns what the server received,
// over HTTP/2 and HTTP/1.1, its body included, and the handler reads the
// body whole.
func TestServerRecordsRequests(t *testing.T) {
	t.Parallel()
	var (
		mu          sync.Mutex
		handlerRead []string
	)
	srv := securehttptest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		handlerRead = append(handlerRead, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	post := func(client *http.Client, id, body string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/orders?page=2", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Request-Id", id)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("got status %d, want 202", resp.StatusCode)
		}
	}
	post(newClient(t, srv.Config()), "r-h2", "h2")
	// A client of net/http alone, with a TLS configuration of its own,
	// speaks HTTP/1.1.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA().Pool()}}}
	t.Cleanup(h1.CloseIdleConnections)
	big := strings.Repeat("x", 2<<20) // more than is recorded
	post(h1, "r-h1", big)

	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests, want 2", len(reqs))
	}
	for i, want := range []struct {
		proto int
		body  string
	}{{2, "h2"}, {1, big[:1<<20]}} {
		r := reqs[i]
		body, _ := io.ReadAll(r.Body)
		if r.ProtoMajor != want.proto || r.Method != http.MethodPost || r.URL.Path != "/v1/orders" ||
			r.URL.RawQuery != "page=2" || r.TLS == nil || !bytes.Equal(body, []byte(want.body)) {
			t.Errorf("request %d: got HTTP/%d %s %s (TLS %t) with %d bytes, want HTTP/%d POST /v1/orders?page=2 over TLS with %d bytes",
				i, r.ProtoMajor, r.Method, r.URL, r.TLS != nil, len(body), want.proto, len(want.body))
		}
	}
	if got := reqs[0].Header.Get("X-Request-Id"); got != "r-h2" {
		t.Errorf("got X-Request-Id %q, want r-h2", got)
	}
	mu.Lock()
	if len(handlerRead) != 2 || handlerRead[1] != big {
		t.Errorf("the handler read %d bodies, the last of %d bytes; want 2, the last of %d", len(handlerRead), len(handlerRead[len(handlerRead)-1]), len(big))
	}
	mu.Unlock()
	// Each call returns copies whose bodies read anew.
	body, _ := io.ReadAll(srv.Requests()[0].Body)
	if string(body) != "h2" {
		t.Errorf("a second Requests: got body %q, want h2", body)
	}
}

// TestServerRequiresClientCert: with RequireClientCert, a client with a
// certificate of the server's CA gets through, and the handler sees it.
func TestServerRequiresClientCert(t *testing.T) {
	t.Parallel()
	srv := securehttptest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}), securehttptest.RequireClientCert())
	cert := srv.CA().Issue(t, securehttptest.Hosts("reporting-service"))
	certFile, keyFile := cert.Files(t)
	cc, err := securehttp.LoadClientCert(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadClientCert: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	cfg := srv.Config()
	cfg.GetClientCertificate = cc.GetClientCertificate
	resp, err := newClient(t, cfg).Get(srv.URL)
	if err != nil {
		t.Fatalf("got %v, want 200", err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); string(body) != "reporting-service" {
		t.Errorf("the handler saw %q, want reporting-service", body)
	}
}

// TestServerRotate: after Rotate, new connections get the new certificate
// and no session of the last one resumes; a rotation to an expired
// certificate fails the next connection.
func TestServerRotate(t *testing.T) {
	t.Parallel()
	srv := securehttptest.NewServer(t, nil)
	client := newClient(t, srv.Config())
	seen := func() *x509.Certificate {
		t.Helper()
		resp, err := get(client, srv.URL)
		if err != nil {
			t.Fatalf("got %v, want 200", err)
		}
		return resp.TLS.PeerCertificates[0]
	}
	first := seen()
	srv.Rotate(t)
	client.CloseIdleConnections()
	second := seen()
	if second.Equal(first) || !second.Equal(srv.Certificate().Leaf()) {
		t.Errorf("after Rotate: got certificate %x, want the new one %x", second.SerialNumber, srv.Certificate().Leaf().SerialNumber)
	}
	srv.Rotate(t, securehttptest.Expired())
	client.CloseIdleConnections()
	_, err := get(client, srv.URL)
	if !invalidCert(x509.Expired)(err) {
		t.Errorf("after Rotate(Expired()): got %v, want an expired certificate", err)
	}
}

// TestServerClose: a closed server refuses connections.
func TestServerClose(t *testing.T) {
	t.Parallel()
	srv := securehttptest.NewServer(t, nil)
	srv.Close()
	cfg := srv.Config()
	cfg.Retry.MaxRetries = -1
	_, err := get(newClient(t, cfg), srv.URL)
	if got := securehttp.ErrorClass(err); got != "connection_refused" {
		t.Errorf("got %v (%s), want connection_refused", err, got)
	}
}
