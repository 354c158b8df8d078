package securehttp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"unicode"
)

// OAuthError is an error response of a token endpoint (RFC 6749 section
// 5.2), cleaned and cut short. A field that quotes a credential of the
// request (the secret, the assertion, the proof, the key), whole or in
// part, says "[redacted: the server echoed a credential]" instead.
type OAuthError struct {
	StatusCode  int    // the HTTP status
	Code        string // the "error" value, such as "invalid_client"
	Description string // "error_description", cleaned of control characters and cut short
	URI         string // "error_uri"

	nonceRequested bool   // a DPoP use_dpop_nonce error that brought a nonce
	endpoint       string // the endpoint's scheme, host, port and path, when known
	hint           string // what to check, when the code says
}

func (e *OAuthError) Error() string {
	endpoint := "token endpoint"
	if e.endpoint != "" {
		endpoint += " " + e.endpoint
	}
	msg := fmt.Sprintf("securehttp: %s answered %d %s", endpoint, e.StatusCode, e.Code)
	if e.Description != "" {
		msg += ": " + e.Description
	}
	if e.hint != "" {
		msg += "; " + e.hint
	}
	return msg
}

const (
	maxDescription = 256
	maxErrorCode   = 64
	// echoRedacted replaces server text that quotes a credential.
	echoRedacted = "[redacted: the server echoed a credential]"
	// minEchoRun is the shortest run of a credential's characters taken
	// as an echo of it. Shorter runs of a long random credential turn up
	// in ordinary text by chance; a run this long of a secret is already
	// too much to show. A credential shorter than this counts only whole.
	minEchoRun = 6
	// maxSentBody bounds how much of a sent token request's body is read
	// back to learn its credentials.
	maxSentBody = 64 << 10
)

// parseOAuthError reads an RFC 6749 section 5.2 error response. guard
// knows the credentials the request carried; nil knows none.
func parseOAuthError(status int, data []byte, guard *echoGuard) *OAuthError {
	var r struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		URI         string `json:"error_uri"`
	}
	if err := json.Unmarshal(data, &r); err != nil || r.Error == "" {
		return &OAuthError{StatusCode: status, Code: "(no OAuth error in the response)"}
	}
	return &OAuthError{StatusCode: status, Code: guard.text(r.Error, maxErrorCode),
		Description: guard.text(r.Description, maxDescription), URI: guard.text(r.URI, maxDescription)}
}

// clean keeps server text safe to log: printable characters only, at most n
// bytes. Text that may quote a credential goes through echoGuard.text.
func clean(s string, n int) string { return cut(printable(s), n) }

func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
}

// cut shortens s to at most n bytes, marking the cut.
func cut(s string, n int) string {
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// echoGuard knows the credentials one token request carried, in the forms
// in which a server could quote them back. An authorization server that
// echoes what it received in its error response would otherwise put the
// client secret into every caller's error and into the log. A nil
// *echoGuard knows none.
type echoGuard struct {
	creds   []string
	longest int
}

// sentCredentials returns a guard for the credentials req carried: in its
// Authorization and DPoP headers, and in the credential parameters of its
// form body (read again through GetBody) and of its query.
func sentCredentials(req *http.Request) *echoGuard {
	g := &echoGuard{}
	if req == nil {
		return g
	}
	for _, v := range req.Header.Values("Authorization") {
		g.addAuthorization(v)
	}
	for _, v := range req.Header.Values("Dpop") {
		g.add(v)
	}
	params := []url.Values{}
	if req.URL != nil {
		params = append(params, req.URL.Query())
	}
	if req.GetBody != nil {
		if body, err := req.GetBody(); err == nil && body != nil {
			data, _ := io.ReadAll(io.LimitReader(body, maxSentBody))
			body.Close()
			if form, err := url.ParseQuery(string(data)); err == nil {
				params = append(params, form)
			}
		}
	}
	for _, form := range params {
		for name, values := range form {
			if credentialParam(name) {
				for _, v := range values {
					g.addSecret(v)
				}
			}
		}
	}
	return g
}

// credentialParam reports whether a token request parameter carries a
// credential (RFC 6749, 7521, 7636, 8693).
func credentialParam(name string) bool {
	switch name {
	case "client_secret", "client_assertion", "assertion", "refresh_token", "code", "code_verifier",
		"password", "subject_token", "actor_token":
		return true
	}
	return false
}

// addAuthorization adds an Authorization header's credentials. For Basic,
// that is the secret after the client id, as sent and decoded, and the
// base64 from the first group that encodes a byte of it, so that the
// client id alone does not count as an echo.
func (g *echoGuard) addAuthorization(v string) {
	scheme, cred, _ := strings.Cut(v, " ")
	cred = strings.TrimSpace(cred)
	if !strings.EqualFold(scheme, "Basic") {
		g.add(cred)
		return
	}
	raw, err := base64.StdEncoding.DecodeString(cred)
	i := strings.IndexByte(string(raw), ':')
	if err != nil || i < 0 {
		g.add(cred)
		return
	}
	g.add(cred[i/3*4:])
	secret := string(raw[i+1:])
	g.addSecret(secret)
	if s, err := url.QueryUnescape(secret); err == nil {
		g.addSecret(s)
	}
}

// addSecret adds s as it is, percent-encoded for a query or a path (in
// either case of hex digits) and in base64.
func (g *echoGuard) addSecret(s string) {
	q, p := url.QueryEscape(s), url.PathEscape(s)
	g.add(s, q, p, lowerHexEscapes(q), lowerHexEscapes(p),
		base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s)))
}

// addKey adds the private parts of key, as a JWK, PEM or hex dump would
// show them. A key held elsewhere (a KMS) has none to add.
func (g *echoGuard) addKey(key crypto.Signer) {
	var parts [][]byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if b, err := k.Bytes(); err == nil {
			parts = append(parts, b)
		}
	case ed25519.PrivateKey:
		parts = append(parts, k.Seed(), k)
	case *rsa.PrivateKey:
		for _, n := range append([]*big.Int{k.D}, k.Primes...) {
			parts = append(parts, n.Bytes())
		}
	}
	for _, b := range parts {
		g.add(base64.RawURLEncoding.EncodeToString(b), base64.StdEncoding.EncodeToString(b), hex.EncodeToString(b))
	}
}

func (g *echoGuard) add(creds ...string) {
	for _, c := range creds {
		if c != "" {
			g.creds = append(g.creds, c)
			g.longest = max(g.longest, len(c))
		}
	}
}

// text returns server text fit for an error: printable, cut to n bytes,
// or echoRedacted when it quotes a run of a credential. The text is checked
// past the cut, by the length of the longest credential, so that an echo
// cut short is found whole.
func (g *echoGuard) text(s string, n int) string {
	s = printable(s)
	if g != nil && g.echoes(s[:min(len(s), n+g.longest)]) {
		return echoRedacted
	}
	return cut(s, n)
}

// echoes reports whether s holds a run of minEchoRun bytes of any
// credential, or the whole of a shorter one.
func (g *echoGuard) echoes(s string) bool {
	for _, c := range g.creds {
		w := min(len(c), minEchoRun)
		for i := 0; i+w <= len(c); i++ {
			if strings.Contains(s, c[i:i+w]) {
				return true
			}
		}
	}
	return false
}

// lowerHexEscapes returns s with the hex digits of its percent-escapes in
// lower case, as some servers re-encode them.
func lowerHexEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = lower(b[i+1]), lower(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}
