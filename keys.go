package securehttp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// signerMethod is a jwt/v5 signing method backed by any crypto.Signer, so
// that keys held in an HSM or a KMS sign our JWTs (client assertions and
// DPoP proofs) as well as in-memory keys do. It signs only: we never verify
// our own JWTs.
type signerMethod struct {
	alg  string
	hash crypto.Hash // 0 for EdDSA, which hashes internally
	ec   int         // byte length of r and s for ECDSA, 0 otherwise
}

var (
	methodES256 = &signerMethod{alg: "ES256", hash: crypto.SHA256, ec: 32}
	methodES384 = &signerMethod{alg: "ES384", hash: crypto.SHA384, ec: 48}
	methodES512 = &signerMethod{alg: "ES512", hash: crypto.SHA512, ec: 66}
	methodPS256 = &signerMethod{alg: "PS256", hash: crypto.SHA256}
	methodEdDSA = &signerMethod{alg: "EdDSA"}
)

func (m *signerMethod) Alg() string { return m.alg }

func (m *signerMethod) Verify(string, []byte, any) error {
	return errors.New("securehttp: signing method used to verify")
}

func (m *signerMethod) Sign(signingString string, key any) ([]byte, error) {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", key)
	}
	return m.sign(signer, []byte(signingString))
}

// sign signs msg with signer: hashed first, except with EdDSA, and an
// ECDSA signature made r || s, as JWS and RFC 9421 both want it.
func (m *signerMethod) sign(signer crypto.Signer, msg []byte) ([]byte, error) {
	var opts crypto.SignerOpts = crypto.Hash(0)
	if m.hash != 0 {
		h := m.hash.New()
		h.Write(msg)
		msg = h.Sum(nil)
		opts = m.hash
		if strings.HasPrefix(m.alg, "PS") {
			opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: m.hash}
		}
	}
	sig, err := signer.Sign(rand.Reader, msg, opts)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	if m.ec == 0 {
		return sig, nil
	}
	// crypto.Signer gives ECDSA signatures in ASN.1; JWS wants r and s
	// as fixed-length big-endian integers. cryptobyte reads them in place,
	// without the allocations of encoding/asn1 and big.Int.
	var r, s []byte
	var inner cryptobyte.String
	input := cryptobyte.String(sig)
	if !input.ReadASN1(&inner, cbasn1.SEQUENCE) || !input.Empty() ||
		!inner.ReadASN1Integer(&r) || !inner.ReadASN1Integer(&s) || !inner.Empty() ||
		len(r) > m.ec || len(s) > m.ec {
		return nil, errors.New("signing: the signer returned a malformed ECDSA signature")
	}
	out := make([]byte, 2*m.ec)
	copy(out[m.ec-len(r):m.ec], r)
	copy(out[2*m.ec-len(s):], s)
	return out, nil
}

// signingMethodFor chooses the JWS algorithm that a key signs with: ES256,
// ES384 or ES512 by curve, EdDSA, or PS256 for RSA of at least 2048 bits.
// A key under the key policy, or one that cannot sign, is refused.
func signingMethodFor(key crypto.Signer) (*signerMethod, error) {
	if key == nil {
		return nil, errors.New("no key")
	}
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return methodES256, nil
		case elliptic.P384():
			return methodES384, nil
		case elliptic.P521():
			return methodES512, nil
		}
		return nil, fmt.Errorf("unsupported ECDSA curve %s", pub.Curve.Params().Name)
	case ed25519.PublicKey:
		return methodEdDSA, nil
	case *rsa.PublicKey:
		if n := pub.N.BitLen(); n < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits, want at least %d", n, minRSABits)
		}
		return methodPS256, nil
	default:
		return nil, fmt.Errorf("unsupported key type %T", pub)
	}
}

// keyFitsAlg reports whether a verification key returned by a Keyfunc fits
// the JWS algorithm alg. HMAC keys fit nothing here: they need an explicit
// Bearer.ValidMethods.
func keyFitsAlg(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return alg == "ES256"
		case elliptic.P384():
			return alg == "ES384"
		case elliptic.P521():
			return alg == "ES512"
		}
		return false
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case jwt.VerificationKeySet:
		if len(k.Keys) == 0 {
			return false
		}
		for _, each := range k.Keys {
			if !keyFitsAlg(each, alg) {
				return false
			}
		}
		return true
	}
	return false
}
