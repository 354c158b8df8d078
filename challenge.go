package securehttp

import (
	"net/http"
	"strings"
)

// tokenRejected reports whether a 401 says the bearer token was refused, as
// opposed to asking for another authentication scheme or a different
// request. RFC 6750 section 3.1: error="invalid_token", or a Bearer challenge
// with no error code, or no challenge at all.
func tokenRejected(h http.Header) bool {
	fields := h.Values("Www-Authenticate")
	if len(fields) == 0 {
		return true
	}
	for _, field := range fields {
		for _, c := range splitChallenges(field) {
			scheme, params := cutScheme(c)
			if !strings.EqualFold(scheme, "Bearer") {
				continue
			}
			code := authParam(params, "error")
			return code == "" || code == "invalid_token"
		}
	}
	return false
}

// splitChallenges splits a WWW-Authenticate field value into its
// challenges. One value may hold several, comma-separated like their
// parameters (RFC 9110 section 11.6.1), and an intermediary may join
// separate header lines into one: an element starts a new challenge when it
// begins with an auth-scheme rather than with name=value.
func splitChallenges(field string) []string {
	var out []string
	for rest := field; rest != ""; {
		var elem string
		elem, rest = cutParam(rest)
		elem = strings.TrimSpace(elem)
		if elem == "" {
			continue
		}
		word, after := cutScheme(elem)
		isParam := strings.Contains(word, "=") || strings.HasPrefix(after, "=")
		if isParam && len(out) > 0 {
			out[len(out)-1] += ", " + elem
			continue
		}
		out = append(out, elem)
	}
	return out
}

// cutScheme splits a challenge into its auth-scheme and the rest.
func cutScheme(c string) (scheme, rest string) {
	c = strings.TrimSpace(c)
	i := strings.IndexAny(c, " \t")
	if i < 0 {
		return c, ""
	}
	return c[:i], strings.TrimSpace(c[i+1:])
}

// authParam returns the value of the auth-param name in params, a
// comma-separated list of name=value or name="value".
func authParam(params, name string) string {
	for params != "" {
		var part string
		part, params = cutParam(params)
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// cutParam splits off the first comma-separated element, honouring quotes.
func cutParam(s string) (first, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case '\\':
			i++
		case ',':
			if !quoted {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}
