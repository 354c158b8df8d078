package securehttp

// Host patterns, shared by PinSet.Host, Bearer.Hosts and AllowHosts, and
// the normalisation of request hosts that they are matched against.

//go:generate go run ./internal/pslgen/cmd -o suffixbelow_table.go

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// hostPattern is a parsed PinSet.Host or Bearer.Hosts entry.
type hostPattern struct {
	base string // normalised name after any wildcard label
	dot  string // "." + base, precomputed for suffix tests
	wild int    // 0: exact, 1: "*." one label, 2: "**." the name and any depth
	port uint16 // Bearer.Hosts only: 0 for any port
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

// wildcardError reports a wildcard pattern that would cover names anyone
// can register: its base is a public suffix, or one lies below it.
type wildcardError struct {
	base   string
	suffix string // base itself, or a rule of the list below it
	more   int    // how many other rules lie below base
}

func (e *wildcardError) Error() string {
	if e.suffix == e.base {
		return fmt.Sprintf("a wildcard over %q would cover names anyone can register: it is a public suffix; list the hosts, or put the wildcard below a name of your own", e.base)
	}
	more := ""
	if e.more > 0 {
		more = fmt.Sprintf(" and %d more", e.more)
	}
	what := "the public suffix"
	if strings.HasPrefix(e.suffix, "*.") {
		what = "the public suffixes"
	}
	return fmt.Sprintf("a wildcard over %q would cover names anyone can register under %s %q%s; list the hosts, or put the wildcard below a name of your own", e.base, what, e.suffix, more)
}

// checkWildcardBase refuses a wildcard over base when base is a public
// suffix, or when a public suffix lies below it (the private section of
// the list included, as s3.amazonaws.com below amazonaws.com): either way
// the wildcard covers names that strangers register. The special-use names
// of RFC 6761 are exempt: they are never delegated in the public DNS, so
// nobody registers names below them.
func checkWildcardBase(base string) error {
	if ps, _ := publicsuffix.PublicSuffix(base); ps == base && !specialUseName(base) {
		return &wildcardError{base: base, suffix: base}
	}
	if suffix, more, ok := suffixUnder(base); ok {
		return &wildcardError{base: base, suffix: suffix, more: more}
	}
	return nil
}

// specialUseName reports whether name is one of the top-level names that
// RFC 6761 reserves and the root zone never delegates.
func specialUseName(name string) bool {
	switch name {
	case "test", "example", "invalid", "localhost":
		return true
	}
	return false
}

// suffixUnder looks base up in suffixBelow, the table generated from the
// public suffix list that x/net/publicsuffix embeds (publicsuffix offers
// no way to list the suffixes below a name). It returns one rule below
// base, and how many others there are.
func suffixUnder(base string) (suffix string, more int, ok bool) {
	i := strings.Index(suffixBelow, "\n"+base+" ")
	if i < 0 {
		return "", 0, false
	}
	line, _, _ := strings.Cut(suffixBelow[i+len(base)+2:], "\n")
	labels, count, _ := strings.Cut(line, " ")
	more, err := strconv.Atoi(count)
	if err != nil || labels == "" {
		// A damaged table still refuses the wildcard.
		return base, 0, true
	}
	return labels + "." + base, more, true
}

// Host pattern limits (RFC 1035 section 2.3.4).
const (
	maxHostLen  = 253
	maxLabelLen = 63
)

// parseHostPattern reads a PinSet.Host or Bearer.Hosts entry strictly, so
// that a mistyped pattern is a configuration error rather than a pattern
// that silently matches nothing: an IP literal alone, or a host name of
// letter-digit-hyphen labels (an internationalised name goes through IDNA
// first), optionally after a "*." or "**." wildcard label, with at most one
// trailing dot. Underscores are refused: they are not valid in host names
// (RFC 952, RFC 1123), and a certificate's DNS names cannot hold them
// (RFC 5280 section 4.2.1.6). A wildcard never covers an IP address, nor a
// name ending in a numeric label, which some URL parsers read as an IPv4
// address, nor a name that is, or lies above, a public suffix (see
// checkWildcardBase).
func parseHostPattern(s string) (hostPattern, error) {
	var p hostPattern
	if err := hostEntryMistake(s, false); err != nil {
		return p, err
	}
	switch {
	case strings.HasPrefix(s, "**."):
		p.wild, s = 2, s[3:]
	case strings.HasPrefix(s, "*."):
		p.wild, s = 1, s[2:]
	}
	if strings.Contains(s, "*") {
		return p, errors.New(`a wildcard may only be the whole first label, as "*." or "**."`)
	}
	if ip := parseIPLiteral(s); ip != nil {
		if p.wild != 0 {
			return p, errors.New("a wildcard cannot apply to an IP address")
		}
		p.base = ip.String()
		p.dot = "." + p.base
		return p, nil
	}
	if strings.ContainsAny(s, ":/") {
		return p, errors.New("must be a bare host name, without scheme, port or path")
	}
	base, err := validHostName(s)
	if err != nil {
		return p, err
	}
	if p.wild != 0 {
		if err := checkWildcardBase(base); err != nil {
			return p, err
		}
	}
	p.base, p.dot = base, "."+base
	return p, nil
}

// hostEntryMistake names the common mistakes in an entry of a host list
// (PinSet.Host, AllowHosts, and with portAllowed Bearer.Hosts) in the same
// words whichever list holds it: an empty entry, a URL, a path, or a port
// where none belongs. It returns nil for anything else, which the parsers
// judge.
func hostEntryMistake(s string, portAllowed bool) error {
	form := `a bare host name, as "api.example.com"`
	if portAllowed {
		form += `, with ":port" to restrict it to one port`
	}
	switch {
	case strings.TrimSpace(s) == "":
		return errors.New("empty entry (a trailing comma?): write " + form)
	case strings.Contains(s, "://"):
		return errors.New("a URL, not a host: write " + form)
	case strings.ContainsAny(s, "/?#@"):
		return errors.New("a host with a path, query or userinfo: write " + form)
	case !portAllowed && hasPort(s):
		return errors.New(`a port where none belongs: the pattern applies to every port of the host; write ` + form)
	}
	return nil
}

// hasPort reports whether s reads as a host and a port: "name:443",
// "[::1]:443", but not an IPv6 literal alone.
func hasPort(s string) bool {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		return end >= 0 && strings.HasPrefix(s[end+1:], ":")
	}
	return strings.Count(s, ":") == 1
}

// parseIPLiteral returns the address s spells: an IPv4 address in dotted
// decimal, or an IPv6 address with or without brackets. It returns nil for
// anything else.
func parseIPLiteral(s string) net.IP {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		inner := s[1 : len(s)-1]
		if !strings.Contains(inner, ":") {
			return nil
		}
		return net.ParseIP(inner)
	}
	return net.ParseIP(s)
}

// validHostName normalises a host name written in a pattern, and refuses
// anything that is not one: empty labels (".api.test", "api.test.."),
// characters outside letters, digits and hyphens (such as a space, a tab
// or a newline), a label of more than 63 bytes or starting or ending with
// a hyphen, a name of more than 253 bytes, and a name whose last label is
// numeric. Internationalised names, and labels already in Punycode, are
// checked and converted by IDNA (UTS #46 lookup rules).
func validHostName(s string) (string, error) {
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return "", errors.New("empty host")
	}
	needIDNA := false
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			needIDNA = true
			break
		}
	}
	if !needIDNA {
		lower := strings.ToLower(name)
		needIDNA = strings.HasPrefix(lower, "xn--") || strings.Contains(lower, ".xn--")
	}
	if needIDNA {
		ascii, err := idna.Lookup.ToASCII(name)
		if err != nil {
			// The IDNA error quotes nothing secret, but keep our wording.
			return "", errors.New("not a valid internationalised host name (IDNA)")
		}
		name = ascii
	}
	name = strings.ToLower(name)
	if len(name) > maxHostLen {
		return "", fmt.Errorf("host name of %d bytes exceeds %d", len(name), maxHostLen)
	}
	var last string
	for rest := name; ; {
		label, more, found := strings.Cut(rest, ".")
		if err := checkLabel(label); err != nil {
			return "", err
		}
		last = label
		if !found {
			break
		}
		rest = more
	}
	if numericLabel(last) {
		return "", errors.New("the last label is numeric: write an IP address in full, or a host name")
	}
	return name, nil
}

// checkLabel accepts a letter-digit-hyphen label (RFC 1123 section 2.1).
func checkLabel(label string) error {
	switch {
	case label == "":
		return errors.New("empty label in host name")
	case len(label) > maxLabelLen:
		return fmt.Errorf("label of %d bytes exceeds %d", len(label), maxLabelLen)
	case label[0] == '-' || label[len(label)-1] == '-':
		return errors.New("a label may not start or end with a hyphen")
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("character %q not allowed in a host name: only letters, digits and hyphens", c)
		}
	}
	return nil
}

// numericLabel reports whether label reads as a number (decimal, or hex
// with 0x), as the WHATWG URL parser's "ends in a number" check does: a
// name ending in one is parsed as an IPv4 address there.
func numericLabel(label string) bool {
	digits := label
	hex := false
	if strings.HasPrefix(label, "0x") {
		digits, hex = label[2:], true
	}
	if digits == "" {
		return hex
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if !('0' <= c && c <= '9' || hex && 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// parseHostPortPattern reads a Bearer.Hosts entry: a host pattern, optionally
// with ":port" (an IPv6 literal then in brackets). Without a port the pattern
// matches every port of its hosts.
func parseHostPortPattern(s string) (hostPattern, error) {
	if err := hostEntryMistake(s, true); err != nil {
		return hostPattern{}, err
	}
	host, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.Index(s, "]")
		if end < 0 {
			return hostPattern{}, errors.New("unclosed bracket in IPv6 literal")
		}
		host = s[:end+1]
		if rest := s[end+1:]; rest != "" {
			var ok bool
			if port, ok = strings.CutPrefix(rest, ":"); !ok {
				return hostPattern{}, errors.New("unexpected text after the IPv6 literal")
			}
		}
	case strings.Count(s, ":") == 1:
		host, port, _ = strings.Cut(s, ":")
	}
	p, err := parseHostPattern(host)
	if err != nil || port == "" && host == s {
		return p, err
	}
	n, err := parsePort(port)
	if err != nil || n == 0 {
		return p, fmt.Errorf("port %q must be a number from 1 to 65535", port)
	}
	p.port = n
	return p, nil
}

// parsePort reads a decimal port number; "" is 0.
func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, nil
	}
	if len(s) > 5 {
		return 0, errors.New("port out of range")
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errors.New("port is not a number")
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, errors.New("port out of range")
	}
	return uint16(n), nil
}

// matchPort reports whether a request to port, as in its URL ("" for the
// scheme's default, 443 for https), may be sent by a pattern.
func (p hostPattern) matchPort(port string) bool {
	if p.port == 0 {
		return true
	}
	if port == "" {
		return p.port == 443
	}
	n, err := parsePort(port)
	return err == nil && n == p.port
}

// match reports whether host, already normalised, matches the pattern.
func (p hostPattern) match(host string) bool {
	switch p.wild {
	case 0:
		return host == p.base
	case 1:
		label, rest, ok := strings.Cut(host, ".")
		return ok && label != "" && rest == p.base && p.ownSide(host)
	default:
		return host == p.base || (strings.HasSuffix(host, p.dot) && len(host) > len(p.dot) && p.ownSide(host))
	}
}

// ownSide reports whether host, a name below a wildcard's base, lies on the
// base's side of the public suffix list: a host whose own public suffix is
// longer than the base was registered by someone else, whatever the
// pattern says. parseHostPattern already refuses such patterns; this holds
// even if its table were out of date. It runs only for wildcard patterns:
// PublicSuffix costs an allocation (of netip.ParseAddr's error).
func (p hostPattern) ownSide(host string) bool {
	ps, _ := publicsuffix.PublicSuffix(host)
	return len(ps) <= len(p.base)
}

func (p hostPattern) String() string {
	s := [...]string{"", "*.", "**."}[p.wild] + p.base
	if p.port != 0 {
		host := s
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		return fmt.Sprintf("%s:%d", host, p.port)
	}
	return s
}
