package securehttp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp/internal/testutil"
)

// TestTokenLengthCap: a token of up to 16 KiB is sent, a longer one, opaque
// or JWT, is refused before any request.
func TestTokenLengthCap(t *testing.T) {
	t.Parallel()
	now := time.Now()
	bigJWT := tokJWT(t, tokKey(), jwt.RegisteredClaims{Subject: strings.Repeat("s", 17<<10),
		ExpiresAt: jwt.NewNumericDate(now.Add(100 * 365 * 24 * time.Hour))})
	for _, tt := range []struct {
		name   string
		tok    string
		wantOK bool
	}{
		{"16 KiB opaque", strings.Repeat("a", 16<<10), true},
		{"16 KiB + 1 opaque", strings.Repeat("a", 16<<10+1), false},
		{"JWT over 16 KiB", bigJWT, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := tokSetup(t, tokNewClock(), &Bearer{Refresh: tokStaticT(tt.tok), Hosts: []string{hostAPI}}, nil)
			status, _, err := e.get("/")
			if tt.wantOK {
				if err != nil || status != http.StatusOK {
					t.Fatalf("got status %d and error %v, want 200", status, err)
				}
				if got := e.rec.auths(); !slices.Equal(got, []string{tokBearer(tt.tok)}) {
					t.Fatalf("server got %d tokens, want the 16 KiB one", len(got))
				}
				return
			}
			tokWantRefused(t, err, e.rec.count())
		})
	}
}

// TestTokenKeyfunc: with Bearer.Keyfunc a token is sent only when its
// signature verifies with a listed method; without it the claims are decoded
// only.
func TestTokenKeyfunc(t *testing.T) {
	t.Parallel()
	now := time.Now()
	claims := jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}
	good := tokJWT(t, tokKey(), claims)
	otherKey := tokJWT(t, []byte("another key entirely, also 32 bytes long"), claims)
	parts := strings.Split(good, ".")
	later := claims
	later.ExpiresAt = jwt.NewNumericDate(now.Add(1000 * time.Hour))
	laterParts := strings.Split(tokJWT(t, tokKey(), later), ".")
	tampered := parts[0] + "." + laterParts[1] + "." + parts[2] // good signature, other claims
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	keyfunc := func(tok *jwt.Token) (any, error) {
		if _, ok := tok.Method.(*jwt.SigningMethodHMAC); !ok {
			return nil, fmt.Errorf("unexpected signing method %v", tok.Header["alg"])
		}
		return tokKey(), nil
	}
	allowNone := func(*jwt.Token) (any, error) { return jwt.UnsafeAllowNoneSignatureType, nil }
	hs256 := []string{"HS256"}
	for _, tt := range []struct {
		name    string
		keyfunc jwt.Keyfunc
		methods []string
		tok     string
		wantOK  bool
	}{
		{"valid signature", keyfunc, hs256, good, true},
		{"signed with another key", keyfunc, hs256, otherKey, false},
		{"claims changed after signing", keyfunc, hs256, tampered, false},
		{"alg none", keyfunc, hs256, none, false},
		{"alg none with a Keyfunc allowing it", allowNone, nil, none, false},
		// Algorithm confusion: an HMAC key is accepted only for listed methods.
		{"HMAC key without ValidMethods", keyfunc, nil, good, false},
		{"HMAC token, only RS256 valid", keyfunc, []string{"RS256"}, good, false},
		{"opaque token cannot be verified", keyfunc, hs256, tokOpaque("opaque"), false},
		{"no Keyfunc: decoded only", nil, nil, otherKey, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := tokNewClock()
			clk.Set(now.Truncate(time.Second))
			e := tokSetup(t, clk, &Bearer{Refresh: tokStaticT(tt.tok), Hosts: []string{hostAPI}, Keyfunc: tt.keyfunc, ValidMethods: tt.methods}, nil)
			status, _, err := e.get("/")
			if tt.wantOK {
				if err != nil || status != http.StatusOK {
					t.Fatalf("got status %d and error %v, want 200", status, err)
				}
				return
			}
			tokWantRefused(t, err, e.rec.count())
		})
	}
}

// TestOpaqueTokenWithTwoDots: a token with two dots that is not a JWT (a
// PASETO, or a header whose payload is not JSON) is sent as an opaque token,
// not refused as a broken JWT.
func TestOpaqueTokenWithTwoDots(t *testing.T) {
	t.Parallel()
	payload := base64.RawURLEncoding.EncodeToString([]byte("not JSON: a signed PASETO message body, 64 bytes of it ....."))
	for _, tok := range []string{
		"v4.public." + payload,
		"v4.local." + payload,
		"a.b.c",
		"eyJhbGciOiJIUzI1NiJ9." + payload + ".sig", // a JWT-like header, a payload that is not JSON
	} {
		t.Run(tok[:min(len(tok), 12)], func(t *testing.T) {
			t.Parallel()
			e := tokSetup(t, tokNewClock(), &Bearer{Store: NewMemoryStore(Token{Value: tok}), Hosts: []string{hostAPI}}, nil)
			if got := e.tokMustGet(t); got != tokBearer(tok) {
				t.Fatalf("server got %q, want the opaque token", got)
			}
		})
	}
}

// TestTokenAlgorithmConfusion: a token signed with HS256 using the issuer's
// RSA public key as the HMAC secret is refused, whether or not ValidMethods
// is set, while a genuine RS256 token verifies.
func TestTokenAlgorithmConfusion(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	now := time.Now().Truncate(time.Second)
	claims := jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}
	rs256, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	// The attacker knows the public key and signs with it as an HMAC secret.
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	// A Keyfunc that hands back "the key" whatever the token's alg says.
	asBytes := func(*jwt.Token) (any, error) { return pubPEM, nil }
	asKey := func(*jwt.Token) (any, error) { return &key.PublicKey, nil }
	for _, tt := range []struct {
		name    string
		keyfunc jwt.Keyfunc
		methods []string
		tok     string
		cause   error // nil: accepted
	}{
		{"HS256 with the public key as secret, no ValidMethods", asBytes, nil, forged, jwt.ErrTokenUnverifiable},
		{"HS256 with the public key as secret, RS256 valid", asBytes, []string{"RS256"}, forged, jwt.ErrTokenSignatureInvalid},
		{"HS256 against an RSA key", asKey, nil, forged, jwt.ErrTokenUnverifiable},
		{"RS256 against its RSA key", asKey, nil, rs256, nil},
		{"RS256 listed", asKey, []string{"RS256"}, rs256, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := testutil.NewClock(now)
			e := tokSetup(t, clk, &Bearer{Refresh: tokStaticT(tt.tok), Hosts: []string{hostAPI}, Keyfunc: tt.keyfunc, ValidMethods: tt.methods}, nil)
			status, _, err := e.get("/")
			if tt.cause == nil {
				if err != nil || status != http.StatusOK {
					t.Fatalf("got status %d and error %v, want 200", status, err)
				}
				return
			}
			tokWantRefused(t, err, e.rec.count(), tt.cause)
		})
	}
}
