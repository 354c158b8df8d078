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

// FuzzTokenParse: parse gives the known verdict on the seeds of fzTokens,
// accepts only b64tokens of at most maxTokenLen bytes, and never quotes a
// refused token in its error.
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
