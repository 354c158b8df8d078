package securehttp

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testpki"
)

// The fuzz targets below run their seeds with every `go test`; .ci/fuzz also
// fuzzes each of them for a bounded time.

func FuzzParsePin(f *testing.F) {
	digest := sha256.Sum256([]byte("securehttp fuzz"))
	spki := "sha256/" + base64.StdEncoding.EncodeToString(digest[:])
	for _, s := range []string{
		spki,
		"sha256/r/mIkG3eEpVdm+u/ko/cwxzOMo1bk4TyHIlByibiA5E=",
		"sha256/" + base64.RawStdEncoding.EncodeToString(digest[:]), // unpadded
		"sha256/" + base64.URLEncoding.EncodeToString(digest[:]),    // URL alphabet
		"sha256/" + spki[7:50] + "F",                                // non-zero padding bits
		"sha256/" + spki[7:30] + "\n" + spki[30:],                   // embedded newline
		"SHA256/" + spki[7:],
		"sha256//" + spki[7:],
		`pin-sha256="` + spki[7:] + `"`,
		"sha256 Fingerprint=" + fzColonHex(digest[:]),
		"SHA1 Fingerprint=" + fzColonHex(digest[:20]),
		spki[7:],
		spki + ";" + spki,
		"sha1/" + spki[7:],
		"sha256/",
		"sha256//",
		"/",
		hex.EncodeToString(digest[:]),
		strings.ToUpper(hex.EncodeToString(digest[:])),
		fzColonHex(digest[:]),
		fzColonHex(digest[:])[1:],
		":" + hex.EncodeToString(digest[:]),
		strings.Repeat(":", 63),
		strings.Repeat("zz", 32),
		strings.Repeat("é", 32),
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePin(s)
		if err != nil {
			if p != (pin{}) {
				t.Errorf("parsePin(%q) returned %v with error %v, want the zero pin", s, p, err)
			}
			return
		}
		switch p.kind {
		case pinSPKI:
			// The canonical form must read back as the same digest.
			canon := "sha256/" + base64.StdEncoding.EncodeToString(p.digest[:])
			again, err := parsePin(canon)
			if err != nil || again != p {
				t.Errorf("SPKI pin %q re-encoded as %q reads back as %v, %v; want %v", s, canon, again, err, p)
			}
		case pinCert:
			// The hex may follow openssl's "sha256 Fingerprint=" label.
			h := strings.ReplaceAll(s, ":", "")
			if _, after, ok := strings.Cut(h, "="); ok {
				h = after
			}
			// Surrounding space and a trailing ";" are dropped, as pasted
			// input has them.
			h = strings.TrimSpace(strings.Trim(strings.TrimSpace(h), ";"))
			if len(h) != 2*sha256.Size {
				t.Errorf("fingerprint %q has %d hex digits, want %d", s, len(h), 2*sha256.Size)
			}
			if got := hex.EncodeToString(p.digest[:]); got != strings.ToLower(h) {
				t.Errorf("fingerprint %q decoded to %s", s, got)
			}
			again, err := parsePin(fzColonHex(p.digest[:]))
			if err != nil || again != p {
				t.Errorf("fingerprint %q in openssl form reads back as %v, %v; want %v", s, again, err, p)
			}
		default:
			t.Errorf("parsePin(%q) returned kind %d", s, p.kind)
		}
	})
}

// fzColonHex formats b as openssl prints fingerprints: AB:CD:...
func fzColonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = strings.ToUpper(hex.EncodeToString([]byte{c}))
	}
	return strings.Join(parts, ":")
}

func FuzzHostPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"api.example.com", "api.example.com"},
		{"API.Example.COM.", "api.example.com"},
		{"*.example.com", "example.com"},
		{"*.example.com", "a.example.com"},
		{"*.example.com", "a.b.example.com"},
		{"*.example.com", ".example.com"},
		{"**.example.com", "example.com"},
		{"**.example.com", "a.b.example.com"},
		{"**.example.com", "xexample.com"},
		{"*.", "a"},
		{"**.", "a"},
		{"*", "a"},
		{"a.*.com", "a.b.com"},
		{"*.*.example.com", "a.b.example.com"},
		{"127.0.0.1", "127.0.0.1"},
		{"[::1]", "::1"},
		{"::FFFF:7F00:1", "127.0.0.1"},
		{"*.127.0.0.1", "1.127.0.0.1"},
		{"*.[::1]", "a.::1"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"XN--BCHER-KVA.example", "bücher.example"},
		{"\u212a.example", "k.example"}, // Kelvin sign
		{"ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"},
		{"example.com..", "example.com."},
		{"https://example.com", "example.com"},
		{"example.com:443", "example.com"},
		{"exa mple.com", "exa mple.com"},
		{"", ""},
		{".", "."},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, host string) {
		if h, err := normalizeHost(host); err == nil {
			// Matching ignores ASCII case: the swapped name normalises to
			// the same host.
			swapped, err := normalizeHost(fzSwapCase(host))
			if err != nil || swapped != h {
				t.Errorf("normalizeHost(%q) = %q but normalizeHost(%q) = %q, %v", host, h, fzSwapCase(host), swapped, err)
			}
		}
		p, err := parseHostPattern(pattern)
		if err != nil {
			return
		}
		if q, err := parseHostPattern(fzSwapCase(pattern)); err != nil || q != p {
			t.Errorf("parseHostPattern(%q) = %+v but parseHostPattern(%q) = %+v, %v", pattern, p, fzSwapCase(pattern), q, err)
		}
		if h, err := normalizeHost(host); err == nil {
			_ = p.match(h)
		}
		switch p.wild {
		case 0:
			n, err := normalizeHost(pattern)
			if err != nil || !p.match(n) {
				t.Errorf("pattern %q does not match its own normalised name %q (%v)", pattern, n, err)
			}
		case 1:
			if p.match(p.base) {
				t.Errorf("pattern %q matches its apex %q", pattern, p.base)
			}
			if !p.match("x." + p.base) {
				t.Errorf("pattern %q does not match %q", pattern, "x."+p.base)
			}
			if p.match("x.y." + p.base) {
				t.Errorf("pattern %q matches two labels: %q", pattern, "x.y."+p.base)
			}
		case 2:
			if !p.match(p.base) || !p.match("x.y."+p.base) {
				t.Errorf("pattern %q does not match its apex %q and the names below it", pattern, p.base)
			}
		default:
			t.Errorf("parseHostPattern(%q) gave wild %d", pattern, p.wild)
		}
		if p.match("x" + p.base) {
			t.Errorf("pattern %q matches %q, which only ends with its name", pattern, "x"+p.base)
		}
	})
}

// fzSwapCase swaps the case of ASCII letters only.
func fzSwapCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

// fzJWT returns a JWT with the given header and claims and a signature
// that nothing here checks.
func fzJWT(header, claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + ".c2lnbmF0dXJl"
}

// fzTokens are seeds of FuzzTokenParse whose verdict is known: whether parse
// accepts them without a Keyfunc, and the expiry it must then read.
var fzTokens = []struct {
	raw    string
	accept bool
	exp    int64 // Unix seconds; 0 for none
}{
	{"opaque-token-1234567890", true, 0},
	{fzJWT(`{"alg":"HS256","typ":"JWT"}`, `{"exp":4102444800,"iat":1700000000}`), true, 4102444800},
	{fzJWT(`{"alg":"none"}`, `{"exp":4102444800}`), true, 4102444800},
	{"a b", false, 0},
	{"token\r\nX-Injected: 1", false, 0},
	{"===", false, 0},
	{strings.Repeat("a", maxTokenLen+1), false, 0},
	{"", false, 0},
}

func FuzzTokenParse(f *testing.F) {
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(`{"alg":"HS256","typ":"JWT"}`))
	known := make(map[string]int, len(fzTokens))
	for i, tk := range fzTokens {
		f.Add(tk.raw)
		known[tk.raw] = i
	}
	for _, s := range []string{
		// Refused today, by design (TestRefreshFailureWithoutValidToken):
		// an unknown or missing alg, and a non-JWT with two dots (PASETO).
		fzJWT(`{"alg":"ES256K","typ":"JWT"}`, `{"exp":4102444800}`),
		fzJWT(`{"typ":"JWT"}`, `{"exp":4102444800}`),
		"v2.local.QAxIpVe-ECVNI1z4xQbm_qQYomyT3h8FtV8bxkz8pBJWkT8f7HtlOpbroPDEZUKop_vaglyp76CzYy375cHmKCW8e1CCkV0Lflu4GTDyXMqQdpZMM1E6OaoQW27gaRSvWBrR3IgbFIa0AkuUFw",
		"abc",
		"abc===",
		strings.Repeat("a", maxTokenLen),
		header + "." + enc([]byte(`{"exp":1,"nbf":2}`)) + ".c2ln",
		header + "." + enc([]byte(`{"exp":"not a number but a long secret value"}`)) + ".c2ln",
		header + "." + enc([]byte(`{"exp":1e300,"iat":-1e300}`)) + ".c2ln",
		header + "." + enc([]byte(`{"aud":[1,2],"sub":{}}`)) + ".c2ln",
		header + "." + enc([]byte(`[]`)) + ".c2ln",
		enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{}`)) + ".",
		enc([]byte(`{}`)) + "." + enc([]byte(`{}`)) + ".",
		"a.b.c",
		"..",
		"x.malformed.y",
		"characters not allowed in a bearer token",
	} {
		f.Add(s)
	}
	ts, err := newTestTokenSource(&Bearer{Store: NewMemoryStore(Token{}), Hosts: []string{"a.test"}}, time.Now)
	if err != nil {
		f.Fatalf("newTokenSource: %v", err)
	}
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := ts.parse(Token{Value: raw}, now)
		if i, ok := known[raw]; ok {
			want := fzTokens[i]
			switch {
			case want.accept && err != nil:
				t.Errorf("parse refused seed %d: %v", i, err)
			case !want.accept && err == nil:
				t.Errorf("parse accepted seed %d, want an error", i)
			case want.accept && want.exp != 0 && !tok.exp.Equal(time.Unix(want.exp, 0)):
				t.Errorf("parse read expiry %v from seed %d, want %v", tok.exp, i, time.Unix(want.exp, 0).UTC())
			}
		}
		if err != nil {
			if tok != nil {
				t.Errorf("parse returned a token with error %v", err)
			}
			if len(raw) > 8 && fzEchoes(ts, raw, now) {
				t.Errorf("the error for a %d-byte token contains the token: %v", len(raw), err)
			}
			return
		}
		if tok == nil || tok.raw != raw {
			t.Fatal("parse accepted the token but did not return it as the token's raw value")
		}
		if !isToken68(raw) || len(raw) > maxTokenLen {
			t.Errorf("parse accepted a %d-byte token that is not a b64token of at most %d bytes", len(raw), maxTokenLen)
		}
		if tok.lifetime < 0 {
			t.Errorf("token lifetime %v, want >= 0", tok.lifetime)
		}
	})
}

// fzEchoes reports whether parse's error for raw contains raw, and does so
// again for raw with its first byte changed, so that an input that merely
// equals part of a fixed message ("characters not allowed ...") does not
// count as an echo.
func fzEchoes(ts *tokenSource, raw string, now time.Time) bool {
	if _, err := ts.parse(Token{Value: raw}, now); err == nil || !strings.Contains(err.Error(), raw) {
		return false
	}
	alt := "a" + raw[1:]
	if raw[0] == 'a' {
		alt = "b" + raw[1:]
	}
	_, err := ts.parse(Token{Value: alt}, now)
	return err != nil && strings.Contains(err.Error(), alt)
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{
		"", "0", "120", " 120 ", "-1", "+5", "1.5", "1e3", "0x10", "5\x00",
		"18446744073709551615", "18446744073709551616", "99999999999999999999999",
		"2147483648", "9223372036",
		"Sun, 06 Nov 1994 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994",
		"Fri, 31 Dec 9999 23:59:59 GMT",
		"Mon, 01 Jan 0001 00:00:00 GMT",
		"Sun, 06 Nov 1994 08:49:37 PST",
	} {
		f.Add(s, int64(1700000000))
	}
	f.Add("Fri, 31 Dec 9999 23:59:59 GMT", int64(-1<<62))
	f.Add("Mon, 01 Jan 0001 00:00:00 GMT", int64(1<<62))
	f.Fuzz(func(t *testing.T, v string, unix int64) {
		d, ok := parseRetryAfter(v, time.Unix(unix, 0))
		if d < 0 {
			t.Errorf("parseRetryAfter(%q) = %v, want >= 0", v, d)
		}
		if !ok && d != 0 {
			t.Errorf("parseRetryAfter(%q) = %v, false; want 0 when not ok", v, d)
		}
		if ok && strings.TrimSpace(v) != "" && fzIsDigit(strings.TrimSpace(v)[0]) && d > maxRetryAfterSeconds*time.Second {
			t.Errorf("parseRetryAfter(%q) = %v, want at most %v for a number of seconds", v, d, maxRetryAfterSeconds*time.Second)
		}
	})
}

func fzIsDigit(c byte) bool { return '0' <= c && c <= '9' }

// fzChallenges lists single WWW-Authenticate lines among FuzzAuthParam's
// seeds, with what tokenRejected must answer. A field value may hold several
// comma-separated challenges (RFC 9110 section 11.6.1), and an intermediary
// may join separate lines into one.
var fzChallenges = []struct {
	header   string
	rejected bool
}{
	{`Bearer`, true},
	{`Bearer error="invalid_token"`, true},
	{`Bearer realm="api", error="insufficient_scope", error_description="needs \"admin\", sorry"`, false},
	{`bearer ERROR=invalid_token`, true},
	{`Basic realm="x"`, false},
	{`Basic realm="x", Bearer error="invalid_request"`, false},
	{`Basic realm="x", Bearer error="invalid_token"`, true},
	{`Basic realm="x", Bearer`, true},
	{`Bearer error="invalid_token", Basic realm="x"`, true},
	{`Bearer realm="x", Basic realm="y"`, true},
	{`Bearer realm="x", Basic, error="invalid_request"`, true}, // the error is Basic's
	{`DPoP error="use_dpop_nonce"`, false},
}

func FuzzAuthParam(f *testing.F) {
	want := make(map[string]bool, len(fzChallenges))
	for _, c := range fzChallenges {
		f.Add(c.header, "error")
		want[c.header] = c.rejected
	}
	for _, s := range [][2]string{
		{`Bearer`, "error"},
		{`Bearer error="invalid_token"`, "error"},
		{`Bearer realm="api", error="insufficient_scope", error_description="needs \"admin\", sorry"`, "error"},
		{`bearer ERROR=invalid_token`, "error"},
		{`Bearer error="invalid_token`, "error"},
		{`Bearer error=""`, "error"},
		{`Bearer ,,,error=,`, "error"},
		{`Bearer a="\`, "a"},
		{`Bearer a="\\",error=invalid_request`, "error"},
		{`Basic realm="x", Bearer error="invalid_request"`, "error"},
		{`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`, "title"},
		{`Bearer` + "\t" + `error="invalid_request"`, "error"},
		{`  Bearer   error = "invalid_token"  `, "error"},
		{`DPoP error="use_dpop_nonce"`, "error"},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, header, name string) {
		h := http.Header{}
		h.Add("Www-Authenticate", header)
		if w, ok := want[header]; ok && tokenRejected(h) != w {
			t.Errorf("tokenRejected(%q) = %v, want %v", header, !w, w)
		}
		if tokenRejected(h) && !strings.Contains(strings.ToLower(header), "bearer") {
			t.Errorf("tokenRejected(%q) = true for a challenge that is not Bearer", header)
		}
		first, rest := cutParam(header)
		if !(first == header && rest == "") && first+","+rest != header {
			t.Errorf("cutParam(%q) = %q, %q, which do not make up the input", header, first, rest)
		}
		if v := authParam(header, name); !strings.Contains(header, v) {
			t.Errorf("authParam(%q, %q) = %q, not part of the input", header, name, v)
		}
	})
}

// fzStaplePKI is a chain with a must-staple leaf and OCSP responses for it,
// generated once per test binary.
type fzStaplePKI struct {
	root, inter, leaf *testpki.Cert
	good, revoked     []byte
	seeds             [][]byte
}

var (
	fzStapleOnce sync.Once
	fzStapleVal  *fzStaplePKI
)

func fzStaple(tb testing.TB) *fzStaplePKI {
	tb.Helper()
	fzStapleOnce.Do(func() {
		now := time.Now()
		root := testpki.Must(testpki.NewRoot("fuzz root", testpki.Options{}))
		inter := testpki.Must(root.NewIntermediate("fuzz intermediate", testpki.Options{}))
		leaf := testpki.Must(inter.NewLeaf("fuzz.test", testpki.Options{DNSNames: []string{"fuzz.test"}, MustStaple: true}))
		other := testpki.Must(inter.NewLeaf("other.test", testpki.Options{DNSNames: []string{"other.test"}}))
		stranger := testpki.Must(testpki.Must(root.NewIntermediate("another intermediate", testpki.Options{})).NewLeaf("fuzz.test", testpki.Options{}))
		resp := func(c *testpki.Cert, st testpki.OCSPStatus, this, next time.Time) []byte {
			der, err := c.OCSPResponse(st, this, next)
			if err != nil {
				panic(err)
			}
			return der
		}
		p := &fzStaplePKI{
			root: root, inter: inter, leaf: leaf,
			good:    resp(leaf, testpki.OCSPGood, now.Add(-time.Hour), now.Add(time.Hour)),
			revoked: resp(leaf, testpki.OCSPRevoked, now.Add(-time.Hour), now.Add(time.Hour)),
		}
		p.seeds = [][]byte{
			p.good,
			p.revoked,
			resp(leaf, testpki.OCSPGood, now.Add(-48*time.Hour), now.Add(-24*time.Hour)), // expired
			resp(leaf, testpki.OCSPGood, now.Add(24*time.Hour), now.Add(48*time.Hour)),   // not yet valid
			resp(leaf, testpki.OCSPGood, now.Add(-30*24*time.Hour), time.Time{}),         // stale, no nextUpdate
			resp(other, testpki.OCSPGood, now.Add(-time.Hour), now.Add(time.Hour)),       // another certificate
			resp(stranger, testpki.OCSPGood, now.Add(-time.Hour), now.Add(time.Hour)),    // another issuer
			p.good[:len(p.good)/2],          // truncated
			append(slices.Clone(p.good), 0), // trailing data
			{0x30, 0x03, 0x0a, 0x01, 0x01},  // malformedRequest
			{0x30, 0x03, 0x0a, 0x01, 0x03},  // tryLater
			{0x30, 0x03, 0x0a, 0x01, 0x00},  // successful, no body
			{0x30, 0x00},
			{0x30, 0x80, 0x00, 0x00}, // BER indefinite length
			{},
		}
		fzStapleVal = p
	})
	return fzStapleVal
}

func FuzzOCSPStaple(f *testing.F) {
	p := fzStaple(f)
	for _, s := range p.seeds {
		f.Add(s)
	}
	tr, err := newTransport(Config{})
	if err != nil {
		f.Fatalf("NewTransport: %v", err)
	}
	chains := [][]*x509.Certificate{{p.leaf.Cert, p.inter.Cert, p.root.Cert}}
	f.Fuzz(func(t *testing.T, staple []byte) {
		err := tr.verifyStaple(staple, p.leaf.Cert, p.inter.Cert, true)
		fzCheckStapleErr(t, "verifyStaple", p, staple, err)

		err = tr.checkStaple(tls.ConnectionState{OCSPResponse: staple}, chains)
		if len(staple) == 0 {
			// The leaf is must-staple: no staple is an error.
			if !errors.Is(err, ErrOCSPStaple) {
				t.Errorf("checkStaple with no staple for a must-staple leaf: got %v, want ErrOCSPStaple", err)
			}
			return
		}
		fzCheckStapleErr(t, "checkStaple", p, staple, err)
	})
}

// fzCheckStapleErr holds a staple verdict to what the bytes are: only the
// issuer's own good response passes, only its revoked one is ErrRevoked, and
// anything else is ErrOCSPStaple.
func fzCheckStapleErr(t *testing.T, fn string, p *fzStaplePKI, staple []byte, err error) {
	t.Helper()
	switch {
	case bytes.Equal(staple, p.good):
		if err != nil {
			t.Errorf("%s refused the issuer's good response: %v", fn, err)
		}
	case bytes.Equal(staple, p.revoked):
		if !errors.Is(err, ErrRevoked) {
			t.Errorf("%s on the issuer's revoked response: got %v, want ErrRevoked", fn, err)
		}
	case err == nil:
		t.Errorf("%s accepted %d bytes that are not the issuer's good response: %x", fn, len(staple), staple)
	case errors.Is(err, ErrRevoked):
		t.Logf("%s reports revoked for bytes other than the issuer's revoked response (a re-encoding of it?): %x", fn, staple)
	case !errors.Is(err, ErrOCSPStaple):
		t.Errorf("%s: got %v, want ErrOCSPStaple", fn, err)
	}
}

func FuzzMustStaple(f *testing.F) {
	for _, s := range [][]byte{
		{0x30, 0x03, 0x02, 0x01, 0x05},                            // status_request
		{0x30, 0x06, 0x02, 0x01, 0x11, 0x02, 0x01, 0x05},          // status_request_v2, status_request
		{0x30, 0x03, 0x02, 0x01, 0x11},                            // status_request_v2 only
		{0x30, 0x00},                                              // no feature
		{0x30, 0x00, 0x02, 0x01, 0x05},                            // status_request after the list
		{0x30, 0x03, 0x02, 0x01, 0x05, 0x00},                      // trailing byte
		{0x30, 0x0b, 0x02, 0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x05}, // integer too large for int
		{0x31, 0x03, 0x02, 0x01, 0x05},                            // SET instead of SEQUENCE
		{0x02, 0x01, 0x05},                                        // bare INTEGER
		{},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		cert := &x509.Certificate{Extensions: []pkix.Extension{{Id: oidTLSFeature, Value: value}}}
		got := mustStaple(cert)
		var features []int
		rest, err := asn1.Unmarshal(value, &features)
		switch {
		case err != nil || len(rest) > 0:
			// Not a well-formed SEQUENCE OF INTEGER: the strictest reading.
			if !got {
				t.Errorf("mustStaple(% x) = false for an unreadable feature list, want true", value)
			}
		case got != slices.Contains(features, featureStatusRequest):
			t.Errorf("mustStaple(% x) = %v for features %v", value, got, features)
		}
	})
}
