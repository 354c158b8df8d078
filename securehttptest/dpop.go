package securehttptest

// DPoP proofs (RFC 9449), as the token endpoint and VerifyRequest check
// them, and the JWKs they carry.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxProofAge is how old a proof's iat may be.
const maxProofAge = 5 * time.Minute

// minRSABits is the smallest RSA key accepted in a proof.
const minRSABits = 2048

// proofAlgs are the signature algorithms accepted in proofs: asymmetric
// ones only (RFC 9449 section 4.2).
func proofAlgs() []string {
	return []string{"ES256", "ES384", "ES512", "EdDSA", "PS256", "PS384", "PS512", "RS256"}
}

// proofClaims are the claims of a proof: jti (ID) and iat (IssuedAt)
// among the registered ones.
type proofClaims struct {
	jwt.RegisteredClaims
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	ATH   string `json:"ath"`
	Nonce string `json:"nonce"`
}

var (
	errProofType = errors.New("typ is not dpop+jwt")
	errProofKey  = errors.New("no usable public jwk")
)

// checkProof verifies the DPoP proof of r (RFC 9449 section 4.3) and
// returns the thumbprint of its key. token is the access token the proof
// must be made for (ath); "" at the token endpoint, where the server's
// nonce is required when it has one.
func (a *authServer) checkProof(r *http.Request, token string, tokenEndpoint bool) (string, *refusal) {
	bad := func(check, format string, args ...any) (string, *refusal) {
		status := http.StatusBadRequest
		if !tokenEndpoint {
			status = http.StatusUnauthorized
		}
		return "", &refusal{status: status, code: "invalid_dpop_proof", check: check, msg: "DPoP proof: " + fmt.Sprintf(format, args...)}
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return bad("header", "the request carries %d DPoP fields, want 1", len(proofs))
	}
	var (
		c   proofClaims
		jkt string
	)
	parser := jwt.NewParser(jwt.WithValidMethods(proofAlgs()), jwt.WithoutClaimsValidation())
	_, err := parser.ParseWithClaims(proofs[0], &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "dpop+jwt") {
			return nil, errProofType
		}
		pub, thumb, err := parseJWK(t.Header["jwk"])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errProofKey, err)
		}
		jkt = thumb
		return pub, nil
	})
	switch {
	case errors.Is(err, errProofType):
		return bad("typ", "%v", errProofType)
	case errors.Is(err, errProofKey):
		return bad("jwk", "%v", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return bad("signature", "the signature does not verify with the proof's jwk, or its alg is not an asymmetric one")
	case err != nil:
		return bad("malformed", "not a signed JWT")
	}
	now := a.now()
	switch {
	case c.ID == "":
		return bad("jti", "no jti")
	case c.HTM != r.Method:
		return bad("htm", "htm is %q, want %q", c.HTM, r.Method)
	case !sameTarget(c.HTU, r):
		return bad("htu", "htu is %q, want %q", c.HTU, requestTarget(r))
	case c.IssuedAt == nil:
		return bad("iat", "no iat")
	case c.IssuedAt.Before(now.Add(-maxProofAge)) || c.IssuedAt.After(now.Add(maxSkew)):
		return bad("iat", "iat %v is not within %v of the server's time", c.IssuedAt.Time, maxProofAge)
	case token != "" && c.ATH != tokenHash(token):
		return bad("ath", "ath is not the hash of the access token sent")
	}
	if tokenEndpoint && a.nonce != "" && c.Nonce != a.nonce {
		return "", &refusal{status: http.StatusBadRequest, code: "use_dpop_nonce", check: "nonce",
			msg:    "DPoP proof: the server's nonce is required",
			header: http.Header{"Dpop-Nonce": {a.nonce}}}
	}
	st, _ := r.Context().Value(stampKey{}).(*stamp)
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, seen := range a.proofs {
		if seen.iat.Before(now.Add(-maxProofAge)) {
			delete(a.proofs, id) // it would be refused for its iat anyway
		}
	}
	// A proof is used once; a request that a server of the kit received may
	// be verified again, from its handler and from Requests.
	if seen, ok := a.proofs[c.ID]; ok && (seen.stamp == nil || seen.stamp != st) {
		return bad("jti", "the proof's jti was used before")
	}
	a.proofs[c.ID] = proofSeen{iat: c.IssuedAt.Time, stamp: st}
	return jkt, nil
}

// tokenHash is a proof's ath: the base64url SHA-256 of the access token.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// requestTarget is the URI of r as a proof's htu names it: scheme, host
// and path, without query or fragment, the host in lower case and without
// the scheme's default port.
func requestTarget(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return normalTarget(scheme, r.Host, r.URL.EscapedPath())
}

func normalTarget(scheme, host, path string) string {
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	switch {
	case scheme == "https":
		host = strings.TrimSuffix(host, ":443")
	case scheme == "http":
		host = strings.TrimSuffix(host, ":80")
	}
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path
}

// sameTarget reports whether htu names r's target, ignoring its query and
// fragment (RFC 9449 section 4.3).
func sameTarget(htu string, r *http.Request) bool {
	u, err := url.Parse(htu)
	if err != nil || u.Opaque != "" || u.User != nil {
		return false
	}
	return normalTarget(u.Scheme, u.Host, u.EscapedPath()) == requestTarget(r)
}

// jwk holds the members of a public JWK that keys of the algorithms of
// proofAlgs have.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
	D   string `json:"d"`
}

// parseJWK reads the jwk header parameter of a proof: a public EC (P-256,
// P-384, P-521), Ed25519 or RSA (2048 bits or more) key. It returns the key
// and its RFC 7638 thumbprint.
func parseJWK(v any) (crypto.PublicKey, string, error) {
	raw, err := json.Marshal(v)
	if err != nil || v == nil {
		return nil, "", errors.New("no jwk")
	}
	var k jwk
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, "", errors.New("jwk is not a JSON object of strings")
	}
	if k.D != "" {
		return nil, "", errors.New("the jwk holds a private key")
	}
	b64 := base64.RawURLEncoding
	var pub crypto.PublicKey
	switch k.Kty {
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, "", fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, errX := b64.DecodeString(k.X)
		y, errY := b64.DecodeString(k.Y)
		size := (curve.Params().BitSize + 7) / 8
		if errX != nil || errY != nil || len(x) != size || len(y) != size {
			return nil, "", errors.New("invalid EC coordinates")
		}
		key, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, "", errors.New("the EC point is not on the curve")
		}
		pub = key
	case "OKP":
		x, err := b64.DecodeString(k.X)
		if k.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return nil, "", errors.New("invalid OKP key: want an Ed25519 key")
		}
		pub = ed25519.PublicKey(x)
	case "RSA":
		n, errN := b64.DecodeString(k.N)
		e, errE := b64.DecodeString(k.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			return nil, "", errors.New("invalid RSA key")
		}
		key := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if key.N.BitLen() < minRSABits {
			return nil, "", fmt.Errorf("RSA key of %d bits, want at least %d", key.N.BitLen(), minRSABits)
		}
		pub = key
	default:
		return nil, "", fmt.Errorf("unsupported kty %q", k.Kty)
	}
	canonical, err := publicJWK(pub)
	if err != nil {
		return nil, "", err
	}
	return pub, thumbprint(canonical), nil
}

// publicJWK returns the RFC 7638 form of pub: its required members only,
// in lexicographic order, in canonical encodings.
func publicJWK(pub crypto.PublicKey) ([]byte, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		pt, err := k.Bytes() // 0x04 || X || Y
		if err != nil {
			return nil, err
		}
		size := (len(pt) - 1) / 2
		return json.Marshal(struct {
			Crv string `json:"crv"`
			Kty string `json:"kty"`
			X   string `json:"x"`
			Y   string `json:"y"`
		}{k.Curve.Params().Name, "EC", b64(pt[1 : 1+size]), b64(pt[1+size:])})
	case ed25519.PublicKey:
		return json.Marshal(struct {
			Crv string `json:"crv"`
			Kty string `json:"kty"`
			X   string `json:"x"`
		}{"Ed25519", "OKP", b64(k)})
	case *rsa.PublicKey:
		return json.Marshal(struct {
			E   string `json:"e"`
			Kty string `json:"kty"`
			N   string `json:"n"`
		}{b64(big.NewInt(int64(k.E)).Bytes()), "RSA", b64(k.N.Bytes())})
	}
	return nil, fmt.Errorf("unsupported key type %T", pub)
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of a JWK from publicJWK.
func thumbprint(jwk []byte) string {
	sum := sha256.Sum256(jwk)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
