package securehttptest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp"
)

// workload is the subject of the JWTs of the tests' issuers: a pod's
// service account, as a cluster names it.
const workload = "system:serviceaccount:default:app"

// parseIssued verifies a JWT of iss with its public key, and returns its
// header and claims.
func parseIssued(t *testing.T, iss *Issuer, tok string) (map[string]any, jwt.MapClaims) {
	t.Helper()
	claims := jwt.MapClaims{}
	parsed, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation()).
		ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return iss.Key().Public(), nil })
	if err != nil {
		t.Fatalf("the issuer's JWT does not verify with its key: %v", err)
	}
	return parsed.Header, claims
}

// window returns the iat, nbf and exp of claims.
func window(t *testing.T, claims jwt.MapClaims) (iat, nbf, exp time.Time) {
	t.Helper()
	get := func(name string) time.Time {
		v, ok := claims[name].(float64)
		if !ok {
			t.Fatalf("got %s %v, want a number", name, claims[name])
		}
		return time.Unix(int64(v), 0)
	}
	return get("iat"), get("nbf"), get("exp")
}

// TestIssuerToken: an Issuer's JWT names it, its subject and audience, and
// its key, has a new jti, and lives an hour from now, or as the options
// say.
func TestIssuerToken(t *testing.T) {
	t.Parallel()
	iss := NewIssuer(t, "https://cluster.test")
	notBefore := time.Now().Add(-time.Hour).Truncate(time.Second)
	tests := []struct {
		name     string
		opts     []Option
		check    func(iat, nbf, exp time.Time) bool
		describe string
	}{
		{"default", nil, func(iat, nbf, exp time.Time) bool {
			return exp.Sub(iat) == time.Hour && nbf.Equal(iat) && time.Since(iat).Abs() < time.Minute
		}, "issued now for an hour"},
		{"TokenLifetime", []Option{TokenLifetime(10 * time.Second)}, func(iat, nbf, exp time.Time) bool {
			return exp.Sub(iat) == 10*time.Second && time.Since(iat).Abs() < time.Minute
		}, "issued now for 10s"},
		{"Validity", []Option{Validity(notBefore, notBefore.Add(time.Minute))}, func(iat, nbf, exp time.Time) bool {
			return iat.Equal(notBefore) && nbf.Equal(notBefore) && exp.Equal(notBefore.Add(time.Minute))
		}, "the window of Validity"},
		{"Expired", []Option{Expired()}, func(iat, nbf, exp time.Time) bool {
			return exp.Before(time.Now()) && iat.Before(exp)
		}, "expired"},
		{"NotYetValid", []Option{NotYetValid()}, func(iat, nbf, exp time.Time) bool {
			return nbf.After(time.Now()) && exp.After(nbf)
		}, "valid from the future"},
	}
	var jtis []any
	for _, tt := range tests {
		tok := iss.Token(t, workload, "https://auth.test", tt.opts...)
		header, claims := parseIssued(t, iss, tok)
		if header["kid"] != iss.KeyID || claims["iss"] != iss.Name || claims["sub"] != workload || claims["aud"] != "https://auth.test" {
			t.Errorf("%s: got kid %v, iss %v, sub %v, aud %v; want the issuer's kid and name, %q and https://auth.test", tt.name, header["kid"], claims["iss"], claims["sub"], claims["aud"], workload)
		}
		if iat, nbf, exp := window(t, claims); !tt.check(iat, nbf, exp) {
			t.Errorf("%s: got iat %v, nbf %v, exp %v; want %s", tt.name, iat, nbf, exp, tt.describe)
		}
		jti := claims["jti"]
		if s, _ := jti.(string); s == "" || slices.Contains(jtis, jti) {
			t.Errorf("%s: got jti %v, want a new one", tt.name, jti)
		}
		jtis = append(jtis, jti)
	}
	_, claims := parseIssued(t, iss, iss.Token(t, "", ""))
	if _, ok := claims["sub"]; ok {
		t.Errorf("got sub %v for an empty subject, want none", claims["sub"])
	}
	if _, ok := claims["aud"]; ok {
		t.Errorf("got aud %v for an empty audience, want none", claims["aud"])
	}
}

// TestTokenFileLayout: a token file is laid out as the kubelet projects a
// service account token, and Rotate swaps a new version in, with the
// file's lifetime, and removes the old one.
func TestTokenFileLayout(t *testing.T) {
	t.Parallel()
	iss := NewIssuer(t, "https://cluster.test")
	f := iss.TokenFile(t, workload, "https://auth.test", TokenLifetime(10*time.Second))
	dir := filepath.Dir(f.Path)
	version := func() string {
		t.Helper()
		if target, err := os.Readlink(f.Path); err != nil || target != filepath.Join(dataLink, projectedName) {
			t.Fatalf("got %s linking to %q (%v), want a link to ..data/token", f.Path, target, err)
		}
		v, err := os.Readlink(filepath.Join(dir, dataLink))
		if err != nil || !strings.HasPrefix(v, "..") || strings.Contains(v, string(filepath.Separator)) {
			t.Fatalf("got ..data linking to %q (%v), want a link to a version directory beside it", v, err)
		}
		info, err := os.Stat(f.Path)
		if err != nil || info.Mode().Perm() != 0o644 {
			t.Fatalf("got the token file of mode %v (%v), want 0644", info.Mode().Perm(), err)
		}
		return v
	}
	read := func() jwt.MapClaims {
		t.Helper()
		b, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		_, claims := parseIssued(t, iss, string(b))
		return claims
	}
	first, firstClaims := version(), read()
	f.Rotate(t)
	second, secondClaims := version(), read()
	if first == second || firstClaims["jti"] == secondClaims["jti"] {
		t.Errorf("got version %q and jti %v after Rotate, want another than %q and %v", second, secondClaims["jti"], first, firstClaims["jti"])
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the first version is still there (%v), want it removed", err)
	}
	if iat, _, exp := window(t, secondClaims); exp.Sub(iat) != 10*time.Second || secondClaims["sub"] != workload || secondClaims["aud"] != "https://auth.test" {
		t.Errorf("got a rotated JWT for %v, %v, living %v; want %q, https://auth.test, 10s", secondClaims["sub"], secondClaims["aud"], exp.Sub(iat), workload)
	}
	f.Rotate(t, Expired())
	if _, _, exp := window(t, read()); !exp.Before(time.Now()) {
		t.Errorf("got a JWT expiring at %v after Rotate(Expired()), want an expired one", exp)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Errorf("got %d entries in the volume, want 3: token, ..data and one version", len(entries))
	}
}

// TestTokenFileWithAssertionFile: securehttp.AssertionFile reads each
// version of a token file that Rotate swaps in, and refuses an expired one
// with an error that names the file.
func TestTokenFileWithAssertionFile(t *testing.T) {
	t.Parallel()
	iss := NewIssuer(t, "https://cluster.test")
	f := iss.TokenFile(t, workload, "https://auth.test")
	assertion := securehttp.AssertionFile(f.Path)
	ctx := context.Background()
	for i := range 3 {
		want, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := assertion(ctx)
		if err != nil || got != string(want) {
			t.Errorf("version %d: got a JWT equal to the file's: %t (%v), want true", i, got == string(want), err)
		}
		f.Rotate(t)
	}
	f.Rotate(t, Expired())
	if got, err := assertion(ctx); err == nil || got != "" || !strings.Contains(err.Error(), f.Path) {
		t.Errorf("after Rotate(Expired()): got a JWT: %t, error %v; want an error naming the file", got != "", err)
	}
}
