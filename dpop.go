package securehttp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// DPoP binds the tokens of a Bearer to Key (RFC 9449): they are sent as
// "Authorization: DPoP <token>" with a fresh proof, signed by Key, on every
// attempt and token request, so that a token that leaks is of no use
// without the key. A server's nonce is learnt per origin and answered once.
// NewClient signs once with Key to check it.
type DPoP struct {
	Key crypto.Signer `json:"-"` // ECDSA P-256, Ed25519 or RSA >= 2048; nil: a fresh P-256 key per client
}

// Thumbprint returns Key's RFC 7638 JWK thumbprint, the "jkt" of the tokens
// bound to it. A nil Key, generated per client, has none.
func (d *DPoP) Thumbprint() (string, error) {
	if d == nil || d.Key == nil {
		return "", errors.New("securehttp: DPoP.Key is nil: a key generated per Transport has no thumbprint known in advance; set Key")
	}
	jwk, err := publicJWK(d.Key.Public())
	if err != nil {
		return "", wrap("DPoP.Key", err)
	}
	return jwkThumbprint(jwk), nil
}

// Format prints d without key material, whatever the verb.
func (d DPoP) Format(f fmt.State, _ rune) {
	if d.Key == nil {
		fmt.Fprint(f, "securehttp.DPoP{Key: generated P-256}")
		return
	}
	fmt.Fprintf(f, "securehttp.DPoP{Key: %T}", d.Key.Public())
}

const (
	dpopType = "dpop+jwt"
	// maxNonceOrigins bounds the nonce cache: a client that talks to more
	// origins than this forgets the nonces and learns them again.
	maxNonceOrigins = 256
	// maxNonceLen bounds a server's nonce, which goes into every proof.
	maxNonceLen = 512
	// dpopCheck is what NewClient signs to check that the key signs and
	// that its signatures verify with its public key.
	dpopCheck = "securehttp DPoP key check"
)

// dpopKey is the runtime state behind a DPoP: the key, its public JWK ready
// to go into every proof's header, and the one cache of server nonces. One
// value per Transport, shared by its resource requests and token requests.
type dpopKey struct {
	key    crypto.Signer
	method *signerMethod
	head   string // base64url of the protected header, the same for every proof
	jkt    string // RFC 7638 thumbprint of the public key
	now    func() time.Time

	mu     sync.Mutex
	nonces map[string]string // origin host (https only, no default port) → latest DPoP-Nonce
}

// newDPoPKey checks d's key, or generates one, and prepares the proof
// header. It proves the key by signing once and verifying the signature with
// the public key, so that a signer that cannot sign, or whose Public does not
// match its private key, is refused before any request.
func newDPoPKey(d *DPoP, now func() time.Time) (*dpopKey, error) {
	field := "Bearer.DPoP.Key"
	key := d.Key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, wrap("securehttp: generating the DPoP key", err)
		}
		key = k
	}
	method, err := dpopMethodFor(key)
	if err != nil {
		return nil, &ConfigError{Field: field, Err: err}
	}
	jwk, err := publicJWK(key.Public())
	if err != nil {
		return nil, &ConfigError{Field: field, Err: err}
	}
	if err := checkSigns(key, method); err != nil {
		return nil, &ConfigError{Field: field, Err: err}
	}
	head, err := json.Marshal(struct {
		Typ string          `json:"typ"`
		Alg string          `json:"alg"`
		JWK json.RawMessage `json:"jwk"`
	}{dpopType, method.Alg(), jwk})
	if err != nil {
		return nil, wrap("securehttp: the DPoP proof header", err)
	}
	return &dpopKey{
		key:    key,
		method: method,
		head:   base64.RawURLEncoding.EncodeToString(head),
		jkt:    jwkThumbprint(jwk),
		now:    now,
		nonces: make(map[string]string),
	}, nil
}

// String describes k without key material.
func (k *dpopKey) String() string { return "securehttp.dpopKey{alg: " + k.method.Alg() + "}" }

// dpopMethodFor narrows signingMethodFor to the algorithms DPoP.Key
// documents.
func dpopMethodFor(key crypto.Signer) (*signerMethod, error) {
	m, err := signingMethodFor(key)
	if err != nil {
		return nil, err
	}
	switch m {
	case methodES256, methodEdDSA, methodPS256:
		return m, nil
	}
	return nil, fmt.Errorf("%s keys are not supported for DPoP: use ECDSA P-256, Ed25519 or RSA of at least %d bits", m.Alg(), minRSABits)
}

// checkSigns signs dpopCheck with key and verifies the signature with its
// public key, using jwt/v5's own verifiers.
func checkSigns(key crypto.Signer, m *signerMethod) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the key panicked while signing (%T)", p)
		}
	}()
	sig, err := m.Sign(dpopCheck, key)
	if err != nil {
		return errors.New("the key cannot sign")
	}
	verifier := jwt.GetSigningMethod(m.Alg())
	if verifier == nil {
		return fmt.Errorf("no verifier for %s", m.Alg())
	}
	if err := verifier.Verify(dpopCheck, sig, key.Public()); err != nil {
		return errors.New("the key's signature does not verify with its public key")
	}
	return nil
}

// publicJWK returns the RFC 7638 form of pub: its required members only, in
// lexicographic order, which is also the "jwk" that every proof carries.
func publicJWK(pub crypto.PublicKey) ([]byte, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("only the P-256 curve is supported")
		}
		e, err := k.ECDH()
		if err != nil {
			return nil, errors.New("invalid ECDSA public key")
		}
		pt := e.Bytes() // 0x04 || X || Y
		return []byte(`{"crv":"P-256","kty":"EC","x":"` + b64(pt[1:33]) + `","y":"` + b64(pt[33:]) + `"}`), nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("invalid Ed25519 public key")
		}
		return []byte(`{"crv":"Ed25519","kty":"OKP","x":"` + b64(k) + `"}`), nil
	case *rsa.PublicKey:
		if k.N == nil || k.E <= 0 {
			return nil, errors.New("invalid RSA public key")
		}
		e := big.NewInt(int64(k.E)).Bytes()
		return []byte(`{"e":"` + b64(e) + `","kty":"RSA","n":"` + b64(k.N.Bytes()) + `"}`), nil
	}
	return nil, fmt.Errorf("unsupported key type %T", pub)
}

// jwkThumbprint is the RFC 7638 SHA-256 thumbprint of a JWK from publicJWK.
func jwkThumbprint(jwk []byte) string {
	sum := sha256.Sum256(jwk)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// tokenHash is a proof's ath: base64url of the SHA-256 of the access token.
func tokenHash(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// proof makes a DPoP proof for one attempt of a request: a new jti, the
// current iat, the origin's nonce when one is known, and ath when the
// request carries an access token (tokenHash of it).
func (k *dpopKey) proof(method string, u *url.URL, ath string) (string, error) {
	host := originHost(u)
	nonce := k.nonce(host)
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if method == "" {
		method = http.MethodGet
	}
	if !isHTTPToken(method) || !utf8.ValidString(host) {
		// net/http would refuse to send such a request anyway.
		return "", errors.New("securehttp: no DPoP proof for an invalid method or host")
	}

	var jti [16]byte // 128 random bits
	_, _ = rand.Read(jti[:])

	claims := make([]byte, 0, 160+len(host)+len(path)+len(nonce)+len(ath))
	claims = append(claims, `{"jti":"`...)
	claims = base64.RawURLEncoding.AppendEncode(claims, jti[:])
	claims = append(claims, `","htm":`...)
	claims = appendJSONString(claims, method)
	claims = append(claims, `,"htu":`...)
	if jsonSafe(host) && jsonSafe(path) {
		claims = append(claims, `"https://`...)
		claims = append(claims, host...)
		claims = append(claims, path...)
		claims = append(claims, '"')
	} else {
		claims = appendJSONString(claims, "https://"+host+path)
	}
	claims = append(claims, `,"iat":`...)
	claims = strconv.AppendInt(claims, k.now().Unix(), 10)
	if ath != "" {
		claims = append(claims, `,"ath":"`...)
		claims = append(claims, ath...)
		claims = append(claims, '"')
	}
	if nonce != "" {
		// validNonce allows no character that JSON would escape.
		claims = append(claims, `,"nonce":"`...)
		claims = append(claims, nonce...)
		claims = append(claims, '"')
	}
	claims = append(claims, '}')

	enc := base64.RawURLEncoding
	out := make([]byte, 0, len(k.head)+1+enc.EncodedLen(len(claims))+1+enc.EncodedLen(2*k.method.ec+512))
	out = append(out, k.head...)
	out = append(out, '.')
	out = enc.AppendEncode(out, claims)
	sig, err := k.method.Sign(string(out), k.key)
	if err != nil {
		// The signer's error is kept for errors.Is; it never holds the proof.
		return "", wrap("securehttp: signing the DPoP proof", err)
	}
	out = append(out, '.')
	out = enc.AppendEncode(out, sig)
	return string(out), nil
}

// originHost is the key of an origin in the nonce cache and the authority
// in htu: the host in lower case without the default port. Only https
// requests get this far.
func originHost(u *url.URL) string {
	host := strings.ToLower(u.Host)
	host = strings.TrimSuffix(host, ":443")
	return strings.TrimSuffix(host, ":")
}

// appendJSONString appends s as a JSON string. Methods, hosts and escaped
// paths are printable ASCII without quotes in practice; anything else goes
// through encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	if !jsonSafe(s) {
		b, _ := json.Marshal(s) // a string always marshals
		return append(dst, b...)
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// jsonSafe reports whether s goes into a JSON string as it is: printable
// ASCII without a quote or a backslash.
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// isHTTPToken reports whether s is an RFC 9110 token, as a method is.
func isHTTPToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// nonce returns the last nonce the origin gave, or "".
func (k *dpopKey) nonce(host string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.nonces[host]
}

// observe remembers the nonce a response from u's origin carries, if any.
// Any response may carry one (RFC 9449 section 8.2), not only an error.
func (k *dpopKey) observe(u *url.URL, h http.Header) {
	v := h["Dpop-Nonce"]
	if len(v) == 0 || !validNonce(v[0]) {
		return
	}
	host := originHost(u)
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.nonces[host]; !ok && len(k.nonces) >= maxNonceOrigins {
		clear(k.nonces)
	}
	k.nonces[host] = v[0]
}

// validNonce reports whether s is a nonce as RFC 9449 section 8.1 defines
// it (1*NQCHAR), of a bounded length, so that it goes into a proof as it is.
func validNonce(s string) bool {
	if s == "" || len(s) > maxNonceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// dpopChallengeError returns the error code of the first DPoP challenge in
// h's WWW-Authenticate fields, and whether there is one.
func dpopChallengeError(h http.Header) (code string, ok bool) {
	_, params, ok := findChallenge(h, "DPoP")
	if !ok {
		return "", false
	}
	return params.Get("error"), true
}

// nonceRequested reports whether a resource server refused a request for
// want of a fresh nonce and gave one (RFC 9449 section 9).
func nonceRequested(resp *http.Response) bool {
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Header["Dpop-Nonce"]) == 0 {
		return false
	}
	code, ok := dpopChallengeError(resp.Header)
	return ok && code == "use_dpop_nonce"
}

// dpopTokenRejected is tokenRejected for a DPoP-bound token: a 401 with no
// challenge, or with a DPoP challenge whose error is invalid_token or absent
// (RFC 9449 section 7.1). A refused proof (invalid_dpop_proof) or a nonce
// request does not condemn the token.
func dpopTokenRejected(h http.Header) bool {
	if len(h.Values("Www-Authenticate")) == 0 {
		return true
	}
	code, ok := dpopChallengeError(h)
	return ok && (code == "" || code == "invalid_token")
}
