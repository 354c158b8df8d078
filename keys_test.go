package securehttp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestSigningMethods: the JWT signing method chosen for a P-384 or P-521 key
// is ES384 or ES512, and its signatures verify with jwt/v5's own ECDSA.
func TestSigningMethods(t *testing.T) {
	t.Parallel()
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	for _, tt := range []struct {
		key crypto.Signer
		alg string
		jwt jwt.SigningMethod
	}{
		{p384, "ES384", jwt.SigningMethodES384},
		{p521, "ES512", jwt.SigningMethodES512},
	} {
		m, err := signingMethodFor(tt.key)
		if err != nil || m.Alg() != tt.alg {
			t.Fatalf("got %v and %v, want %s", m, err, tt.alg)
		}
		signed, err := jwt.NewWithClaims(m, jwt.MapClaims{"a": 1}).SignedString(tt.key)
		if err != nil {
			t.Fatal(err)
		}
		// An independent verifier (jwt/v5's own ECDSA) accepts the signature.
		if _, err := jwt.Parse(signed, func(*jwt.Token) (any, error) { return tt.key.Public(), nil },
			jwt.WithValidMethods([]string{tt.jwt.Alg()})); err != nil {
			t.Fatalf("%s: jwt/v5 refuses our signature: %v", tt.alg, err)
		}
	}
}
