package securehttp

import (
	"cmp"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/publicsuffix"
)

// Limits, as browsers set them (RFC 6265bis sections 5.6 and 5.7, and
// Chromium's per-domain and total counts).
const (
	maxCookiesPerDomain = 180                  // per registrable domain (eTLD+1)
	maxCookies          = 3000                 // in the whole jar
	maxCookieBytes      = 4096                 // name and value together
	maxCookieAttrBytes  = 1024                 // a longer Path attribute is ignored
	maxCookieAge        = 400 * 24 * time.Hour // Max-Age and Expires are capped to this
)

// NewCookieJar returns a cookie jar for http.Client.Jar that follows the
// public suffix list and deals in https only: it stores a cookie only when
// it is Secure and came over https, honours an https deletion or
// replacement with or without Secure, enforces the __Secure- and __Host-
// prefixes, and keeps at most 180 cookies per site and 3000 in all, oldest
// out first. As in browsers, cookies ignore ports (RFC 6265 section 8.5),
// unlike tokens here. It is safe for concurrent use.
func NewCookieJar() http.CookieJar { return newCookieJar(time.Now) }

func newCookieJar(now func() time.Time) *cookieJar {
	return &cookieJar{now: now, groups: make(map[string]map[cookieID]*cookieEntry)}
}

// cookieJar is an RFC 6265 cookie store for https, modelled on
// net/http/cookiejar (which has neither limits nor eviction): cookies are
// grouped by the registrable domain of the host that set them, and
// identified within it by domain, path, name and host-only flag, as RFC
// 6265bis section 5.7 does, so that a domain cookie never replaces or
// deletes a host-only one.
type cookieJar struct {
	now func() time.Time

	mu     sync.Mutex
	groups map[string]map[cookieID]*cookieEntry // by registrable domain
	total  int
	seq    uint64
	// oldest and newest end the list of all cookies in creation order,
	// which global eviction takes from the front.
	oldest, newest *cookieEntry
}

type cookieID struct {
	domain, path, name string // domain is the host itself for a host-only cookie
	hostOnly           bool
}

type cookieEntry struct {
	id      cookieID
	value   string
	quoted  bool
	expires time.Time // zero for a session cookie
	group   string    // the registrable domain the cookie counts against
	created uint64    // creation order, kept when the cookie is replaced

	prev, next *cookieEntry // creation order across the jar
}

func (e *cookieEntry) expired(now time.Time) bool {
	return !e.expires.IsZero() && !e.expires.After(now)
}

// SetCookies implements http.CookieJar.
func (j *cookieJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	if u == nil || u.Scheme != "https" || len(cookies) == 0 {
		return
	}
	host, err := normalizeHost(u.Hostname())
	if err != nil {
		return
	}
	group := registrableDomain(host)
	defPath := defaultCookiePath(u.Path)
	now := j.now()

	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range cookies {
		if c != nil {
			j.set(c, host, group, defPath, now)
		}
	}
}

// set applies one cookie received over https from host.
func (j *cookieJar) set(c *http.Cookie, host, group, defPath string, now time.Time) {
	if c.Name == "" {
		return
	}
	domain, hostOnly, ok := cookieDomain(host, c.Domain)
	if !ok {
		return
	}
	path := c.Path
	if path == "" || path[0] != '/' || len(path) > maxCookieAttrBytes {
		path = defPath
	}
	id := cookieID{domain, path, c.Name, hostOnly}
	old := j.groups[group][id]

	var expires time.Time
	switch {
	case c.MaxAge < 0:
		j.remove(old)
		return
	case c.MaxAge > 0:
		expires = now.Add(min(time.Duration(c.MaxAge), maxCookieAge/time.Second) * time.Second)
	case !c.Expires.IsZero():
		if !c.Expires.After(now) {
			j.remove(old)
			return
		}
		expires = minTime(c.Expires, now.Add(maxCookieAge))
	}

	if len(c.Name)+len(c.Value) > maxCookieBytes || !prefixAllowed(c) {
		return
	}
	if old != nil {
		// A replacement: honoured with or without Secure, and keeping the
		// cookie's creation, as RFC 6265 section 5.3 asks.
		old.value, old.quoted, old.expires = c.Value, c.Quoted, expires
		return
	}
	if !c.Secure {
		return
	}
	j.seq++
	e := &cookieEntry{id: id, value: c.Value, quoted: c.Quoted, expires: expires, group: group, created: j.seq}
	g := j.groups[group]
	if g == nil {
		g = make(map[cookieID]*cookieEntry)
		j.groups[group] = g
	}
	g[id] = e
	j.total++
	e.prev = j.newest
	if j.newest != nil {
		j.newest.next = e
	} else {
		j.oldest = e
	}
	j.newest = e

	if len(g) > maxCookiesPerDomain {
		j.evictFrom(g, now)
	}
	if j.total > maxCookies {
		j.remove(j.oldest)
	}
}

// evictFrom brings a group back to its limit: expired cookies go first,
// then the oldest.
func (j *cookieJar) evictFrom(g map[cookieID]*cookieEntry, now time.Time) {
	var oldest *cookieEntry
	for _, e := range g {
		switch {
		case e.expired(now):
			j.remove(e)
		case oldest == nil || e.created < oldest.created:
			oldest = e
		}
	}
	if len(g) > maxCookiesPerDomain {
		j.remove(oldest)
	}
}

// remove deletes e, if not nil, from the jar.
func (j *cookieJar) remove(e *cookieEntry) {
	if e == nil {
		return
	}
	g := j.groups[e.group]
	delete(g, e.id)
	if len(g) == 0 {
		delete(j.groups, e.group)
	}
	j.total--
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		j.oldest = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		j.newest = e.prev
	}
	e.prev, e.next = nil, nil
}

// Cookies implements http.CookieJar: the cookies to send to u, for https
// only, longest path first, then oldest first (RFC 6265 section 5.4).
func (j *cookieJar) Cookies(u *url.URL) []*http.Cookie {
	if u == nil || u.Scheme != "https" {
		return nil
	}
	host, err := normalizeHost(u.Hostname())
	if err != nil {
		return nil
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	group := registrableDomain(host)
	now := j.now()

	j.mu.Lock()
	var selected []*cookieEntry
	for _, e := range j.groups[group] {
		switch {
		case e.expired(now):
			j.remove(e)
		case e.domainMatch(host) && cookiePathMatch(e.id.path, path):
			selected = append(selected, e)
		}
	}
	slices.SortFunc(selected, func(a, b *cookieEntry) int {
		return cmp.Or(cmp.Compare(len(b.id.path), len(a.id.path)), cmp.Compare(a.created, b.created))
	})
	out := make([]*http.Cookie, len(selected))
	for i, e := range selected {
		out[i] = &http.Cookie{Name: e.id.name, Value: e.value, Quoted: e.quoted}
	}
	j.mu.Unlock()
	return out
}

func (e *cookieEntry) domainMatch(host string) bool {
	return host == e.id.domain || !e.id.hostOnly && hasDotSuffix(host, e.id.domain)
}

// cookiePathMatch is "path-match" of RFC 6265 section 5.1.4.
func cookiePathMatch(cookiePath, reqPath string) bool {
	if !strings.HasPrefix(reqPath, cookiePath) {
		return false
	}
	return len(reqPath) == len(cookiePath) || cookiePath[len(cookiePath)-1] == '/' || reqPath[len(cookiePath)] == '/'
}

// defaultCookiePath is the "default-path" of RFC 6265 section 5.1.4. A
// request path longer than a Path attribute may be gives "/", so that a
// server cannot make the jar keep long paths through its redirects.
func defaultCookiePath(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 || path[0] != '/' || len(path) > maxCookieAttrBytes {
		return "/"
	}
	return path[:i]
}

// prefixAllowed applies the __Secure- and __Host- prefix rules (RFC
// 6265bis section 4.1.3) to a cookie received over https.
func prefixAllowed(c *http.Cookie) bool {
	switch {
	case hasPrefixFold(c.Name, "__Secure-"):
		return c.Secure
	case hasPrefixFold(c.Name, "__Host-"):
		return c.Secure && c.Domain == "" && c.Path == "/"
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// cookieDomain returns the domain a cookie from host with the Domain
// attribute attr applies to, and whether it is host-only, as RFC 6265
// section 5.3 steps 4 to 6 decide: no attribute makes a host-only cookie;
// an attribute must name host or a domain above it that is not a public
// suffix, except that a public suffix naming host itself makes a host-only
// cookie. A cookie from an IP address is host-only.
func cookieDomain(host, attr string) (domain string, hostOnly, ok bool) {
	if attr == "" {
		return host, true, true
	}
	if isIPHost(host) {
		return host, true, attr == host
	}
	d := strings.TrimPrefix(attr, ".")
	if d == "" || d[0] == '.' || d[len(d)-1] == '.' || !isASCII(d) {
		return "", false, false
	}
	d = strings.ToLower(d)
	if ps, _ := publicsuffix.PublicSuffix(d); ps == d {
		return host, true, host == d
	}
	if host != d && !hasDotSuffix(host, d) {
		return "", false, false
	}
	return d, false, true
}

// registrableDomain is the group a host's cookies count against: its
// eTLD+1, or the host itself when it is an IP address or a public suffix.
func registrableDomain(host string) string {
	if isIPHost(host) {
		return host
	}
	if d, err := publicsuffix.EffectiveTLDPlusOne(host); err == nil {
		return d
	}
	return host
}

// isIPHost reports whether host, as normalizeHost gives it, is an IP
// address. Anything holding ':' or '%' is taken for one, as
// net/http/cookiejar does, so that it never counts as a domain name.
func isIPHost(host string) bool {
	return strings.ContainsAny(host, ":%") || net.ParseIP(host) != nil
}

// hasDotSuffix reports whether s ends in "." + suffix.
func hasDotSuffix(s, suffix string) bool {
	return len(s) > len(suffix) && s[len(s)-len(suffix)-1] == '.' && s[len(s)-len(suffix):] == suffix
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
