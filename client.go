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
// pins or tokens, default retries, warnings to slog.Default(). Clients made from one Config share
// nothing, and NewClient never modifies it.
type Config struct {
	// RootCAs are the roots chains must lead to; nil means the system's.
	// A private CA is trusted by adding it here: nothing turns checks off.
	RootCAs *x509.CertPool

	// Pins restricts the certificates hosts may present.
	Pins []PinSet

	// GetClientCertificate returns the client certificate (mTLS), as a
	// *ClientCert's method does. Nil means none.
	GetClientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)

	// Bearer attaches tokens to requests for its hosts. Nil means none.
	Bearer *Bearer

	// Signatures signs requests (RFC 9421) and verifies responses. Nil
	// means none.
	Signatures *MessageSignatures

	// Retry configures retries. The zero value means the defaults.
	Retry RetryPolicy

	// Proxy selects a proxy (tunnelled through with CONNECT) for each
	// request. Nil means http.ProxyFromEnvironment.
	Proxy func(*http.Request) (*url.URL, error)

	// Logger receives warnings and debug events, never a secret. Nil means
	// Warn and Error records go to slog.Default(); a logger with
	// slog.DiscardHandler silences everything.
	Logger *slog.Logger

	// Hooks receives events for metrics and traces. Nil means none.
	Hooks *Hooks

	// RequirePins refuses, with ErrNotPinned and before connecting, a
	// host that no enforced PinSet in force covers: token endpoints and
	// redirect hops included.
	RequirePins bool

	// RequireOCSPStaple refuses servers without a valid OCSP staple, as a
	// must-staple certificate always does.
	RequireOCSPStaple bool

	// ExpiryWarning is how long before a certificate expires that it is
	// warned of. Zero means 14 days; negative means never.
	ExpiryWarning time.Duration

	// DialContext dials servers and proxies. Nil means a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// Timeouts of a dial (zero: 30 s), a TLS handshake (10 s), the wait for
	// response headers (none) and an idle connection (90 s).
	DialTimeout, TLSHandshakeTimeout, ResponseHeaderTimeout, IdleConnTimeout time.Duration

	// MaxIdleConnsPerHost is the idle connections kept per host; zero: 64.
	MaxIdleConnsPerHost int

	// AllowHosts, if not empty, lists the only hosts (PinSet.Host
	// patterns, any port) the client contacts, redirects included.
	AllowHosts []string

	// BlockPrivateNetworks refuses every address that is not public
	// unicast (loopback, private, link-local and metadata, and the other
	// IANA special-purpose ranges), judged on the address dialled, after
	// DNS. A proxy must enforce it for the names it resolves.
	BlockPrivateNetworks bool
}

// Errors returned by the client, to be tested with errors.Is.
var (
	ErrInsecureScheme    = errors.New("securehttp: refusing a plain-HTTP request: only https is allowed") // a request or redirect hop that is not https: nothing sent
	ErrHostNotAllowed    = errors.New("securehttp: host not in Config.AllowHosts")                        // a host outside Config.AllowHosts: nothing sent
	ErrBlockedAddress    = errors.New("securehttp: refusing to connect to a non-public address")          // an address that is not public unicast, under BlockPrivateNetworks
	ErrPinMismatch       = errors.New("securehttp: certificate pin mismatch")                             // matched by every *PinError
	ErrNotPinned         = errors.New("securehttp: no PinSet covers the host")                            // under Config.RequirePins: nothing sent
	ErrWeakKey           = errors.New("securehttp: weak key in the verified chain")                       // an RSA key under 2048 bits or an EC key under 256 in the chain
	ErrRevoked           = errors.New("securehttp: certificate revoked (stapled OCSP response)")          // the stapled OCSP response revokes the certificate
	ErrOCSPStaple        = errors.New("securehttp: invalid or missing stapled OCSP response")             // a staple that does not verify, is stale, or is missing when required
	ErrNoToken           = errors.New("securehttp: no valid bearer token")                                // matched by every *RefreshError: no token, nothing sent
	ErrIssuerMismatch    = errors.New("securehttp: authorization server metadata names another issuer")   // metadata naming another issuer (RFC 8414 section 3.3)
	ErrInsecureTokenFile = errors.New("securehttp: insecure token file")                                  // a token file others may read or own, a link, or not a regular file
	ErrClientCert        = errors.New("securehttp: unusable client certificate")                          // matched by every error of LoadClientCert
	ErrStaleLease        = errors.New("securehttp: a newer token was saved since the lease was taken")    // a save refused because the store holds a newer token
	ErrResponseSignature = errors.New("securehttp: response signature missing or invalid")                // a response of a signing host that fails ResponseSignatures; its body unread
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

// Format prints the message, with a URL's secrets hidden, whatever the verb.
func (e ConfigError) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, e.Error()) }

// MarshalJSON encodes the field, the value and the message as Error shows
// them.
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

// NewClient returns an ordinary *http.Client whose Transport, made from cfg,
// applies the package's checks to every request and redirect hop; an
// invalid entry of cfg is a *ConfigError. Set Timeout, CheckRedirect or Jar
// on it as on any client; its Transport is safe for concurrent use and
// never modifies the requests it is given.
func NewClient(cfg Config) (*http.Client, error) {
	t, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: t}, nil
}

// Redacted returns err as it prints with the URL that http.Client quotes
// in its *url.Error shown without userinfo, query and fragment, which may
// hold an API key or a signature, wherever that *url.Error is in err (an
// error wrapping it, or joining it with others); errors.Is and errors.As
// see err as before. Print a client's errors through it:
// log.Print(Redacted(err)).
func Redacted(err error) error {
	if err == nil {
		return nil
	}
	return redactedError{err}
}

// redactedError is Redacted's error.
type redactedError struct{ err error }

func (e redactedError) Error() string {
	msg := e.err.Error()
	for _, inner := range errorTree(e.err) {
		ue, ok := inner.(*url.Error)
		if !ok {
			continue
		}
		// *url.Error quotes its URL with %q; an error wrapping it repeats
		// that text.
		shown, hidden := hideURLSecrets(ue.URL)
		if len(hidden) > 0 {
			msg = strings.ReplaceAll(msg, strconv.Quote(ue.URL), strconv.Quote(shown))
			msg = strings.ReplaceAll(msg, ue.URL, shown)
		}
	}
	return msg
}

func (e redactedError) Unwrap() error { return e.err }
