package securehttp

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// PinSet pins the certificates that hosts matching Host may present.
//
// A connection to a matching host passes when any certificate of any verified
// chain (leaf, intermediate or root, including a root the server did not send)
// matches any pin of any enforced PinSet whose Host matches. Pins are never
// compared with certificates the server merely sent: only with chains that
// crypto/x509 built and verified against the configured roots.
type PinSet struct {
	// Host is the host name the pins apply to, without a port:
	// "api.example.com" matches that name only, "*.example.com" matches
	// exactly one more label ("a.example.com", not "a.b.example.com" nor
	// "example.com"), and "**.example.com" matches the name itself and any
	// name below it. Matching ignores case and a trailing dot. An IP literal
	// matches that address.
	Host string

	// Pins lists the accepted certificates. Each entry is either
	// "sha256/<base64>", the standard base64 of the SHA-256 digest of a
	// SubjectPublicKeyInfo (RFC 7469, as OkHttp writes it), or the SHA-256
	// fingerprint of a whole certificate in hex, colons optional, as
	// `openssl x509 -fingerprint -sha256` prints it. At least one is required;
	// configure a backup pin too, so that a key rotation does not lock
	// clients out.
	Pins []string

	// Expires ends enforcement: after it the set is ignored and a warning is
	// logged once. The zero value means never.
	Expires time.Time

	// ReportOnly makes a mismatch a report (Config.Logger and
	// Config.OnPinFailure) instead of a refused connection.
	ReportOnly bool
}

// PinError reports a verified chain that matched none of the configured pins.
// It matches ErrPinMismatch with errors.Is.
type PinError struct {
	// Host is the server name the client dialled.
	Host string
	// Pins holds the "sha256/<base64>" SPKI pins of every certificate in the
	// verified chains, leaf first, so that an operator can compare them with
	// the configuration.
	Pins []string
	// ReportOnly is true when only report-only sets failed and the
	// connection went ahead.
	ReportOnly bool
}

func (e *PinError) Error() string {
	return fmt.Sprintf("securehttp: certificate pin mismatch for %s: the verified chain has %s",
		e.Host, strings.Join(e.Pins, ", "))
}

// Is reports whether target is ErrPinMismatch.
func (e *PinError) Is(target error) bool { return target == ErrPinMismatch }

type pinKind uint8

const (
	pinSPKI pinKind = iota + 1
	pinCert
)

type pin struct {
	kind   pinKind
	digest [sha256.Size]byte
}

// parsePin reads one pin in either accepted form.
func parsePin(s string) (pin, error) {
	if alg, b64, ok := strings.Cut(s, "/"); ok {
		if alg != "sha256" {
			return pin{}, fmt.Errorf("unsupported pin algorithm %q: only sha256 is accepted", alg)
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil {
			return pin{}, fmt.Errorf("pin is not valid base64: %w", err)
		}
		if len(raw) != sha256.Size {
			return pin{}, fmt.Errorf("pin digest has %d bytes, want %d", len(raw), sha256.Size)
		}
		p := pin{kind: pinSPKI}
		copy(p.digest[:], raw)
		return p, nil
	}
	h := s
	if strings.Contains(h, ":") {
		// Colons, when present, must separate every byte, as openssl prints them.
		parts := strings.Split(h, ":")
		for _, part := range parts {
			if len(part) != 2 {
				return pin{}, errors.New("certificate fingerprint must be hex pairs separated by colons, or plain hex")
			}
		}
		h = strings.Join(parts, "")
	}
	if len(h) != 2*sha256.Size {
		return pin{}, fmt.Errorf("certificate fingerprint has %d hex digits, want %d (a SHA-256 fingerprint)", len(h), 2*sha256.Size)
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return pin{}, fmt.Errorf("certificate fingerprint is not valid hex: %w", err)
	}
	p := pin{kind: pinCert}
	copy(p.digest[:], raw)
	return p, nil
}

// SPKIPin returns the "sha256/<base64>" pin of cert's public key.
func SPKIPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
}

// Fingerprint returns the SHA-256 fingerprint of cert in the form openssl
// prints: upper-case hex pairs separated by colons.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	var b strings.Builder
	b.Grow(3*len(sum) - 1)
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// hostPattern is a parsed PinSet.Host or Bearer.Hosts entry.
type hostPattern struct {
	base string // normalised name after any wildcard label
	dot  string // "." + base, precomputed for suffix tests
	wild int    // 0: exact, 1: "*." one label, 2: "**." the name and any depth
}

// normalizeHost lower-cases name, drops one trailing dot and converts an
// internationalised name to its ASCII form, as net/http does when it dials,
// so that patterns and request hosts compare in the form TLS uses.
func normalizeHost(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", errors.New("empty host")
	}
	if isLowerASCII(name) {
		return name, nil // the common case, without allocating
	}
	if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
		name = name[1 : len(name)-1]
	}
	if ip := net.ParseIP(name); ip != nil {
		return ip.String(), nil
	}
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			ascii, err := idna.Lookup.ToASCII(name)
			if err != nil {
				return "", fmt.Errorf("invalid host name %q: %w", name, err)
			}
			return strings.ToLower(ascii), nil
		}
	}
	return strings.ToLower(name), nil
}

// isLowerASCII reports whether s holds only lower-case letters, digits,
// dots, hyphens and underscores, and is not an IPv6 literal.
func isLowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func parseHostPattern(s string) (hostPattern, error) {
	var p hostPattern
	switch {
	case strings.HasPrefix(s, "**."):
		p.wild, s = 2, s[3:]
	case strings.HasPrefix(s, "*."):
		p.wild, s = 1, s[2:]
	}
	if strings.Contains(s, "*") {
		return p, errors.New(`a wildcard may only be the whole first label, as "*." or "**."`)
	}
	if strings.ContainsAny(s, ":/ ") && net.ParseIP(strings.Trim(s, "[]")) == nil {
		return p, fmt.Errorf("host %q must be a bare host name, without scheme, port or path", s)
	}
	base, err := normalizeHost(s)
	if err != nil {
		return p, err
	}
	if p.wild != 0 && net.ParseIP(base) != nil {
		return p, errors.New("a wildcard cannot apply to an IP address")
	}
	p.base, p.dot = base, "."+base
	return p, nil
}

// match reports whether host, already normalised, matches the pattern.
func (p hostPattern) match(host string) bool {
	switch p.wild {
	case 0:
		return host == p.base
	case 1:
		label, rest, ok := strings.Cut(host, ".")
		return ok && label != "" && rest == p.base
	default:
		return host == p.base || (strings.HasSuffix(host, p.dot) && len(host) > len(p.dot))
	}
}

func (p hostPattern) String() string {
	return [...]string{"", "*.", "**."}[p.wild] + p.base
}

// pinSet is a PinSet after validation.
type pinSet struct {
	host       hostPattern
	pins       []pin
	expires    time.Time
	reportOnly bool
	warned     atomic.Bool // the expiry warning has been logged
}

func compilePinSets(sets []PinSet) ([]*pinSet, error) {
	out := make([]*pinSet, 0, len(sets))
	for i, s := range sets {
		field := fmt.Sprintf("Pins[%d]", i)
		if s.Host == "" {
			return nil, &ConfigError{Field: field + ".Host", Err: errors.New("empty host")}
		}
		hp, err := parseHostPattern(s.Host)
		if err != nil {
			return nil, &ConfigError{Field: field + ".Host", Value: s.Host, Err: err}
		}
		if len(s.Pins) == 0 {
			return nil, &ConfigError{Field: field + ".Pins", Value: s.Host, Err: errors.New("no pins: a PinSet needs at least one")}
		}
		ps := &pinSet{host: hp, expires: s.Expires, reportOnly: s.ReportOnly}
		for j, raw := range s.Pins {
			p, err := parsePin(strings.TrimSpace(raw))
			if err != nil {
				return nil, &ConfigError{Field: fmt.Sprintf("%s.Pins[%d]", field, j), Value: raw, Err: err}
			}
			ps.pins = append(ps.pins, p)
		}
		out = append(out, ps)
	}
	return out, nil
}

// chainDigests holds the two digests of each certificate of the verified
// chains, computed once per handshake.
type chainDigests struct {
	spki, cert [][sha256.Size]byte
	certs      []*x509.Certificate
}

func digestChains(chains [][]*x509.Certificate) chainDigests {
	var d chainDigests
	seen := make(map[*x509.Certificate]bool)
	for _, chain := range chains {
		for _, c := range chain {
			if seen[c] {
				continue
			}
			seen[c] = true
			d.certs = append(d.certs, c)
			d.spki = append(d.spki, sha256.Sum256(c.RawSubjectPublicKeyInfo))
			d.cert = append(d.cert, sha256.Sum256(c.Raw))
		}
	}
	return d
}

func (d *chainDigests) matches(pins []pin) bool {
	for _, p := range pins {
		list := d.spki
		if p.kind == pinCert {
			list = d.cert
		}
		for _, got := range list {
			if got == p.digest {
				return true
			}
		}
	}
	return false
}

func (d *chainDigests) spkiPins() []string {
	out := make([]string, len(d.spki))
	for i, s := range d.spki {
		out[i] = "sha256/" + base64.StdEncoding.EncodeToString(s[:])
	}
	return out
}
