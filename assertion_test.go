package securehttp

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// cluster plays a Kubernetes control plane as far as a pod's projected
// service account token goes: an issuer that signs tokens (RS256, as
// Kubernetes does) and a kubelet that writes them into the pod's volume as
// its AtomicWriter does: the file is a symbolic link through "..data" to a
// directory of the moment, and a new token is a new directory and a swap
// of "..data".
type cluster struct {
	issuer string
	key    *rsa.PrivateKey
	kid    string
	dir    string // the projected volume

	mu      sync.Mutex
	written int
}

func newCluster(t *testing.T, issuer string) *cluster {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{issuer: issuer, key: key, kid: randomID()[:8], dir: t.TempDir()}
}

// path is the token file, as a pod is given it.
func (c *cluster) path() string { return filepath.Join(c.dir, "token") }

// token signs a service account token for sub and aud, valid from iat for
// lifetime.
func (c *cluster) token(t testing.TB, sub, aud string, iat time.Time, lifetime time.Duration) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": c.issuer, "sub": sub, "aud": []string{aud}, "iat": iat.Unix(), "nbf": iat.Unix(),
		"exp": iat.Add(lifetime).Unix(), "jti": randomID(),
		"kubernetes.io": map[string]any{"namespace": "default", "serviceaccount": map[string]any{"name": "app"}},
	})
	tok.Header["kid"] = c.kid
	s, err := tok.SignedString(c.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// project writes data as the token file's new content, mode 0644, by a
// swap of "..data", and removes the directory it replaced.
func (c *cluster) project(t testing.TB, data string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.written++
	ts := fmt.Sprintf("..%s_%d", time.Now().UTC().Format("2006_01_02_15_04_05"), c.written)
	if err := os.Mkdir(filepath.Join(c.dir, ts), 0o755); err != nil {
		t.Error(err)
		return
	}
	if err := os.WriteFile(filepath.Join(c.dir, ts, "token"), []byte(data), 0o644); err != nil {
		t.Error(err)
		return
	}
	old, _ := os.Readlink(filepath.Join(c.dir, "..data"))
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Error(err)
		return
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		t.Error(err)
		return
	}
	if _, err := os.Lstat(c.path()); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink(filepath.Join("..data", "token"), c.path()); err != nil {
			t.Error(err)
		}
	}
	if old != "" {
		_ = os.RemoveAll(filepath.Join(c.dir, old))
	}
}

// jwks is the issuer's public key set, as its OIDC discovery serves it.
func (c *cluster) jwks() map[string]any {
	pub := c.key.Public().(*rsa.PublicKey)
	return map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": c.kid, "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}}
}

// claimsOf decodes a JWT's claims without verifying it.
func claimsOf(t testing.TB, s string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(s, claims); err != nil {
		t.Fatalf("decoding a JWT: %v", err)
	}
	return claims
}

// An AssertionFile reads a projected token once per version of the file:
// a call while the file is unchanged costs a stat, a swap of "..data" is
// seen at the next call, and the mode 0644 that Kubernetes gives the file
// is fine.
func TestAssertionFileReadsEachProjectedTokenOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "https://cluster.test")
	now := time.Now()
	first := c.token(t, "system:serviceaccount:default:app", "sts", now, time.Hour)
	c.project(t, first+"\n")
	a := newAssertionFile(c.path(), time.Now)
	ctx := context.Background()
	for i := range 5 {
		got, err := a.get(ctx)
		if err != nil || got != first {
			t.Fatalf("call %d: got %.20q, %v, want the first token", i, got, err)
		}
	}
	if a.reads != 1 {
		t.Fatalf("got %d reads for 5 calls on one file, want 1", a.reads)
	}
	second := c.token(t, "system:serviceaccount:default:app", "sts", now.Add(time.Second), time.Hour)
	c.project(t, second)
	for i := range 3 {
		got, err := a.get(ctx)
		if err != nil || got != second {
			t.Fatalf("after the swap, call %d: got %.20q, %v, want the second token", i, got, err)
		}
	}
	if a.reads != 2 {
		t.Fatalf("got %d reads for two versions of the file, want 2", a.reads)
	}
}

// A JWT in its last moments, or expired, is never handed out: the file is
// read again first, and if it still holds that JWT the error names the
// file and the expiry.
func TestAssertionFileNeverHandsOutExpiredJWT(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "https://cluster.test")
	start := time.Now()
	tok := c.token(t, "sub", "sts", start, 10*time.Second)
	c.project(t, tok)
	clock := start
	a := newAssertionFile(c.path(), func() time.Time { return clock })
	if got, err := a.get(context.Background()); err != nil || got != tok {
		t.Fatalf("got %v, want the token", err)
	}
	// A 10 s token is not handed out in its last second (a tenth of its
	// lifetime), which the request to the server may take.
	clock = start.Add(9 * time.Second)
	_, err := a.get(context.Background())
	if !errors.Is(err, errAssertionExpired) {
		t.Fatalf("got %v, want an expired-assertion error", err)
	}
	if a.reads != 2 {
		t.Fatalf("got %d reads, want 2: the file is read again before the JWT is refused", a.reads)
	}
	msg := err.Error()
	exp := start.Add(10 * time.Second).UTC().Format(time.RFC3339)
	if !strings.HasPrefix(msg, "securehttp: ") || !strings.Contains(msg, c.path()) || !strings.Contains(msg, exp) {
		t.Fatalf("got %q, want a message naming %s and the expiry %s", msg, c.path(), exp)
	}
	if strings.Contains(msg, strings.Split(tok, ".")[2]) {
		t.Fatalf("got %q, want no part of the JWT", msg)
	}
	// The kubelet writes a new token: it is used at once.
	fresh := c.token(t, "sub", "sts", clock, 10*time.Second)
	c.project(t, fresh)
	if got, err := a.get(context.Background()); err != nil || got != fresh {
		t.Fatalf("got %v, want the new token", err)
	}
}

// What is not a file holding a JWT is refused with a typed error that
// quotes none of its content, at once for a FIFO or a device.
func TestAssertionFileRefusesWhatIsNotAJWTFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	const secretish = "not-a-jwt-but-maybe-a-secret"
	for _, tt := range []struct {
		name string
		path string
		want error
	}{
		{"FIFO", fifo, ErrInsecureTokenFile},
		{"device", "/dev/zero", ErrInsecureTokenFile},
		{"directory", dir, ErrInsecureTokenFile},
		{"oversized", write("big", strings.Repeat("a", maxAssertionFile+1)), ErrInsecureTokenFile},
		{"not a JWT", write("junk", secretish), errNotAJWT},
		{"empty", write("empty", ""), errNotAJWT},
		{"missing", filepath.Join(dir, "missing"), os.ErrNotExist},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := AssertionFile(tt.path)(ctx)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
				if !strings.Contains(err.Error(), tt.path) || strings.Contains(err.Error(), secretish) {
					t.Fatalf("got %q, want the path and none of the content", err)
				}
			case <-ctx.Done():
				t.Fatal("AssertionFile blocked, want an error at once")
			}
		})
	}
}

// A SignedAssertion is a new JWT at each call, signed by the key, with the
// claims of RFC 7523 section 3, the Extra ones, a 60 s default lifetime,
// and the token endpoint as audience when it names none.
func TestSignedAssertionMakesFreshJWTs(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Unix(1_900_000_000, 0)
	a := signedAssertion(key, AssertionClaims{Issuer: "svc@project", Subject: "svc@project", KeyID: "k1",
		Extra: map[string]any{"scope": "read"}}, func() time.Time { return now })
	ctx := withAssertionAudience(context.Background(), "https://as.test/token")
	seen := map[string]bool{}
	for range 3 {
		s, err := a(ctx)
		if err != nil {
			t.Fatal(err)
		}
		claims := jwt.MapClaims{}
		tok, err := jwt.ParseWithClaims(s, claims, func(*jwt.Token) (any, error) { return key.Public(), nil },
			jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return now }))
		if err != nil {
			t.Fatalf("verifying the assertion: %v", err)
		}
		want := map[string]any{"iss": "svc@project", "sub": "svc@project", "aud": "https://as.test/token",
			"iat": float64(now.Unix()), "exp": float64(now.Add(time.Minute).Unix()), "scope": "read"}
		for k, v := range want {
			if claims[k] != v {
				t.Fatalf("claim %s: got %v, want %v", k, claims[k], v)
			}
		}
		if tok.Header["kid"] != "k1" {
			t.Fatalf("got kid %v, want k1", tok.Header["kid"])
		}
		jti, _ := claims["jti"].(string)
		if jti == "" || seen[jti] {
			t.Fatalf("got jti %q, want a new one at each call", jti)
		}
		seen[jti] = true
	}
	// An Audience of its own wins, and Lifetime sets exp.
	b := signedAssertion(key, AssertionClaims{Issuer: "i", Subject: "s", Audience: "https://as.test", Lifetime: time.Hour},
		func() time.Time { return now })
	s, err := b(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := claimsOf(t, s); c["aud"] != "https://as.test" || c["exp"] != float64(now.Add(time.Hour).Unix()) {
		t.Fatalf("got aud %v and exp %v, want the configured ones", c["aud"], c["exp"])
	}
}

// Claims or keys that cannot make an acceptable JWT give an error at each
// call, never a JWT.
func TestSignedAssertionRefusesUnfitClaims(t *testing.T) {
	t.Parallel()
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	ctx := withAssertionAudience(context.Background(), "https://as.test/token")
	for _, tt := range []struct {
		name   string
		key    crypto.Signer
		claims AssertionClaims
		ctx    context.Context
	}{
		{"no issuer", edKey, AssertionClaims{Subject: "s"}, ctx},
		{"no subject", edKey, AssertionClaims{Issuer: "i"}, ctx},
		{"negative lifetime", edKey, AssertionClaims{Issuer: "i", Subject: "s", Lifetime: -time.Second}, ctx},
		{"Extra sets exp", edKey, AssertionClaims{Issuer: "i", Subject: "s", Extra: map[string]any{"exp": 1}}, ctx},
		{"Extra sets jti", edKey, AssertionClaims{Issuer: "i", Subject: "s", Extra: map[string]any{"jti": "x"}}, ctx},
		{"Extra not JSON", edKey, AssertionClaims{Issuer: "i", Subject: "s", Extra: map[string]any{"f": func() {}}}, ctx},
		{"RSA-1024 key", weak, AssertionClaims{Issuer: "i", Subject: "s"}, ctx},
		{"nil key", nil, AssertionClaims{Issuer: "i", Subject: "s"}, ctx},
		{"no audience outside a token request", edKey, AssertionClaims{Issuer: "i", Subject: "s"}, context.Background()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := SignedAssertion(tt.key, tt.claims)(tt.ctx)
			if err == nil || s != "" || !strings.HasPrefix(err.Error(), "securehttp: SignedAssertion: ") {
				t.Fatalf("got %q, %v, want no JWT and a SignedAssertion error", s, err)
			}
		})
	}
}
