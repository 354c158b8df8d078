package securehttp

import (
	"net/http"
	"strings"
)

// maxChallengeBytes caps how much of a response's WWW-Authenticate fields
// is examined. Real challenges are a few hundred bytes; a server that sends
// megabytes gets the first 8 KiB read and the rest ignored, so parsing costs
// the same whatever the header's size.
const maxChallengeBytes = 8 << 10

// tokenRejected reports whether a 401 says the bearer token was refused, as
// opposed to asking for another authentication scheme or a different
// request. RFC 6750 section 3.1: error="invalid_token", or a Bearer challenge
// with no error code, or no challenge at all.
func tokenRejected(h http.Header) bool {
	if len(h.Values("Www-Authenticate")) == 0 {
		return true
	}
	_, params, ok := findChallenge(h, "Bearer")
	if !ok {
		return false
	}
	code := params.Get("error")
	return code == "" || code == "invalid_token"
}

// challengeParams is the auth-param list of one challenge, as it appears in
// the header: comma-separated name=value or name="value".
type challengeParams string

// Get returns the value of the auth-param name (compared without case),
// unquoted, or "" when it is absent.
func (p challengeParams) Get(name string) string { return authParam(string(p), name) }

// findChallenge returns the first challenge in h's WWW-Authenticate fields
// whose auth-scheme is one of schemes (compared without case): the scheme
// as the server wrote it, and its parameters. It reads the fields in order,
// at most maxChallengeBytes in all, and stops at the first match, in time
// linear in what it reads. One field may hold several comma-separated
// challenges (RFC 9110 section 11.6.1), and an intermediary may join
// separate header lines into one: an element starts a new challenge when it
// begins with an auth-scheme rather than with name=value.
func findChallenge(h http.Header, schemes ...string) (scheme string, params challengeParams, ok bool) {
	budget := maxChallengeBytes
	for _, field := range h.Values("Www-Authenticate") {
		if budget <= 0 {
			break
		}
		if len(field) > budget {
			field = field[:budget]
		}
		budget -= len(field)
		if scheme, params, ok = scanChallenges(field, schemes); ok {
			return scheme, params, true
		}
	}
	return "", "", false
}

// scanChallenges is findChallenge for one field value. Each element is
// visited once, and a challenge's parameters are a slice of field, never a
// copy.
func scanChallenges(field string, schemes []string) (string, challengeParams, bool) {
	matched := false
	var scheme string
	paramStart := 0
	for pos := 0; pos < len(field); {
		start := pos
		elem, _ := cutParam(field[pos:])
		pos += len(elem) + 1 // past the comma, or past the end
		word, after := cutScheme(elem)
		if word == "" {
			continue
		}
		isParam := strings.Contains(word, "=") || strings.HasPrefix(after, "=")
		if isParam {
			continue // a parameter of the challenge before it
		}
		if matched {
			// A new challenge ends the matched one's parameters.
			return scheme, challengeParams(field[paramStart:start]), true
		}
		for _, s := range schemes {
			if strings.EqualFold(word, s) {
				matched, scheme = true, word
				paramStart = start + len(elem) - len(after)
				if after == "" {
					paramStart = min(start+len(elem), len(field))
				}
				break
			}
		}
	}
	if matched {
		return scheme, challengeParams(field[paramStart:]), true
	}
	return "", "", false
}

// cutScheme splits a challenge into its auth-scheme and the rest, with
// leading spaces trimmed from both and trailing ones from the rest kept, so
// that rest stays a suffix of c.
func cutScheme(c string) (scheme, rest string) {
	c = strings.TrimLeft(c, " \t")
	i := strings.IndexAny(c, " \t")
	if i < 0 {
		return strings.TrimRight(c, " \t"), ""
	}
	return c[:i], strings.TrimLeft(c[i+1:], " \t")
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
