package securehttptest

// Issuers of the JWTs that the JWT bearer grant and token exchange trade
// for access tokens, and the files a platform keeps them in.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer signs JWTs as a workload's identity provider does: a Kubernetes
// cluster's service account issuer, whose tokens a pod finds in a file
// (TokenFile), or a service account's key, which signs its own assertions
// (securehttp.SignedAssertion with Key). An AuthServer accepts them with
// TrustIssuer(iss.Name, iss.Key().Public()). Its key lives in memory only.
// An Issuer is safe for concurrent use.
type Issuer struct {
	// Name is the iss of its JWTs.
	Name string

	// KeyID is the kid of its JWTs: the RFC 7638 thumbprint of its key.
	KeyID string

	key *ecdsa.PrivateKey
}

// defaultTokenLifetime is the lifetime of an Issuer's JWT without
// TokenLifetime: an hour, as a projected service account token's by
// default.
const defaultTokenLifetime = time.Hour

// NewIssuer returns an Issuer named name, such as
// "https://kubernetes.default.svc", with a new ECDSA P-256 key.
func NewIssuer(t testing.TB, name string) *Issuer {
	t.Helper()
	if name == "" {
		t.Fatalf("securehttptest: NewIssuer: empty name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("securehttptest: NewIssuer: %v", err)
	}
	jwk, err := publicJWK(&key.PublicKey)
	if err != nil {
		t.Fatalf("securehttptest: NewIssuer: %v", err)
	}
	return &Issuer{Name: name, KeyID: thumbprint(jwk), key: key}
}

// Key returns the Issuer's key: for securehttp.SignedAssertion, with
// AssertionClaims{Issuer: iss.Name, KeyID: iss.KeyID}, and its Public
// method for TrustIssuer.
func (i *Issuer) Key() crypto.Signer { return i.key }

// Token returns a new JWT, signed with ES256 and naming KeyID, whose sub is
// subject and aud audience (left out when empty, as a test of a refusal may
// want), with iat and nbf now, exp an hour later, and a new jti. It
// accepts TokenLifetime, Validity, Expired and NotYetValid, which set
// these times otherwise.
func (i *Issuer) Token(t testing.TB, subject, audience string, opts ...Option) string {
	t.Helper()
	s := apply(t, toToken, "Issuer.Token", opts)
	tok, err := i.sign(subject, audience, s)
	if err != nil {
		t.Fatalf("securehttptest: Issuer.Token: %v", err)
	}
	return tok
}

// sign makes a JWT of subject for audience, in the window s sets.
func (i *Issuer) sign(subject, audience string, s settings) (string, error) {
	iat, exp := s.cert.notBefore, s.cert.notAfter
	if iat.IsZero() {
		lifetime := s.auth.lifetime
		if lifetime == 0 {
			lifetime = defaultTokenLifetime
		}
		iat = time.Now()
		exp = iat.Add(lifetime)
	}
	claims := jwt.MapClaims{"iss": i.Name, "iat": iat.Unix(), "nbf": iat.Unix(), "exp": exp.Unix(), "jti": randomID()}
	if subject != "" {
		claims["sub"] = subject
	}
	if audience != "" {
		claims["aud"] = audience
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = i.KeyID
	return tok.SignedString(i.key)
}

// TokenFile writes a new Token to a file in a directory of t's, laid out as
// the kubelet projects a service account token: Path is a symbolic link to
// ..data/token, where ..data links to a directory of the current version,
// and mode 0644. It accepts the options of Token; TokenLifetime holds for
// the file's rotations too.
func (i *Issuer) TokenFile(t testing.TB, subject, audience string, opts ...Option) *TokenFile {
	t.Helper()
	s := apply(t, toToken, "Issuer.TokenFile", opts)
	dir := t.TempDir()
	f := &tokenFile{iss: i, subject: subject, audience: audience, lifetime: s.auth.lifetime, dir: dir}
	if err := f.write(s); err != nil {
		t.Fatalf("securehttptest: Issuer.TokenFile: %v", err)
	}
	path := filepath.Join(dir, projectedName)
	if err := os.Symlink(filepath.Join(dataLink, projectedName), path); err != nil {
		t.Fatalf("securehttptest: Issuer.TokenFile: %v", err)
	}
	return &TokenFile{Path: path, f: f}
}

// TokenFile is a file holding a JWT of an Issuer, which Rotate replaces as
// the kubelet does. A TokenFile is safe for concurrent use.
type TokenFile struct {
	// Path is the file's path, for securehttp.AssertionFile.
	Path string

	f *tokenFile
}

// Rotate writes a new Token of the file's subject and audience, valid from
// now for the file's TokenLifetime or as opts say, and swaps it in as the
// kubelet does: it writes a directory for the new version, points a new
// symbolic link to it, renames that link over ..data, which a reader sees
// change at once, and removes the old version.
func (f *TokenFile) Rotate(t testing.TB, opts ...Option) {
	t.Helper()
	s := apply(t, toToken, "TokenFile.Rotate", opts)
	if s.auth.lifetime == 0 {
		s.auth.lifetime = f.f.lifetime
	}
	if err := f.f.write(s); err != nil {
		t.Fatalf("securehttptest: TokenFile.Rotate: %v", err)
	}
}

// Names in a projected volume, as the kubelet's atomic writer makes them.
const (
	projectedName = "token"
	dataLink      = "..data"
	dataLinkTmp   = "..data_tmp"
)

// tokenFile is the state behind a TokenFile.
type tokenFile struct {
	iss               *Issuer
	subject, audience string
	lifetime          time.Duration // TokenFile's TokenLifetime, or zero
	dir               string

	mu      sync.Mutex
	version int    // versions written
	current string // the directory of the version in use
}

// write writes a new version of the token and makes it current.
func (f *tokenFile) write(s settings) error {
	tok, err := f.iss.sign(f.subject, f.audience, s)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	// The kubelet names a version by its time; the count keeps two
	// versions of one instant apart.
	version := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), f.version)
	if err := os.Mkdir(filepath.Join(f.dir, version), 0o755); err != nil {
		return err
	}
	file := filepath.Join(f.dir, version, projectedName)
	if err := os.WriteFile(file, []byte(tok), 0o644); err != nil {
		return err
	}
	// The kubelet's mode, whatever the umask.
	if err := os.Chmod(file, 0o644); err != nil {
		return err
	}
	tmp := filepath.Join(f.dir, dataLinkTmp)
	if err := os.Symlink(version, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(f.dir, dataLink)); err != nil {
		return err
	}
	old := f.current
	f.current = version
	if old != "" {
		return os.RemoveAll(filepath.Join(f.dir, old))
	}
	return nil
}
