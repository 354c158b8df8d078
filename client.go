package securehttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
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
// pins, no tokens, default retries, proxies from the environment and no
// logs. NewClient never modifies a Config, and clients made from the same
// Config share no state.
type Config struct {
	// RootCAs are the roots that chains must lead to. Nil means the system
	// roots. A private CA is trusted by adding it here; there is no way to
	// turn verification off.
	RootCAs *x509.CertPool

	// Pins restricts which certificates hosts may present. Hosts without a
	// PinSet get full validation only.
	Pins []PinSet

	// GetClientCertificate returns the client certificate (mTLS), typically
	// the method of a *ClientCert, which follows its files as they rotate.
	// Nil means none. With Bearer.ClientCredentials and neither Key nor
	// ClientSecret, token requests authenticate with it (tls_client_auth).
	GetClientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)

	// Bearer attaches tokens to requests for its hosts. Nil means none.
	Bearer *Bearer

	// Retry configures retries. The zero value means the defaults.
	Retry RetryPolicy

	// Proxy selects a proxy for each request. Nil means
	// http.ProxyFromEnvironment. An http:// proxy is tunnelled through
	// with CONNECT, so TLS and pins hold end to end.
	Proxy func(*http.Request) (*url.URL, error)

	// Logger receives warnings (expiring certificates, pin mismatches,
	// failed refreshes) and debug events. Nil means none. No token, query
	// string or URL userinfo is ever logged.
	Logger *slog.Logger

	// Hooks receives events for metrics and traces; see otelsecurehttp.
	// Nil means none, at no cost. The struct is copied.
	Hooks *Hooks

	// RequireOCSPStaple refuses servers that do not staple a valid OCSP
	// response. A must-staple leaf requires one whatever this says.
	RequireOCSPStaple bool

	// ExpiryWarning is how long before a verified certificate expires that
	// a warning is logged, once. Zero means 14 days; negative means never.
	ExpiryWarning time.Duration

	// DialContext dials TCP connections, to servers and proxies. Nil means
	// a net.Dialer with DialTimeout.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// Timeouts of each dial (zero: 30 s), TLS handshake (10 s), wait for
	// response headers (none beyond the request's context) and idle
	// connection (90 s).
	DialTimeout, TLSHandshakeTimeout, ResponseHeaderTimeout, IdleConnTimeout time.Duration

	// MaxIdleConnsPerHost is how many idle connections are kept per host.
	// Zero means 64.
	MaxIdleConnsPerHost int

	// AllowHosts, if not empty, lists the only hosts the client contacts,
	// as PinSet.Host patterns; ports are not restricted. Any other host,
	// first request or redirect hop, fails with ErrHostNotAllowed before
	// a connection is made. The proxy Proxy chooses is contacted anyway.
	AllowHosts []string

	// BlockPrivateNetworks refuses, with ErrBlockedAddress, to connect to
	// any address that is not public unicast (loopback, private,
	// link-local and cloud metadata, and every other IANA special-purpose
	// range), judged on the address dialled after DNS resolution, so that
	// a name that resolves or rebinds to one is refused. The proxy Proxy
	// chooses is dialled unchecked for the requests it proxies; it must
	// enforce the policy for the names it resolves.
	BlockPrivateNetworks bool
}

// Errors returned by the client, to be tested with errors.Is.
var (
	// ErrInsecureScheme refuses a request, or a redirect hop, that is not
	// https. Nothing is sent.
	ErrInsecureScheme = errors.New("securehttp: refusing a plain-HTTP request: only https is allowed")

	// ErrHostNotAllowed refuses a host outside Config.AllowHosts.
	ErrHostNotAllowed = errors.New("securehttp: host not in Config.AllowHosts")

	// ErrBlockedAddress refuses an address that is not public unicast,
	// under Config.BlockPrivateNetworks.
	ErrBlockedAddress = errors.New("securehttp: refusing to connect to a non-public address")

	// ErrPinMismatch is matched by every *PinError.
	ErrPinMismatch = errors.New("securehttp: certificate pin mismatch")

	// ErrWeakKey refuses a verified chain with an RSA key under 2048 bits
	// or an elliptic-curve key under 256 bits.
	ErrWeakKey = errors.New("securehttp: weak key in the verified chain")

	// ErrRevoked refuses a certificate its stapled OCSP response revokes.
	ErrRevoked = errors.New("securehttp: certificate revoked (stapled OCSP response)")

	// ErrOCSPStaple refuses a stapled OCSP response that does not verify,
	// is out of date, or is missing when one is required.
	ErrOCSPStaple = errors.New("securehttp: invalid or missing stapled OCSP response")

	// ErrNoToken is matched by every *RefreshError: a request for a
	// Bearer host could not get a valid token, and nothing was sent.
	ErrNoToken = errors.New("securehttp: no valid bearer token")

	// ErrIssuerMismatch refuses authorization server metadata whose issuer
	// is not exactly the configured one (RFC 8414 section 3.3).
	ErrIssuerMismatch = errors.New("securehttp: authorization server metadata names another issuer")

	// ErrInsecureTokenFile refuses a token file that others may read or
	// own, a symbolic link, or anything but a regular file.
	ErrInsecureTokenFile = errors.New("securehttp: insecure token file")

	// ErrClientCert is matched by every error of LoadClientCert.
	ErrClientCert = errors.New("securehttp: unusable client certificate")

	// ErrStaleLease refuses to save a token over a newer one: from
	// Lease.Save when another lease has saved since, and from a
	// SharedTokenStore's Save when the stored token expires later.
	ErrStaleLease = errors.New("securehttp: a newer token was saved since the lease was taken")
)

// ConfigError reports an invalid Config entry. Its message shows a URL
// without its userinfo, query and fragment, which may hold a secret.
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

// NewClient returns an *http.Client whose Transport, made from cfg, is
// hardened as the package documentation says, on the first request and on
// every redirect hop. An invalid entry of cfg is a *ConfigError.
//
// The client is an ordinary one: set Timeout, CheckRedirect or Jar (see
// NewCookieJar) as on any other, and use its Transport, an
// http.RoundTripper that is safe for concurrent use and never modifies the
// requests it is given, to wrap it in another client.
func NewClient(cfg Config) (*http.Client, error) {
	t, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: t}, nil
}
