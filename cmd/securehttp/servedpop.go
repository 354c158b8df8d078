package main

// DPoP on demo --serve's side (RFC 9449): the checks that its token
// endpoint and its API make of a proof, with jwt/v5 and the standard
// library only.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// dpopWindow is how far a proof's iat may be from the server's clock.
	dpopWindow = time.Minute
	// maxOnce bounds the identifiers a onceCache remembers: past it, new
	// ones are refused until old ones expire.
	maxOnce = 100_000
)

// dpopAlgs are the proof algorithms the demo accepts: those the library
// signs with.
func dpopAlgs() []string { return []string{"ES256", "EdDSA", "PS256"} }

// dpopChecker checks DPoP proofs. Each proof's jti is accepted once.
type dpopChecker struct {
	seen *onceCache
	now  func() time.Time
}

func newDPoPChecker() *dpopChecker {
	return &dpopChecker{seen: newOnceCache(time.Now), now: time.Now}
}

// check verifies the request's one DPoP proof (RFC 9449 section 4.3): its
// header (typ, an asymmetric alg, a public jwk), its signature by that
// jwk, htm the request's method, htu the URL the server is reached at
// (without query), iat within dpopWindow, a jti not seen before, and ath
// the hash of token when the request carries one. It returns the jwk's
// RFC 7638 thumbprint, which a bound token's cnf.jkt must equal.
func (c *dpopChecker) check(r *http.Request, htu, token string) (jkt string, err error) {
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return "", fmt.Errorf("want one DPoP proof, got %d", len(proofs))
	}
	claims := jwt.MapClaims{}
	_, err = jwt.NewParser(jwt.WithValidMethods(dpopAlgs())).ParseWithClaims(proofs[0], claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != "dpop+jwt" {
			return nil, errors.New(`typ is not "dpop+jwt"`)
		}
		m, ok := t.Header["jwk"].(map[string]any)
		if !ok {
			return nil, errors.New("no jwk in the header")
		}
		pub, thumb, err := parseJWK(m)
		if err != nil {
			return nil, err
		}
		jkt = thumb
		return pub, nil
	})
	if err != nil {
		return "", fmt.Errorf("proof: %w", err)
	}
	if htm, _ := claims["htm"].(string); htm != r.Method {
		return "", fmt.Errorf("proof for method %q, not %s", htm, r.Method)
	}
	if got, _ := claims["htu"].(string); !sameHTU(got, htu) {
		return "", fmt.Errorf("proof for another URL")
	}
	iat, ok := claims["iat"].(float64)
	if !ok {
		return "", errors.New("proof without iat")
	}
	now := c.now()
	if d := now.Sub(time.Unix(int64(iat), 0)); d > dpopWindow || d < -dpopWindow {
		return "", fmt.Errorf("proof made %v from now", d.Round(time.Second))
	}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		if ath, _ := claims["ath"].(string); ath != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return "", errors.New("proof for another access token (ath)")
		}
	}
	jti, _ := claims["jti"].(string)
	if jti == "" || len(jti) > 256 {
		return "", errors.New("proof without a valid jti")
	}
	if !c.seen.first("dpop "+jti, now.Add(2*dpopWindow)) {
		return "", errors.New("proof replayed (jti seen before)")
	}
	return jkt, nil
}

// sameHTU compares a proof's htu with the URL expected, as RFC 9449
// section 4.3 asks: scheme and host in any case, the default port or
// none, no query or fragment.
func sameHTU(got, want string) bool {
	norm := func(s string) (string, bool) {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return "", false
		}
		scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
		if scheme == "https" {
			host = strings.TrimSuffix(host, ":443")
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		return scheme + "://" + host + path, true
	}
	g, ok1 := norm(got)
	w, ok2 := norm(want)
	return ok1 && ok2 && g == w
}

// parseJWK reads the public key of a proof's jwk and returns it with its
// RFC 7638 thumbprint. A jwk holding a private part is refused.
func parseJWK(m map[string]any) (crypto.PublicKey, string, error) {
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
		if _, ok := m[private]; ok {
			return nil, "", errors.New("the jwk holds a private key")
		}
	}
	member := func(name string) ([]byte, error) {
		s, ok := m[name].(string)
		if !ok {
			return nil, fmt.Errorf("the jwk has no %q", name)
		}
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("the jwk's %q is not base64url", name)
		}
		return b, nil
	}
	b64 := base64.RawURLEncoding.EncodeToString
	thumb := func(canonical string) string {
		sum := sha256.Sum256([]byte(canonical))
		return b64(sum[:])
	}
	kty, _ := m["kty"].(string)
	crv, _ := m["crv"].(string)
	switch {
	case kty == "EC" && crv == "P-256":
		x, err := member("x")
		if err != nil {
			return nil, "", err
		}
		y, err := member("y")
		if err != nil {
			return nil, "", err
		}
		if len(x) != 32 || len(y) != 32 {
			return nil, "", errors.New("the jwk's P-256 coordinates are not 32 bytes")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, "", errors.New("the jwk is not a P-256 point")
		}
		return pub, thumb(`{"crv":"P-256","kty":"EC","x":"` + b64(x) + `","y":"` + b64(y) + `"}`), nil
	case kty == "OKP" && crv == "Ed25519":
		x, err := member("x")
		if err != nil {
			return nil, "", err
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, "", errors.New("the jwk's Ed25519 key is not 32 bytes")
		}
		return ed25519.PublicKey(x), thumb(`{"crv":"Ed25519","kty":"OKP","x":"` + b64(x) + `"}`), nil
	case kty == "RSA":
		n, err := member("n")
		if err != nil {
			return nil, "", err
		}
		e, err := member("e")
		if err != nil {
			return nil, "", err
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
		if len(e) == 0 || len(e) > 4 || pub.N.BitLen() < 2048 {
			return nil, "", errors.New("the jwk is no RSA key of at least 2048 bits")
		}
		pub.E = int(new(big.Int).SetBytes(e).Int64())
		return pub, thumb(`{"e":"` + b64(e) + `","kty":"RSA","n":"` + b64(n) + `"}`), nil
	}
	return nil, "", fmt.Errorf("the jwk is no P-256, Ed25519 or RSA key (kty %q, crv %q)", kty, crv)
}

// onceCache remembers identifiers (a proof's or an assertion's jti) until
// they expire, so that each is accepted once.
type onceCache struct {
	mu   sync.Mutex
	seen map[string]time.Time // identifier → when it may be forgotten
	now  func() time.Time
}

func newOnceCache(now func() time.Time) *onceCache {
	return &onceCache{seen: make(map[string]time.Time), now: now}
}

// first reports whether id is new, and remembers it until until.
func (c *onceCache) first(id string, until time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.seen[id]; ok {
		return false
	}
	if len(c.seen) >= maxOnce {
		for k, exp := range c.seen {
			if now.After(exp) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= maxOnce {
			return false
		}
	}
	c.seen[id] = until
	return true
}
