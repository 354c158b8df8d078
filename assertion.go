package securehttp

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Assertion returns a JWT for a token request: a client assertion, the
// JWTBearer grant's assertion, or a token to exchange. It is called for
// each token request and must be safe for concurrent use.
type Assertion func(ctx context.Context) (string, error)

// AssertionFile reads a JWT from a file that a platform keeps fresh, such
// as a Kubernetes projected service account token: again when the file
// changes, and never an expired JWT (see docs/no-secrets.md).
func AssertionFile(path string) Assertion {
	return newAssertionFile(path, time.Now).get
}

// SignedAssertion signs a new JWT with key for each call (RFC 7523
// section 3), with a fresh jti.
func SignedAssertion(key crypto.Signer, claims AssertionClaims) Assertion {
	return signedAssertion(key, claims, time.Now)
}

// AssertionClaims are the claims of a SignedAssertion.
type AssertionClaims struct {
	Issuer, Subject, Audience, KeyID string // Audience: the token endpoint URL when empty

	Lifetime time.Duration // zero: 60 s
	Extra    map[string]any
}

// Format prints c without the values of Extra, whatever the verb.
func (c AssertionClaims) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "securehttp.AssertionClaims{Issuer: %q, Subject: %q, Audience: %q, KeyID: %q, Lifetime: %s, Extra: %q}",
		c.Issuer, c.Subject, shownURL(c.Audience), c.KeyID, c.Lifetime, slices.Sorted(maps.Keys(c.Extra)))
}

// MarshalJSON encodes c as Format shows it.
func (c AssertionClaims) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Issuer   string   `json:"issuer,omitempty"`
		Subject  string   `json:"subject,omitempty"`
		Audience string   `json:"audience,omitempty"`
		KeyID    string   `json:"key_id,omitempty"`
		Lifetime string   `json:"lifetime"`
		Extra    []string `json:"extra,omitempty"`
	}{c.Issuer, c.Subject, shownURL(c.Audience), c.KeyID, c.Lifetime.String(), slices.Sorted(maps.Keys(c.Extra))})
}

// maxAssertionFile bounds an assertion file: a JWT of at most maxTokenLen,
// and a line break.
const maxAssertionFile = maxTokenLen + 2

var (
	errAssertionExpired = errors.New("the JWT in it has expired")
	errNotAJWT          = errors.New("it does not hold a JWT")
)

// assertionFile is the state behind an AssertionFile: the JWT last read,
// and which version of the file it came from.
type assertionFile struct {
	path string
	now  func() time.Time
	lock chan struct{} // held while the file is checked or read

	jwt   string      // the JWT last read; "" before the first read
	info  fs.FileInfo // the file it was read from, as fstat saw it
	exp   time.Time   // its expiry; zero when it has none
	until time.Time   // when it stops being handed out; zero for never
	reads int         // files read, for tests
}

func newAssertionFile(path string, now func() time.Time) *assertionFile {
	return &assertionFile{path: path, now: now, lock: make(chan struct{}, 1)}
}

// get returns the JWT in the file. The file is read again when a stat shows
// that it changed (Kubernetes swaps a symbolic link to a new file), and when
// the JWT last read is about to expire; otherwise a call costs a stat. A JWT
// in its last moments (as a token is, see token.usableUntil) is never
// returned: an error names the file and the expiry instead.
func (a *assertionFile) get(ctx context.Context) (string, error) {
	select {
	case a.lock <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-a.lock }()
	now := a.now()
	if a.jwt != "" && (a.until.IsZero() || now.Before(a.until)) {
		if info, err := os.Stat(a.path); err == nil && sameVersion(info, a.info) {
			return a.jwt, nil
		}
	}
	data, info, err := readBoundedFile(a.path, maxAssertionFile, ErrInsecureTokenFile)
	if err != nil {
		return "", a.fail(err)
	}
	a.reads++
	s := strings.TrimSpace(string(data))
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(s, &claims); err != nil {
		// The parser's message may quote the file's content.
		return "", a.fail(errNotAJWT)
	}
	var exp, until time.Time
	if claims.ExpiresAt != nil {
		exp = claims.ExpiresAt.Time
		tok := token{exp: exp}
		if claims.IssuedAt != nil {
			tok.lifetime = exp.Sub(claims.IssuedAt.Time)
		}
		until = tok.usableUntil()
		if !now.Before(until) {
			return "", a.fail(fmt.Errorf("%w at %s", errAssertionExpired, exp.UTC().Format(time.RFC3339)))
		}
	}
	a.jwt, a.info, a.exp, a.until = s, info, exp, until
	return s, nil
}

// fail forgets the JWT last read, which the file no longer gives, and
// names the file in err.
func (a *assertionFile) fail(err error) error {
	a.jwt, a.info = "", nil
	return &fileError{path: a.path, err: err}
}

// fileError is a failure to use an assertion file: which file, and why.
type fileError struct {
	path string
	err  error
}

func (e *fileError) Error() string {
	return "securehttp: assertion file " + e.path + ": " + causeText(e.err)
}
func (e *fileError) Unwrap() error { return e.err }

// sameVersion reports whether two stats show one version of a file: the
// same file, neither rewritten nor replaced.
func sameVersion(a, b fs.FileInfo) bool {
	return b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// signedAssertion is SignedAssertion with a clock.
func signedAssertion(key crypto.Signer, claims AssertionClaims, now func() time.Time) Assertion {
	method, err := signingMethodFor(key)
	if err == nil {
		err = checkAssertionClaims(claims)
	}
	claims.Extra = maps.Clone(claims.Extra)
	lifetime := claims.Lifetime
	if lifetime == 0 {
		lifetime = assertionLifetime
	}
	return func(ctx context.Context) (string, error) {
		if err != nil {
			return "", fmt.Errorf("securehttp: SignedAssertion: %w", err)
		}
		aud := claims.Audience
		if aud == "" {
			aud = assertionAudience(ctx)
		}
		if aud == "" {
			return "", errors.New("securehttp: SignedAssertion: no Audience, and not called for a token request")
		}
		at := now()
		m := jwt.MapClaims{}
		maps.Copy(m, claims.Extra)
		m["iss"], m["sub"], m["aud"] = claims.Issuer, claims.Subject, aud
		m["iat"], m["exp"], m["jti"] = at.Unix(), at.Add(lifetime).Unix(), randomID()
		t := jwt.NewWithClaims(method, m)
		if claims.KeyID != "" {
			t.Header["kid"] = claims.KeyID
		}
		s, err := t.SignedString(key)
		if err != nil {
			return "", wrap("securehttp: SignedAssertion", err)
		}
		return s, nil
	}
}

// checkAssertionClaims refuses claims that cannot make a JWT that a server
// accepts.
func checkAssertionClaims(c AssertionClaims) error {
	if c.Issuer == "" || c.Subject == "" {
		return errors.New("AssertionClaims needs an Issuer and a Subject")
	}
	if c.Lifetime < 0 {
		return errors.New("AssertionClaims.Lifetime must not be negative")
	}
	for _, name := range []string{"iss", "sub", "aud", "iat", "exp", "jti"} {
		if _, ok := c.Extra[name]; ok {
			return fmt.Errorf("AssertionClaims.Extra sets %q, which SignedAssertion sets", name)
		}
	}
	if _, err := json.Marshal(c.Extra); err != nil {
		return errors.New("AssertionClaims.Extra does not encode as JSON")
	}
	return nil
}

// audienceKey is the context key of the token endpoint that a token
// request is for, the audience of a SignedAssertion that names none.
type audienceKey struct{}

func withAssertionAudience(ctx context.Context, endpoint string) context.Context {
	return context.WithValue(ctx, audienceKey{}, endpoint)
}

func assertionAudience(ctx context.Context) string {
	s, _ := ctx.Value(audienceKey{}).(string)
	return s
}
