package securehttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config configures a client. The zero value is usable: system roots, no
// pins, no tokens, default retries, proxies from the environment and no logs.
// NewClient and NewTransport never modify a Config, and clients made from the
// same Config share no state.
type Config struct {
	// RootCAs are the roots that chains must lead to. Nil means the system
	// roots. A private CA is trusted by adding it here; there is no way to
	// turn verification off.
	RootCAs *x509.CertPool

	// Pins restricts which certificates hosts may present. Hosts without a
	// PinSet get full validation only.
	Pins []PinSet

	// GetClientCertificate returns the client certificate (mTLS) when a
	// server asks for one: typically the method of a *ClientCert from
	// LoadClientCert, which follows the certificate's files as they rotate.
	// Nil means no client certificate. With Bearer.ClientCredentials and
	// neither Key nor ClientSecret, token requests authenticate with it
	// (tls_client_auth, RFC 8705).
	GetClientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)

	// Bearer attaches tokens to requests for its hosts. Nil means no
	// Authorization header is added.
	Bearer *Bearer

	// Retry configures retries. The zero value means the defaults.
	Retry RetryPolicy

	// Proxy selects a proxy for each request. Nil means
	// http.ProxyFromEnvironment. An http:// proxy is allowed: the client
	// tunnels with CONNECT, so TLS and pins hold end to end.
	Proxy func(*http.Request) (*url.URL, error)

	// Logger receives warnings (expiring certificates, pin reports, failed
	// refreshes) and debug events (retries, refreshes). Nil means silent.
	// No token, query string or URL userinfo is ever logged.
	Logger *slog.Logger

	// OnPinFailure, if set, is called for every pin mismatch, enforced or
	// report-only, from the goroutine doing the handshake. It must not block.
	OnPinFailure func(*PinError)

	// Hooks receives the client's events (attempts, retries, budget,
	// refreshes, token requests, handshakes, pin failures, expiring
	// certificates) for metrics and traces; see otelsecurehttp for
	// OpenTelemetry. Nil means none, at no cost. NewTransport copies the
	// struct, so changing it afterwards has no effect.
	Hooks *Hooks

	// RequireOCSPStaple refuses servers that do not staple a valid OCSP
	// response. A leaf carrying the TLS Feature status_request extension
	// (must-staple) requires one whatever this says.
	RequireOCSPStaple bool

	// ExpiryWarning is how long before a certificate of a verified chain
	// expires that a warning is logged, once per certificate. Zero means
	// 14 days; a negative value turns the warning off.
	ExpiryWarning time.Duration

	// DialContext dials TCP connections, to servers and to proxies. Nil
	// means a net.Dialer with DialTimeout and a 30 s keep-alive.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// DialTimeout bounds each TCP dial. Zero means 30 s.
	DialTimeout time.Duration

	// TLSHandshakeTimeout bounds each TLS handshake. Zero means 10 s.
	TLSHandshakeTimeout time.Duration

	// ResponseHeaderTimeout bounds the wait for response headers after the
	// request is written. Zero means no limit beyond the request's context.
	ResponseHeaderTimeout time.Duration

	// IdleConnTimeout closes connections idle this long. Zero means 90 s.
	IdleConnTimeout time.Duration

	// MaxIdleConnsPerHost is how many idle connections are kept per host.
	// Zero means 64, enough for 64 concurrent requests to one host to
	// reuse their connections instead of handshaking again.
	MaxIdleConnsPerHost int

	// AllowHosts, if not empty, lists the only hosts the client contacts: a
	// request or a redirect hop to any other host fails with
	// ErrHostNotAllowed before any connection is made. Entries follow
	// PinSet.Host's rules ("api.example.com", "*.example.com",
	// "**.example.com", or an IP literal); ports are not restricted. The
	// proxy that Proxy chooses is contacted whatever this says. Empty means
	// any host.
	AllowHosts []string

	// BlockPrivateNetworks refuses, with ErrBlockedAddress, to connect to an
	// address that is not public unicast: loopback, private, link-local
	// (cloud metadata included), shared, documentation, benchmarking,
	// reserved, multicast and broadcast, and every other range of the IANA
	// special-purpose registries. The address checked is the one dialled,
	// after DNS resolution, so a name that resolves or rebinds to such an
	// address is refused; a name with public addresses too is connected to
	// those only. With DialContext set, the connection it returns is checked
	// by its remote address before any byte is sent, and one without an IP
	// address is refused. A host written as a blocked IP literal is refused
	// before anything is sent, to a proxy too. The proxy that Proxy chooses
	// for a request is dialled unchecked for that request, since the user
	// chose it; a request that Proxy sends direct is checked, even to the
	// proxy's own address. The proxy resolves the names it is asked to
	// tunnel to, so it must enforce this policy itself for them. False
	// means no check.
	BlockPrivateNetworks bool

	// Timeout is the returned client's http.Client.Timeout. Zero means none:
	// bound requests with their context instead.
	Timeout time.Duration
}

// Errors returned by the client, to be tested with errors.Is.
var (
	// ErrInsecureScheme refuses a request, or a redirect hop, that is not
	// https. Nothing is sent and no connection is made.
	ErrInsecureScheme = errors.New("securehttp: refusing a plain-HTTP request: only https is allowed")

	// ErrPinMismatch is matched by every *PinError.
	ErrPinMismatch = errors.New("securehttp: certificate pin mismatch")

	// ErrWeakKey refuses a verified chain that holds an RSA key under 2048
	// bits or an elliptic-curve key under 256 bits.
	ErrWeakKey = errors.New("securehttp: weak key in the verified chain")

	// ErrRevoked refuses a certificate whose stapled OCSP response says it is
	// revoked.
	ErrRevoked = errors.New("securehttp: certificate revoked (stapled OCSP response)")

	// ErrOCSPStaple refuses a stapled OCSP response that does not verify, is
	// out of date, or is missing when one is required.
	ErrOCSPStaple = errors.New("securehttp: invalid or missing stapled OCSP response")

	// ErrHostNotAllowed refuses a request, or a redirect hop, to a host
	// outside Config.AllowHosts. No connection is made.
	ErrHostNotAllowed = errors.New("securehttp: host not in Config.AllowHosts")

	// ErrBlockedAddress refuses a connection to an address that is not
	// public unicast, under Config.BlockPrivateNetworks. The error names
	// the host and the address.
	ErrBlockedAddress = errors.New("securehttp: refusing to connect to a non-public address")

	// ErrNoToken is returned, wrapped in a *RefreshError, when a request for
	// a Bearer host cannot get a valid token. Nothing is sent.
	ErrNoToken = errors.New("securehttp: no valid bearer token")
)

// ConfigError reports an invalid Config entry. NewClient and NewTransport
// return it; the Config is left as it was.
//
// Its message shows a URL, or anything that looks like one, without its
// userinfo, query and fragment, which may hold a password or a key: Value
// keeps the entry as configured, and the message hides those parts from
// Err's text as well.
type ConfigError struct {
	Field string // the offending entry, as "Pins[1].Pins[0]"
	Value string // the entry's value, when it is not a secret
	Err   error  // what is wrong with it
}

func (e *ConfigError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("securehttp: invalid config %s: %v", e.Field, e.Err)
	}
	shown, hidden := hideURLSecrets(e.Value)
	cause := fmt.Sprint(e.Err)
	for _, h := range hidden {
		// Shorter parts would mangle the words of the message, and hold
		// no secret worth the name.
		if len(h) >= minHiddenPart {
			q := strconv.Quote(h)
			cause = strings.ReplaceAll(strings.ReplaceAll(cause, h, "…"), q[1:len(q)-1], "…")
		}
	}
	if len(hidden) > 0 {
		return fmt.Sprintf("securehttp: invalid config %s (%q, shown without userinfo, query or fragment): %s", e.Field, shown, cause)
	}
	return fmt.Sprintf("securehttp: invalid config %s (%q): %s", e.Field, shown, cause)
}

// minHiddenPart is the shortest hidden part of a URL that is also hidden
// from the text of ConfigError.Err.
const minHiddenPart = 4

// shownURL is v as hideURLSecrets shows it.
func shownURL(v string) string {
	shown, _ := hideURLSecrets(v)
	return shown
}

// hideURLSecrets returns v without the userinfo, query and fragment it
// would have as a URL, and those parts, longest first. It does not need v
// to parse: a URL that fails to parse is quoted in errors too.
func hideURLSecrets(v string) (shown string, hidden []string) {
	prefix, rest := "", v
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		start := 0
		if i := strings.Index(rest[:at], "://"); i >= 0 {
			start = i + len("://")
		}
		prefix, hidden = rest[:start], append(hidden, rest[start:at])
		if _, password, ok := strings.Cut(rest[start:at], ":"); ok {
			hidden = append(hidden, password)
		}
		rest = rest[at+1:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		hidden = append(hidden, rest[i+1:])
		if query, fragment, ok := strings.Cut(rest[i+1:], "#"); ok {
			hidden = append(hidden, query, fragment)
		}
		rest = rest[:i]
	}
	hidden = slices.DeleteFunc(hidden, func(h string) bool { return h == "" })
	slices.SortFunc(hidden, func(a, b string) int { return len(b) - len(a) })
	return prefix + rest, hidden
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Format prints the message for every verb, %#v included, so that no verb
// reaches the parts of Value that the message hides. It has a value
// receiver, so that a ConfigError held by value prints no more.
func (e ConfigError) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, e.Error()) }

// MarshalJSON encodes the field, the value and the message as the message
// shows them.
func (e ConfigError) MarshalJSON() ([]byte, error) {
	shown := ""
	if e.Value != "" {
		shown, _ = hideURLSecrets(e.Value)
	}
	return json.Marshal(struct {
		Field string `json:"field"`
		Value string `json:"value,omitempty"`
		Error string `json:"error"`
	}{e.Field, shown, e.Error()})
}

// NewClient returns an *http.Client that uses a new Transport made from cfg.
// It refuses plain HTTP on the first request and on every redirect hop, so a
// redirect to http:// is an error rather than a silent downgrade. It sets no
// cookie jar: see NewCookieJar. The caller may set CheckRedirect and Jar on
// the returned client as with any *http.Client.
func NewClient(cfg Config) (*http.Client, error) {
	t, err := NewTransport(cfg)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: t, Timeout: cfg.Timeout}, nil
}
