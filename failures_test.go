package securehttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testutil"
)

// TestErrorClass checks that failures are named by their type, whatever
// their text says.
func TestErrorClass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"pin mismatch", &PinError{Host: "api.test"}, "pin_mismatch"},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "connection_refused"},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), "connection_reset"},
		{"closed", io.ErrUnexpectedEOF, "connection_closed"},
		{"canceled", context.Canceled, "canceled"},
		{"deadline", fmt.Errorf("get: %w", context.DeadlineExceeded), "timeout"},
		{"token", &RefreshError{Err: errors.New("timeout")}, "token_unavailable"},
		{"oauth", &OAuthError{StatusCode: 400, Code: "invalid_client"}, "oauth_error"},
		{"scheme", fmt.Errorf("%w (scheme %q)", ErrInsecureScheme, "http"), "insecure_scheme"},
		{"host", ErrHostNotAllowed, "host_not_allowed"},
		{"dns", &net.DNSError{Err: "no such host", Name: "x.test", IsNotFound: true}, "dns"},
		{"text says timeout", errors.New("i/o timeout https://api.test/?key=QSECRET"), "error"},
		{"no system roots", x509.SystemRootsError{}, "certificate"},
		{"server speaks HTTP", fmt.Errorf("get: %w", http.ErrSchemeMismatch), "tls"},
		{"alert from the server", &net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}, "tls"},
		{"HTTP/2 stream reset", h2StreamError{StreamID: 1, Code: h2RefusedStream}, "stream_reset"},
		{"not pinned", &notPinnedError{addr: "api.test:443"}, "not_pinned"},
		{"answered, body cut", &answeredError{status: 200, err: io.ErrUnexpectedEOF}, "response_body"},
		{"answered, body reset", &answeredError{status: 200, err: h2StreamError{StreamID: 1, Code: h2Internal}}, "response_body"},
		{"answered, body past the deadline", &answeredError{status: 200, err: context.DeadlineExceeded}, "timeout"},
		{"answered, canceled", &answeredError{status: 200, err: context.Canceled}, "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := classify(tt.err).class; got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if got := ErrorClass(tt.err); got != tt.want {
				t.Errorf("ErrorClass: got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTLSErrorExplained: an unknown authority names the host and the way
// to trust a private CA; errors.As still finds the crypto/tls and x509
// types.
func TestTLSErrorExplained(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(okHandler))
	cfg := testConfig(t)
	cfg.RootCAs = x509.NewCertPool() // trusts nothing
	_, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/"))
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &cve) || !errors.As(err, &uae) {
		t.Fatalf("got %v, want a *tls.CertificateVerificationError wrapping x509.UnknownAuthorityError", err)
	}
	// host:port, so that with the API and the authorization server on one
	// address the user can tell which failed.
	addr := strings.TrimPrefix(testutil.HostURL(srv, hostAPI, ""), "https://")
	for _, want := range []string{"TLS verification of " + addr + " failed", "Config.RootCAs", "--cacert"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if n := strings.Count(err.Error(), "securehttp:"); n != 1 {
		t.Errorf("got %d \"securehttp:\" prefixes in %q, want 1", n, err)
	}

	// A name mismatch names the host but does not point at the roots.
	_, err = get(t, newTestTransport(t, testConfig(t)), testutil.HostURL(srv, "wrong.test", "/"))
	var hne x509.HostnameError
	if !errors.As(err, &hne) || !strings.Contains(err.Error(), "wrong.test") || strings.Contains(err.Error(), "RootCAs") {
		t.Errorf("got %v, want an x509.HostnameError naming wrong.test without the RootCAs hint", err)
	}
}

// TestPinHintNamesTheTokenEndpointOnARetry: a retry whose token refresh
// meets a pin mismatch at the token endpoint says so, and points at the
// token endpoint's pins, not at the API host's.
func TestPinHintNamesTheTokenEndpointOnARetry(t *testing.T) {
	t.Parallel()
	base := time.Now().Truncate(time.Second)
	clock := testutil.NewClock(base)
	// The first attempt outlives the token, so that the retry refreshes.
	srv := rtFaultServer(t, false, rtStep{status: 503, do: func() { clock.Add(2 * time.Hour) }}, rtStep{})
	cfg := testConfig(t)
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Pins = []PinSet{{Host: hostOther, Pins: []string{fakePin('A'), fakePin('B')}}}
	cfg.Bearer = &Bearer{
		Store: NewMemoryStore(Token{Value: "first", Expiry: base.Add(time.Hour)}),
		Hosts: []string{hostAPI},
		ClientCredentials: &ClientCredentials{TokenURL: testutil.HostURL(srv.Server, hostOther, "/token"),
			ClientID: "client", ClientSecret: "secret"},
	}
	c, tr := rtNewClient(t, cfg)
	tr.now = clock.Now
	_, _, err := rtDo(t, c, rtRequest(t, t.Context(), http.MethodGet, srv.url("/"), nil))
	if !errors.Is(err, ErrPinMismatch) {
		t.Fatalf("got %v, want ErrPinMismatch", err)
	}
	api := strings.TrimPrefix(testutil.HostURL(srv.Server, hostAPI, ""), "https://")
	tokenEndpoint := strings.TrimPrefix(testutil.HostURL(srv.Server, hostOther, ""), "https://")
	msg := err.Error()
	if !strings.Contains(msg, "https://"+tokenEndpoint+"/\" prints the chain's pins") {
		t.Errorf("got %q, want the way to the pins of the token endpoint %s", msg, tokenEndpoint)
	}
	if strings.Contains(msg, "(at "+api+")") || strings.Contains(msg, "https://"+api+"/\" prints") {
		t.Errorf("got %q, want no pin mismatch said to be at the API host %s", msg, api)
	}
}
