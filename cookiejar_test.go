package securehttp

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testutil"
)

// setCookieLines hands jar the Set-Cookie header lines of a response from
// rawURL, parsed as net/http parses them for a client.
func setCookieLines(t *testing.T, jar http.CookieJar, rawURL string, lines ...string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{Header: http.Header{"Set-Cookie": lines}}
	jar.SetCookies(u, resp.Cookies())
}

// cookieHeader is the Cookie header jar gives a request to rawURL.
func cookieHeader(t *testing.T, jar http.CookieJar, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, c := range jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// TestCookieJarDeletion: over https a deletion or a replacement is honoured
// whether or not it repeats Secure (http.SetCookie with MaxAge -1 sends
// "Max-Age=0" and nothing else), so that logging out ends the session;
// over http nothing stored changes.
func TestCookieJarDeletion(t *testing.T) {
	t.Parallel()
	const site = "https://www.example.com/"
	for _, tt := range []struct {
		name  string
		url   string
		lines []string
		want  string
	}{
		{"Max-Age=0 without Secure", site, []string{"sid=; Max-Age=0"}, ""},
		{"Max-Age=0 with Secure", site, []string{"sid=; Max-Age=0; Secure"}, ""},
		{"Expires in the past without Secure", site, []string{"sid=; Expires=Thu, 01 Jan 1970 00:00:00 GMT"}, ""},
		{"replacement without Secure", site, []string{"sid=s2"}, "sid=s2"},
		{"replacement with Secure", site, []string{"sid=s2; Secure"}, "sid=s2"},
		{"deletion of another path leaves it", site, []string{"sid=; Max-Age=0; Path=/other"}, "sid=s1"},
		{"deletion over http is ignored", "http://www.example.com/", []string{"sid=; Max-Age=0"}, "sid=s1"},
		{"replacement over http is ignored", "http://www.example.com/", []string{"sid=evil; Secure"}, "sid=s1"},
		{"replacement over http without Secure is ignored", "http://www.example.com/", []string{"sid=evil"}, "sid=s1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jar := NewCookieJar()
			setCookieLines(t, jar, site, "sid=s1; Secure; Path=/")
			if got := cookieHeader(t, jar, site); got != "sid=s1" {
				t.Fatalf("after login: got %q, want %q", got, "sid=s1")
			}
			setCookieLines(t, jar, tt.url, tt.lines...)
			if got := cookieHeader(t, jar, site); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCookieJarNewCookieNeedsSecure: a new cookie is stored only when it
// is marked Secure and received over https.
func TestCookieJarNewCookieNeedsSecure(t *testing.T) {
	t.Parallel()
	jar := NewCookieJar()
	setCookieLines(t, jar, "https://www.example.com/", "plain=1", "secure=1; Secure")
	setCookieLines(t, jar, "http://www.example.com/", "overhttp=1; Secure")
	if got, want := cookieHeader(t, jar, "https://www.example.com/"), "secure=1"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := cookieHeader(t, jar, "http://www.example.com/"); got != "" {
		t.Fatalf("over http: got %q, want no cookie", got)
	}
}

// TestCookieJarPrefixes: the __Secure- and __Host- prefixes (RFC 6265bis
// section 4.1.3), matched without regard to case as browsers do.
func TestCookieJarPrefixes(t *testing.T) {
	t.Parallel()
	const host = "https://evil.example.com/"
	for _, tt := range []struct {
		name     string
		url      string
		line     string
		readURL  string
		wantKept bool
	}{
		{"__Secure- with Secure", host, "__Secure-id=1; Secure", host, true},
		{"__Secure- without Secure", host, "__Secure-id=1", host, false},
		{"__secure- without Secure", host, "__secure-id=1", host, false},
		{"__SECURE- without Secure", host, "__SECURE-id=1", host, false},
		{"__Secure- with Secure and Domain", host, "__Secure-id=1; Secure; Domain=example.com", "https://api.example.com/", true},
		{"__Secure- over http", "http://evil.example.com/", "__Secure-id=1; Secure", host, false},
		{"__Host- with Secure, no Domain, Path=/", host, "__Host-id=1; Secure; Path=/", host, true},
		{"__Host- with Domain", host, "__Host-id=1; Secure; Path=/; Domain=example.com", "https://api.example.com/", false},
		{"__Host- with Domain, same host", host, "__Host-id=1; Secure; Path=/; Domain=evil.example.com", host, false},
		{"__host- with Domain", host, "__host-id=1; Secure; Path=/; Domain=example.com", "https://api.example.com/", false},
		{"__Host- without Path", host, "__Host-id=1; Secure", host, false},
		{"__Host- with another Path", "https://evil.example.com/app/", "__Host-id=1; Secure; Path=/app", "https://evil.example.com/app/x", false},
		{"__Host- without Secure", host, "__Host-id=1; Path=/", host, false},
		{"__HOST- without Secure", host, "__HOST-id=1; Path=/", host, false},
		{"__Host- over http", "http://evil.example.com/", "__Host-id=1; Secure; Path=/", host, false},
		{"_Host- is no prefix", host, "_Host-id=1; Secure; Domain=example.com", "https://api.example.com/", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jar := NewCookieJar()
			setCookieLines(t, jar, tt.url, tt.line)
			name, _, _ := strings.Cut(tt.line, "=")
			want := ""
			if tt.wantKept {
				want = name + "=1"
			}
			if got := cookieHeader(t, jar, tt.readURL); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

// TestCookieJarHostPrefixDeletion: a __Host- cookie is deleted by its
// host over https, with or without Secure.
func TestCookieJarHostPrefixDeletion(t *testing.T) {
	t.Parallel()
	const site = "https://api.example.com/"
	jar := NewCookieJar()
	setCookieLines(t, jar, site, "__Host-sid=1; Secure; Path=/")
	setCookieLines(t, jar, "https://evil.example.com/", "__Host-sid=; Max-Age=0; Path=/; Domain=example.com")
	if got := cookieHeader(t, jar, site); got != "__Host-sid=1" {
		t.Fatalf("after another host's deletion: got %q, want %q", got, "__Host-sid=1")
	}
	setCookieLines(t, jar, site, "__Host-sid=; Max-Age=0; Path=/")
	if got := cookieHeader(t, jar, site); got != "" {
		t.Fatalf("after the host's deletion: got %q, want none", got)
	}
}

// TestCookieJarPerDomainLimit: one registrable domain keeps at most
// maxCookiesPerDomain cookies, the newest.
func TestCookieJarPerDomainLimit(t *testing.T) {
	t.Parallel()
	const n = 20000
	jar := NewCookieJar()
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("c%d=v; Secure; Path=/", i)
	}
	// In responses of 1000: net/http parses no more than 3000 Set-Cookie
	// lines in one response.
	for chunk := range slices.Chunk(lines, 1000) {
		setCookieLines(t, jar, "https://www.example.com/", chunk...)
	}
	got := jar.Cookies(&url.URL{Scheme: "https", Host: "www.example.com", Path: "/"})
	if len(got) != maxCookiesPerDomain {
		t.Fatalf("got %d cookies, want %d", len(got), maxCookiesPerDomain)
	}
	for i, c := range got {
		if want := fmt.Sprintf("c%d", n-maxCookiesPerDomain+i); c.Name != want {
			t.Fatalf("cookie %d: got %q, want %q: the newest are kept, in creation order", i, c.Name, want)
		}
	}
	// Another host of the same registrable domain shares the limit.
	setCookieLines(t, jar, "https://api.example.com/", "api=1; Secure; Path=/")
	if got := jar.Cookies(&url.URL{Scheme: "https", Host: "www.example.com", Path: "/"}); len(got) != maxCookiesPerDomain-1 || got[0].Name != fmt.Sprintf("c%d", n-maxCookiesPerDomain+1) {
		t.Fatalf("after a cookie for api.example.com: got %d cookies for www, want %d, the oldest evicted", len(got), maxCookiesPerDomain-1)
	}
}

// TestCookieJarTotalLimit: the jar keeps at most maxCookies cookies in all,
// evicting the oldest across domains.
func TestCookieJarTotalLimit(t *testing.T) {
	t.Parallel()
	jar := NewCookieJar()
	domains := maxCookies/maxCookiesPerDomain + 3
	for d := range domains {
		lines := make([]string, maxCookiesPerDomain)
		for i := range lines {
			lines[i] = fmt.Sprintf("c%d=v; Secure; Path=/", i)
		}
		setCookieLines(t, jar, fmt.Sprintf("https://site%d.example/", d), lines...)
	}
	total, evicted := 0, domains*maxCookiesPerDomain-maxCookies
	for d := range domains {
		n := len(jar.Cookies(&url.URL{Scheme: "https", Host: fmt.Sprintf("site%d.example", d), Path: "/"}))
		total += n
		// Domains were filled in order: the first ones lost their cookies.
		want := min(max(0, (d+1)*maxCookiesPerDomain-evicted), maxCookiesPerDomain)
		if n != want {
			t.Errorf("site%d.example: got %d cookies, want %d", d, n, want)
		}
	}
	if total != maxCookies {
		t.Fatalf("got %d cookies in all, want %d", total, maxCookies)
	}
}

// TestCookieJarSizeLimit: a cookie whose name and value exceed
// maxCookieBytes is refused; one of exactly that size is kept.
func TestCookieJarSizeLimit(t *testing.T) {
	t.Parallel()
	jar := NewCookieJar()
	fits := strings.Repeat("v", maxCookieBytes-len("fits"))
	over := strings.Repeat("v", maxCookieBytes-len("over")+1)
	setCookieLines(t, jar, "https://www.example.com/", "fits="+fits+"; Secure", "over="+over+"; Secure")
	if got, want := cookieHeader(t, jar, "https://www.example.com/"), "fits="+fits; got != want {
		t.Fatalf("got a Cookie header of %d bytes, want only the cookie that fits (%d bytes)", len(got), len(want))
	}
}

// TestCookieJarIgnoresPorts: as in browsers (RFC 6265 section 8.5), a
// cookie set by one port of a host is sent to its other ports.
func TestCookieJarIgnoresPorts(t *testing.T) {
	t.Parallel()
	jar := NewCookieJar()
	setCookieLines(t, jar, "https://www.example.com:8443/", "sid=1; Secure")
	for _, u := range []string{"https://www.example.com/", "https://www.example.com:443/", "https://www.example.com:9443/"} {
		if got := cookieHeader(t, jar, u); got != "sid=1" {
			t.Errorf("%s: got %q, want %q", u, got, "sid=1")
		}
	}
}

// TestCookieJarMatching: host-only and domain cookies, paths, and the
// public suffix list.
func TestCookieJarMatching(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		setURL  string
		line    string
		readURL string
		want    bool
	}{
		{"host-only to its host", "https://example.com/", "a=1; Secure", "https://example.com/", true},
		{"host-only not to a subdomain", "https://example.com/", "a=1; Secure", "https://api.example.com/", false},
		{"domain to a subdomain", "https://example.com/", "a=1; Secure; Domain=example.com", "https://api.example.com/", true},
		{"domain with a leading dot", "https://www.example.com/", "a=1; Secure; Domain=.example.com", "https://api.example.com/", true},
		{"domain not to a sibling's parent's sibling", "https://www.example.com/", "a=1; Secure; Domain=example.com", "https://example.org/", false},
		{"domain of another site refused", "https://www.example.com/", "a=1; Secure; Domain=example.org", "https://example.org/", false},
		{"domain below the host refused", "https://example.com/", "a=1; Secure; Domain=api.example.com", "https://api.example.com/", false},
		{"public suffix refused", "https://www.example.co.uk/", "a=1; Secure; Domain=co.uk", "https://other.co.uk/", false},
		{"private public suffix refused", "https://a.github.io/", "a=1; Secure; Domain=github.io", "https://b.github.io/", false},
		{"domain upper case", "https://www.example.com/", "a=1; Secure; Domain=EXAMPLE.com", "https://api.example.com/", true},
		{"host upper case", "https://WWW.Example.com/", "a=1; Secure", "https://www.example.com/", true},
		{"path prefix", "https://example.com/", "a=1; Secure; Path=/api", "https://example.com/api/v1", true},
		{"path itself", "https://example.com/", "a=1; Secure; Path=/api", "https://example.com/api", true},
		{"path not a label prefix", "https://example.com/", "a=1; Secure; Path=/api", "https://example.com/apix", false},
		{"path not the parent", "https://example.com/", "a=1; Secure; Path=/api", "https://example.com/", false},
		{"default path", "https://example.com/app/login", "a=1; Secure", "https://example.com/app/x", true},
		{"default path not elsewhere", "https://example.com/app/login", "a=1; Secure", "https://example.com/other", false},
		{"IP host", "https://127.0.0.1/", "a=1; Secure", "https://127.0.0.1/", true},
		{"IP with Domain of another", "https://127.0.0.1/", "a=1; Secure; Domain=0.0.1", "https://127.0.0.1/", false},
		{"Max-Age in the future", "https://example.com/", "a=1; Secure; Max-Age=3600", "https://example.com/", true},
		{"not read over http", "https://example.com/", "a=1; Secure", "http://example.com/", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jar := NewCookieJar()
			setCookieLines(t, jar, tt.setURL, tt.line)
			want := ""
			if tt.want {
				want = "a=1"
			}
			if got := cookieHeader(t, jar, tt.readURL); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

// TestCookieJarOrder: longer paths first, then older cookies first (RFC
// 6265 section 5.4).
func TestCookieJarOrder(t *testing.T) {
	t.Parallel()
	jar := NewCookieJar()
	setCookieLines(t, jar, "https://example.com/", "b=1; Secure; Path=/", "a=1; Secure; Path=/", "c=1; Secure; Path=/api")
	if got, want := cookieHeader(t, jar, "https://example.com/api/v1"), "c=1; b=1; a=1"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestCookieJarConcurrent is for the race detector.
func TestCookieJarConcurrent(t *testing.T) {
	t.Parallel()
	jar := NewCookieJar()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				setCookieLines(t, jar, fmt.Sprintf("https://h%d.example.com/", g%3), fmt.Sprintf("c%d=%d; Secure; Domain=example.com", i%50, g))
				cookieHeader(t, jar, "https://x.example.com/")
			}
		})
	}
	wg.Wait()
	if got := len(jar.Cookies(&url.URL{Scheme: "https", Host: "x.example.com"})); got != 50 {
		t.Fatalf("got %d cookies, want 50", got)
	}
}

// TestCookieJarHostOnlyIdentity: a domain cookie, from a sibling host or
// from the host itself, neither replaces nor deletes a host-only cookie of
// the same name and path (RFC 6265bis section 5.7 counts the host-only
// flag in a cookie's identity).
func TestCookieJarHostOnlyIdentity(t *testing.T) {
	t.Parallel()
	const site = "https://example.com/"
	jar := NewCookieJar()
	setCookieLines(t, jar, site, "sid=host; Secure; Path=/")
	setCookieLines(t, jar, "https://www.example.com/", "sid=; Max-Age=0; Path=/; Domain=example.com")
	setCookieLines(t, jar, site, "sid=; Max-Age=0; Path=/; Domain=example.com")
	if got := cookieHeader(t, jar, site); got != "sid=host" {
		t.Fatalf("after domain-cookie deletions: got %q, want %q", got, "sid=host")
	}
	setCookieLines(t, jar, "https://www.example.com/", "sid=tossed; Secure; Path=/; Domain=example.com")
	if got := cookieHeader(t, jar, site); got != "sid=host; sid=tossed" {
		t.Fatalf("after a sibling's domain cookie: got %q, want both cookies, the host's first", got)
	}
}

// TestCookieJarExpiry: cookies expire on the jar's clock, an expired
// cookie is evicted before a live one, and lifetimes are capped.
func TestCookieJarExpiry(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	jar := newCookieJar(func() time.Time { return now })
	const site = "https://example.com/"
	setCookieLines(t, jar, site, "short=1; Secure; Max-Age=60", "huge=1; Secure; Max-Age=99999999999999")
	now = now.Add(time.Minute)
	if got := cookieHeader(t, jar, site); got != "huge=1" {
		t.Fatalf("after a minute: got %q, want %q", got, "huge=1")
	}
	now = now.Add(maxCookieAge)
	if got := cookieHeader(t, jar, site); got != "" {
		t.Fatalf("after %v: got %q, want none: lifetimes are capped", maxCookieAge, got)
	}

	// A full domain with one expired cookie loses that one, not the oldest
	// live one, when a new cookie arrives.
	lines := []string{"old=1; Secure; Max-Age=60"}
	for i := range maxCookiesPerDomain - 1 {
		lines = append(lines, fmt.Sprintf("c%d=1; Secure", i))
	}
	setCookieLines(t, jar, site, lines...)
	now = now.Add(2 * time.Minute)
	setCookieLines(t, jar, site, "new=1; Secure")
	got := jar.Cookies(&url.URL{Scheme: "https", Host: "example.com", Path: "/"})
	if len(got) != maxCookiesPerDomain || got[0].Name != "c0" || got[len(got)-1].Name != "new" {
		t.Fatalf("got %d cookies from %v to %v, want %d from c0 to new", len(got), got[0], got[len(got)-1], maxCookiesPerDomain)
	}
}

func TestCookieJar(t *testing.T) {
	t.Parallel()
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	for _, tt := range []struct {
		name     string
		setURL   string
		cookie   http.Cookie
		readURL  string
		wantKept bool
	}{
		{"Secure over https", "https://www.example.com/", http.Cookie{Name: "s", Value: "1", Secure: true}, "https://www.example.com/", true},
		{"not Secure over https", "https://www.example.com/", http.Cookie{Name: "s", Value: "1"}, "https://www.example.com/", false},
		{"Secure over http", "http://www.example.com/", http.Cookie{Name: "s", Value: "1", Secure: true}, "https://www.example.com/", false},
		{"not Secure over http", "http://www.example.com/", http.Cookie{Name: "s", Value: "1"}, "http://www.example.com/", false},
		{"Domain is a public suffix", "https://www.example.co.uk/", http.Cookie{Name: "s", Value: "1", Secure: true, Domain: "co.uk"}, "https://other.co.uk/", false},
		{"Domain is a public suffix, same host", "https://www.example.co.uk/", http.Cookie{Name: "s", Value: "1", Secure: true, Domain: "co.uk"}, "https://www.example.co.uk/", false},
		{"Domain below a public suffix", "https://www.example.co.uk/", http.Cookie{Name: "s", Value: "1", Secure: true, Domain: "example.co.uk"}, "https://api.example.co.uk/", true},
		{"Secure cookie is not read over http", "https://www.example.com/", http.Cookie{Name: "s", Value: "1", Secure: true}, "http://www.example.com/", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jar := NewCookieJar()
			c := tt.cookie
			jar.SetCookies(mustURL(tt.setURL), []*http.Cookie{&c})
			got := jar.Cookies(mustURL(tt.readURL))
			if kept := len(got) == 1 && got[0].Name == "s" && got[0].Value == "1"; kept != tt.wantKept || len(got) > 1 {
				t.Fatalf("got cookies %v, want kept %v", got, tt.wantKept)
			}
		})
	}
}

// Through a client: only the Secure cookie comes back, and NewClient sets
// no jar of its own.
func TestCookieJarClient(t *testing.T) {
	t.Parallel()
	var cookies atomic.Value
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/set" {
			http.SetCookie(w, &http.Cookie{Name: "secure", Value: "jwt-1", Path: "/", Secure: true, HttpOnly: true})
			http.SetCookie(w, &http.Cookie{Name: "plain", Value: "jwt-2", Path: "/"})
			return
		}
		cookies.Store(r.Header.Get("Cookie"))
	}))
	client, err := NewClient(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	if client.Jar != nil {
		t.Fatalf("NewClient set Jar %v, want none", client.Jar)
	}
	client.Jar = NewCookieJar()
	for _, path := range []string{"/set", "/echo"} {
		resp, err := client.Get(testutil.HostURL(srv, hostAPI, path))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if got := cookies.Load(); got != "secure=jwt-1" {
		t.Fatalf("server got Cookie %q, want %q", got, "secure=jwt-1")
	}
}
