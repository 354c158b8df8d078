package securehttp

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// egress is the policy on where the client connects: Config.AllowHosts,
// checked on every request before anything else, and
// Config.BlockPrivateNetworks, checked on every address dialled.
type egress struct {
	allow        []hostPattern // empty: any host
	blockPrivate bool
}

func newEgress(allowHosts []string, blockPrivate bool) (*egress, error) {
	e := &egress{blockPrivate: blockPrivate}
	for i, h := range allowHosts {
		p, err := parseHostPattern(h)
		if err != nil {
			return nil, &ConfigError{Field: fmt.Sprintf("AllowHosts[%d]", i), Value: h, Err: err}
		}
		e.allow = append(e.allow, p)
	}
	return e, nil
}

// checkHost is the first stage of every request and redirect hop: it
// refuses a host outside AllowHosts and, with BlockPrivateNetworks, a host
// that is itself a blocked address, so that neither is ever dialled nor
// named to a proxy. hostname is the URL's host without port or brackets.
func (e *egress) checkHost(hostname string) error {
	if len(e.allow) == 0 && !e.blockPrivate {
		return nil
	}
	host, err := normalizeHost(hostname)
	if err != nil {
		return fmt.Errorf("securehttp: bad request host: %w", err)
	}
	if len(e.allow) > 0 && !e.allowed(host) {
		return fmt.Errorf("%w: %q", ErrHostNotAllowed, host)
	}
	if !e.blockPrivate {
		return nil
	}
	// host is in the ASCII form net/http dials and names to a proxy: a
	// literal spelt with full-width digits or ideographic full stops is the
	// literal itself.
	addr, ok := hostAddr(host)
	if !ok {
		return nil // a name: its addresses are checked when dialled
	}
	if why := blockedReason(addr); why != "" {
		return fmt.Errorf("%w: host %q is %s", ErrBlockedAddress, host, why)
	}
	return nil
}

func (e *egress) allowed(host string) bool {
	for _, p := range e.allow {
		if p.match(host) {
			return true
		}
	}
	return false
}

// hostAddr reads a URL host that is an IP address, in any of the forms a
// resolver or a proxy might take for one: an IPv6 or dotted-quad literal,
// or the shorthand and numeric IPv4 forms of inet_aton ("127.1",
// "2130706433", "0x7f.1", "0177.0.0.1"), which getaddrinfo and many proxies
// turn into addresses without a DNS query.
func hostAddr(hostname string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(hostname); err == nil {
		return a, true
	}
	return parseLooseIPv4(hostname)
}

// parseLooseIPv4 parses the IPv4 forms inet_aton accepts: one to four
// parts separated by dots, each decimal, octal with a leading 0, or hex
// with 0x; the last part fills the bytes left. A trailing dot is allowed.
func parseLooseIPv4(s string) (netip.Addr, bool) {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return netip.Addr{}, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var out [4]byte
	for i, p := range parts {
		base := 10
		switch {
		case len(p) > 1 && (p[1] == 'x' || p[1] == 'X') && p[0] == '0':
			base, p = 16, p[2:]
			if p == "" {
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		if p == "" || p[0] == '+' || p[0] == '-' {
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if v > 0xff {
				return netip.Addr{}, false
			}
			out[i] = byte(v)
			continue
		}
		rest := 4 - i // bytes the last part fills
		if rest < 4 && v >= 1<<(8*rest) {
			return netip.Addr{}, false
		}
		for j := 3; j >= i; j-- {
			out[j] = byte(v)
			v >>= 8
		}
	}
	return netip.AddrFrom4(out), true
}

// dialFunc returns the base transport's dial function. Without
// BlockPrivateNetworks it is the user's DialContext, or d's. With it, our
// own dialer checks each address in ControlContext, after DNS resolution
// and before the connection is attempted; a user's DialContext has the
// connection it returns checked by its remote address, before any byte is
// written. The dial net/http makes to the proxy that Config.Proxy chose for
// the request is not checked (see proxyDial).
func (e *egress) dialFunc(user func(ctx context.Context, network, addr string) (net.Conn, error), d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	switch {
	case !e.blockPrivate && user != nil:
		return user
	case !e.blockPrivate:
		return d.DialContext
	case user != nil:
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := user(ctx, network, addr)
			if err != nil || proxyDial(ctx, addr) {
				return conn, err
			}
			if err := checkRemote(dialHost(addr), conn.RemoteAddr()); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		}
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if proxyDial(ctx, addr) {
			return d.DialContext(ctx, network, addr)
		}
		host := dialHost(addr)
		guarded := *d
		guarded.ControlContext = func(_ context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: host %q dialled as %q, not an IP address", ErrBlockedAddress, host, address)
			}
			return checkDialled(host, ap.Addr())
		}
		return guarded.DialContext(ctx, network, addr)
	}
}

// proxyChoice is what Config.Proxy chose for one attempt of a request. It
// rides in the attempt's context, which http.Transport passes on, values
// kept, to the dial it starts for that attempt (its getConn detaches the
// dial from the request's cancellation, not from its values). A connection
// so dialled may serve another request, but only one with the same proxy:
// the pool is keyed by proxy and target.
type proxyChoice struct {
	mu     sync.Mutex
	chosen bool
	addr   string // the proxy's address as http.Transport dials it; "" for none
	mixed  bool   // Config.Proxy answered differently for the same attempt
}

type proxyChoiceKey struct{}

// track returns req with a fresh proxyChoice in its context when
// BlockPrivateNetworks is on, and req itself otherwise. Every attempt goes
// through it, so that a choice never outlives the attempt it was made for.
func (e *egress) track(req *http.Request) *http.Request {
	if !e.blockPrivate {
		return req
	}
	return req.WithContext(context.WithValue(req.Context(), proxyChoiceKey{}, new(proxyChoice)))
}

// note records a choice. http.Transport asks Config.Proxy again when it
// retries a request on a new connection, so an attempt may see several
// answers; if they differ, a dial cannot tell which one it serves, and no
// dial of the attempt is let through unchecked.
func (c *proxyChoice) note(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.chosen:
		c.chosen, c.addr = true, addr
	case c.addr != addr:
		c.mixed = true
	}
}

// proxyDial reports whether a dial of addr under ctx is the dial to the
// proxy chosen for the request: the proxy's address, dialled for a request
// that Config.Proxy sent to that proxy. A request sent direct to the same
// address is checked like any other.
func proxyDial(ctx context.Context, addr string) bool {
	c, ok := ctx.Value(proxyChoiceKey{}).(*proxyChoice)
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chosen && !c.mixed && c.addr != "" && c.addr == strings.ToLower(addr)
}

// proxyFunc wraps Config.Proxy so that each attempt records the proxy
// chosen for it, for dialFunc to let through.
func (e *egress) proxyFunc(proxy func(*http.Request) (*url.URL, error)) func(*http.Request) (*url.URL, error) {
	if !e.blockPrivate {
		return proxy
	}
	return func(req *http.Request) (*url.URL, error) {
		u, err := proxy(req)
		if err != nil {
			return u, err // the request fails without a dial
		}
		if c, ok := req.Context().Value(proxyChoiceKey{}).(*proxyChoice); ok {
			addr := ""
			if u != nil {
				addr = proxyAddr(u)
			}
			c.note(addr)
		}
		return u, err
	}
}

// proxyAddr is u's address in the form http.Transport dials it (its
// canonicalAddr: host in ASCII, port defaulting by scheme), lower-cased.
func proxyAddr(u *url.URL) string {
	host := u.Hostname()
	if !isASCII(host) {
		if ascii, err := idna.Lookup.ToASCII(host); err == nil {
			host = ascii
		}
	}
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		case "socks5", "socks5h":
			port = "1080"
		}
	}
	return strings.ToLower(net.JoinHostPort(host, port))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// dialHost is the host part of a dial address, for error messages.
func dialHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// checkRemote checks the remote address of a connection made by a user's
// DialContext. A connection without an IP address is refused: its
// destination cannot be judged.
func checkRemote(host string, remote net.Addr) error {
	var addr netip.Addr
	switch ra := remote.(type) {
	case *net.TCPAddr:
		a, ok := netip.AddrFromSlice(ra.IP)
		if !ok {
			return fmt.Errorf("%w: host %q connected to %v, not an IP address", ErrBlockedAddress, host, remote)
		}
		addr = a
	default:
		if remote == nil {
			return fmt.Errorf("%w: host %q connected to an unknown address", ErrBlockedAddress, host)
		}
		ap, err := netip.ParseAddrPort(remote.String())
		if err != nil {
			return fmt.Errorf("%w: host %q connected to %q, not an IP address", ErrBlockedAddress, host, remote.String())
		}
		addr = ap.Addr()
	}
	return checkDialled(host, addr)
}

// checkDialled judges an address about to be, or just, connected to. A
// v4-mapped address there is the IPv4 address the packets go to (Go and
// the kernel connect to it over IPv4), so it is judged as that address.
func checkDialled(host string, addr netip.Addr) error {
	addr = addr.Unmap()
	if why := blockedReason(addr); why != "" {
		return fmt.Errorf("%w: host %q resolved to %s, %s", ErrBlockedAddress, host, addr, why)
	}
	return nil
}

// addrRange is one blocked range and why.
type addrRange struct {
	prefix netip.Prefix
	why    string
}

func blockRange(prefix, why string) addrRange {
	return addrRange{netip.MustParsePrefix(prefix), why}
}

// The blocked ranges come from the IANA IPv4 Special-Purpose Address
// Registry (https://www.iana.org/assignments/iana-ipv4-special-registry/)
// and the IANA IPv6 Special-Purpose Address Registry
// (https://www.iana.org/assignments/iana-ipv6-special-registry/), every
// entry of each, including the few marked globally reachable (anycast
// relays, AS112, AMT), which no API client has a reason to call. Added to
// them: IPv4 multicast (IANA IPv4 Multicast Address Space Registry, RFC
// 5771), the reserved 240.0.0.0/4 (IANA IPv4 Address Space Registry, RFC
// 1112), and for IPv6 everything outside global unicast 2000::/3 (RFC
// 4291), which takes in multicast, link-local, unique-local, site-local
// and the IPv4-compatible and -mapped forms. NAT64 64:ff9b::/96 and 6to4
// 2002::/16 are judged by the IPv4 address they embed. Entries are ordered
// so that the most specific reason is reported.
var (
	blockedV4 = [...]addrRange{
		blockRange("0.0.0.0/8", `"this network" (RFC 791)`),
		blockRange("10.0.0.0/8", "private-use (RFC 1918)"),
		blockRange("100.64.0.0/10", "shared address space, carrier-grade NAT (RFC 6598)"),
		blockRange("127.0.0.0/8", "loopback (RFC 1122)"),
		blockRange("169.254.0.0/16", "link-local, cloud metadata among them (RFC 3927)"),
		blockRange("172.16.0.0/12", "private-use (RFC 1918)"),
		blockRange("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
		blockRange("192.0.2.0/24", "documentation, TEST-NET-1 (RFC 5737)"),
		blockRange("192.31.196.0/24", "AS112-v4 (RFC 7535)"),
		blockRange("192.52.193.0/24", "AMT (RFC 7450)"),
		blockRange("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
		blockRange("192.168.0.0/16", "private-use (RFC 1918)"),
		blockRange("192.175.48.0/24", "AS112 direct delegation (RFC 7534)"),
		blockRange("198.18.0.0/15", "benchmarking (RFC 2544)"),
		blockRange("198.51.100.0/24", "documentation, TEST-NET-2 (RFC 5737)"),
		blockRange("203.0.113.0/24", "documentation, TEST-NET-3 (RFC 5737)"),
		blockRange("224.0.0.0/4", "multicast (RFC 5771)"),
		blockRange("255.255.255.255/32", "limited broadcast (RFC 919)"),
		blockRange("240.0.0.0/4", "reserved (RFC 1112)"),
	}
	blockedV6 = [...]addrRange{
		blockRange("::/128", "unspecified (RFC 4291)"),
		blockRange("::1/128", "loopback (RFC 4291)"),
		blockRange("::ffff:0:0/96", "IPv4-mapped (RFC 4291)"),
		blockRange("::/96", "IPv4-compatible, deprecated (RFC 4291)"),
		blockRange("64:ff9b:1::/48", "local-use IPv4/IPv6 translation (RFC 8215)"),
		blockRange("100::/64", "discard-only (RFC 6666)"),
		blockRange("100:0:0:1::/64", "dummy prefix (RFC 9780)"),
		blockRange("2001::/32", "Teredo (RFC 4380)"),
		blockRange("2001:2::/48", "benchmarking (RFC 5180)"),
		blockRange("2001:db8::/32", "documentation (RFC 3849)"),
		blockRange("2001::/23", "IETF protocol assignments (RFC 2928)"),
		blockRange("2620:4f:8000::/48", "AS112 direct delegation (RFC 7534)"),
		blockRange("3fff::/20", "documentation (RFC 9637)"),
		blockRange("5f00::/16", "SRv6 SIDs (RFC 9602)"),
		blockRange("fc00::/7", "unique-local, cloud metadata fd00:ec2::254 among them (RFC 4193)"),
		blockRange("fe80::/10", "link-local (RFC 4291)"),
		blockRange("fec0::/10", "site-local, deprecated (RFC 3879)"),
		blockRange("ff00::/8", "multicast (RFC 4291)"),
	}
	globalUnicastV6 = netip.MustParsePrefix("2000::/3")
	nat64V6         = netip.MustParsePrefix("64:ff9b::/96")
	sixToFourV6     = netip.MustParsePrefix("2002::/16")
)

// blockedReason says why a is not a public unicast address, or returns ""
// when it is one.
func blockedReason(a netip.Addr) string {
	if !a.IsValid() {
		return "not an IP address"
	}
	a = a.WithZone("") // a zoned address is in no prefix otherwise
	if a.Is4() {
		for _, b := range blockedV4 {
			if b.prefix.Contains(a) {
				return b.why
			}
		}
		return ""
	}
	b := a.As16()
	switch {
	case nat64V6.Contains(a):
		if why := blockedReason(netip.AddrFrom4([4]byte(b[12:16]))); why != "" {
			return "NAT64 (RFC 6052) of an address that is " + why
		}
		return ""
	case sixToFourV6.Contains(a):
		if why := blockedReason(netip.AddrFrom4([4]byte(b[2:6]))); why != "" {
			return "6to4 (RFC 3056) of an address that is " + why
		}
		return ""
	}
	for _, br := range blockedV6 {
		if br.prefix.Contains(a) {
			return br.why
		}
	}
	if !globalUnicastV6.Contains(a) {
		return "outside IPv6 global unicast 2000::/3 (RFC 4291)"
	}
	return ""
}
