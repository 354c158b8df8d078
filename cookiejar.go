package securehttp

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"

	"golang.org/x/net/publicsuffix"
)

// NewCookieJar returns a cookie jar for use as http.Client.Jar. It follows
// the public suffix list, so a site cannot set cookies for a whole suffix
// such as co.uk, and it keeps only cookies marked Secure received over https,
// so that a session token delivered by cookie is never stored from an
// insecure Set-Cookie. NewClient sets no jar on its own.
func NewCookieJar() http.CookieJar {
	jar, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List}) // never fails
	return secureJar{jar}
}

type secureJar struct{ jar *cookiejar.Jar }

func (j secureJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	if u.Scheme != "https" {
		return
	}
	keep := make([]*http.Cookie, 0, len(cookies))
	for _, c := range cookies {
		if c.Secure {
			keep = append(keep, c)
		}
	}
	j.jar.SetCookies(u, keep)
}

func (j secureJar) Cookies(u *url.URL) []*http.Cookie { return j.jar.Cookies(u) }
