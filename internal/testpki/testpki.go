// Package testpki generates throwaway public key infrastructure in code: roots,
// intermediates, leaves, self-signed certificates and stapleable OCSP
// responses.
//
// It exists so that the library's tests and the offline demo never depend on
// certificate files checked into the repository (which expire and rot) or on
// the network. Everything here is for tests: keys are generated fresh, kept in
// memory and never protected.
//
// The package uses only the standard library; in particular OCSP responses
// are encoded by hand with encoding/asn1 rather than with
// golang.org/x/crypto/ocsp.
package testpki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// KeyType selects the algorithm and size of a generated key pair.
type KeyType int

const (
	// ECDSAP256 is an ECDSA key on NIST P-256. It is the zero value and
	// therefore the default, because it is fast to generate and accepted
	// everywhere.
	ECDSAP256 KeyType = iota
	// ECDSAP384 is an ECDSA key on NIST P-384.
	ECDSAP384
	// ECDSAP224 is an ECDSA key on NIST P-224. It is deliberately weak and
	// exists only to exercise key-size policies; crypto/tls cannot use it.
	ECDSAP224
	// RSA2048 is a 2048-bit RSA key. Generating one is slow, so tests should
	// ask for it only when they need RSA specifically.
	RSA2048
	// RSA1024 is a 1024-bit RSA key. It is deliberately weak and exists only
	// to exercise key-size policies.
	RSA1024
	// Ed25519 is an Ed25519 key.
	Ed25519
)

// String returns the name of the key type, for test and log output.
func (k KeyType) String() string {
	switch k {
	case ECDSAP256:
		return "ECDSAP256"
	case ECDSAP384:
		return "ECDSAP384"
	case ECDSAP224:
		return "ECDSAP224"
	case RSA2048:
		return "RSA2048"
	case RSA1024:
		return "RSA1024"
	case Ed25519:
		return "Ed25519"
	default:
		return fmt.Sprintf("KeyType(%d)", int(k))
	}
}

// Default lifetimes. Leaves are short-lived so that nothing accidentally
// relies on a long-lived test certificate; CAs outlive any test run by far so
// that only the certificate under test is ever the one that expires.
const (
	// DefaultBackdate is how far before now a zero Options.NotBefore starts,
	// so that small clock differences between processes do not make a fresh
	// certificate "not yet valid".
	DefaultBackdate = time.Hour
	// DefaultLeafLifetime is the validity period given to a leaf (and to a
	// self-signed leaf) when Options leaves a bound zero.
	DefaultLeafLifetime = 24 * time.Hour
	// DefaultCALifetime is the validity period (about ten years) given to a
	// root or intermediate when Options leaves a bound zero.
	DefaultCALifetime = 10 * 365 * 24 * time.Hour
)

// Options describe one certificate. The zero value yields a currently valid
// certificate with an ECDSA P-256 key.
type Options struct {
	// KeyType selects the subject's key pair.
	KeyType KeyType

	// Key, if set, is the subject's key pair, and KeyType is ignored.
	Key crypto.Signer

	// NotBefore is the start of the validity period. When it is zero it is
	// DefaultBackdate before now; but when NotAfter is set and is not after
	// that instant, it is the default lifetime before NotAfter instead, so
	// that Options{NotAfter: past} alone yields an expired certificate.
	NotBefore time.Time
	// NotAfter is the end of the validity period. When it is zero it is the
	// default lifetime (DefaultLeafLifetime for leaves, DefaultCALifetime for
	// roots and intermediates) after the later of now and NotBefore, so that
	// Options{NotBefore: future} alone yields a not-yet-valid certificate.
	NotAfter time.Time

	// DNSNames are the DNS subject alternative names. Only leaves use them;
	// roots and intermediates ignore them.
	DNSNames []string
	// IPs are the IP address subject alternative names. Only leaves use
	// them; roots and intermediates ignore them.
	IPs []net.IP

	// ExtKeyUsage lists the extended key usages. For leaves nil means
	// ServerAuth, and an empty non-nil slice means no extension at all. For
	// roots and intermediates nil means no extension, which verifiers treat
	// as "any usage".
	ExtKeyUsage []x509.ExtKeyUsage

	// NotCA makes NewIntermediate produce a certificate without the CA basic
	// constraint (an "intermediate that is not a CA"), which verifiers must
	// refuse as an issuer. Other constructors ignore it.
	NotCA bool

	// MustStaple adds the TLS Feature extension requesting status_request
	// (RFC 7633 "OCSP Must-Staple"). Only leaves use it.
	MustStaple bool

	// OCSPServer lists OCSP responder URLs for the Authority Information
	// Access extension. It may be nil.
	OCSPServer []string
}

// Cert is a certificate together with its private key and its issuer.
type Cert struct {
	// Cert is the parsed certificate.
	Cert *x509.Certificate
	// Key is the private key matching Cert's public key.
	Key crypto.Signer
	// Issuer is the certificate that signed Cert, or nil when Cert is
	// self-signed.
	Issuer *Cert
}

// Object identifiers and fixed encodings are returned by functions rather
// than held in package variables, so that there is no shared slice anyone
// could mutate.

// oidTLSFeature returns the OID of the TLS Feature extension (RFC 7633).
func oidTLSFeature() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24} }

// mustStapleValue returns the DER of TLSFeature ::= SEQUENCE OF INTEGER
// holding only status_request (5).
func mustStapleValue() []byte { return []byte{0x30, 0x03, 0x02, 0x01, 0x05} }

// certKind distinguishes the shapes of certificate this package produces.
type certKind int

const (
	kindRoot certKind = iota
	kindIntermediate
	kindLeaf
	kindSelfSignedLeaf
)

func (k certKind) isCA() bool { return k == kindRoot || k == kindIntermediate }

// NewRoot returns a self-signed CA certificate with common name cn.
func NewRoot(cn string, o Options) (*Cert, error) {
	c, err := issue(nil, kindRoot, cn, o)
	if err != nil {
		return nil, fmt.Errorf("testpki: root %q: %w", cn, err)
	}
	return c, nil
}

// NewIntermediate returns a CA certificate with common name cn signed by c.
// With o.NotCA the result lacks the CA basic constraint, for testing that
// verifiers reject such an issuer.
func (c *Cert) NewIntermediate(cn string, o Options) (*Cert, error) {
	ic, err := issue(c, kindIntermediate, cn, o)
	if err != nil {
		return nil, fmt.Errorf("testpki: intermediate %q: %w", cn, err)
	}
	return ic, nil
}

// NewLeaf returns an end-entity certificate with common name cn signed by c.
// Its subject alternative names are exactly o.DNSNames and o.IPs; cn is not
// copied into them, because modern verifiers ignore the common name.
func (c *Cert) NewLeaf(cn string, o Options) (*Cert, error) {
	lc, err := issue(c, kindLeaf, cn, o)
	if err != nil {
		return nil, fmt.Errorf("testpki: leaf %q: %w", cn, err)
	}
	return lc, nil
}

// SelfSignedLeaf returns a self-signed end-entity (non-CA) server certificate
// with common name cn, as produced by "generate a quick certificate" tooling.
// Verifiers accept it only when it is itself in the trusted pool.
func SelfSignedLeaf(cn string, o Options) (*Cert, error) {
	c, err := issue(nil, kindSelfSignedLeaf, cn, o)
	if err != nil {
		return nil, fmt.Errorf("testpki: self-signed leaf %q: %w", cn, err)
	}
	return c, nil
}

// Must returns c, or panics if err is not nil. It keeps test setup and the
// demo short, where a generation failure is a bug rather than a condition to
// handle.
func Must(c *Cert, err error) *Cert {
	if err != nil {
		panic(err)
	}
	return c
}

// issue generates a key pair and a certificate of the given kind. parent is
// nil for self-signed kinds.
func issue(parent *Cert, kind certKind, cn string, o Options) (*Cert, error) {
	if parent == nil && (kind == kindIntermediate || kind == kindLeaf) {
		return nil, errors.New("nil issuer")
	}
	if parent != nil && (parent.Cert == nil || parent.Key == nil) {
		return nil, errors.New("issuer has no certificate or no key")
	}

	notBefore, notAfter, err := validity(o, kind.isCA())
	if err != nil {
		return nil, err
	}

	key := o.Key
	if key == nil {
		if key, err = generateKey(o.KeyType); err != nil {
			return nil, err
		}
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	skid, err := subjectKeyID(spki)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}

	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		SubjectKeyId:          skid,
		BasicConstraintsValid: true,
		OCSPServer:            o.OCSPServer,
	}

	if kind.isCA() {
		tmpl.IsCA = !(kind == kindIntermediate && o.NotCA)
		// A non-CA "intermediate" keeps the CA key usages so that the missing
		// basic constraint is the only thing wrong with it.
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		tmpl.ExtKeyUsage = o.ExtKeyUsage
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if _, ok := key.(*rsa.PrivateKey); ok {
			// RSA key exchange in TLS 1.0-1.2 encrypts to the key.
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
		tmpl.ExtKeyUsage = o.ExtKeyUsage
		if tmpl.ExtKeyUsage == nil {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}
		tmpl.DNSNames = o.DNSNames
		tmpl.IPAddresses = o.IPs
		if o.MustStaple {
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{
				Id:    oidTLSFeature(),
				Value: mustStapleValue(),
			})
		}
	}

	// Self-signed certificates sign themselves; everything else is signed by
	// the parent, whose SubjectKeyId becomes our AuthorityKeyId.
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
		tmpl.AuthorityKeyId = parent.Cert.SubjectKeyId
	}

	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse generated certificate: %w", err)
	}
	return &Cert{Cert: cert, Key: key, Issuer: parent}, nil
}

// validity applies the documented defaults for Options.NotBefore and
// Options.NotAfter.
func validity(o Options, ca bool) (notBefore, notAfter time.Time, err error) {
	lifetime := DefaultLeafLifetime
	if ca {
		lifetime = DefaultCALifetime
	}
	now := time.Now()
	notBefore, notAfter = o.NotBefore, o.NotAfter
	if notBefore.IsZero() {
		notBefore = now.Add(-DefaultBackdate)
		if !notAfter.IsZero() && !notAfter.After(notBefore) {
			notBefore = notAfter.Add(-lifetime)
		}
	}
	if notAfter.IsZero() {
		start := now
		if notBefore.After(start) {
			start = notBefore
		}
		notAfter = start.Add(lifetime)
	}
	if !notAfter.After(notBefore) {
		return time.Time{}, time.Time{}, fmt.Errorf("NotAfter %v is not after NotBefore %v", notAfter, notBefore)
	}
	return notBefore, notAfter, nil
}

// generateKey returns a fresh private key of type t.
func generateKey(t KeyType) (crypto.Signer, error) {
	var (
		key crypto.Signer
		err error
	)
	switch t {
	case ECDSAP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case ECDSAP224:
		key, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case RSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA1024:
		key, err = rsa.GenerateKey(rand.Reader, 1024)
	case Ed25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("unknown key type %v", t)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %v key: %w", t, err)
	}
	return key, nil
}

// randomSerial returns a random positive serial number of exactly 128 bits.
// Setting the top bit fixes the length, which keeps the encoding within the
// 20 octets RFC 5280 allows even with the sign-padding byte.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n.SetBit(n, 127, 1), nil
}

// subjectPublicKeyInfo mirrors the ASN.1 structure so that the raw
// subjectPublicKey BIT STRING can be extracted.
type subjectPublicKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// publicKeyBits returns the contents of the subjectPublicKey BIT STRING of a
// DER SubjectPublicKeyInfo: the bytes that RFC 5280 key identifiers and RFC
// 6960 key hashes are computed over.
func publicKeyBits(spkiDER []byte) ([]byte, error) {
	var spki subjectPublicKeyInfo
	rest, err := asn1.Unmarshal(spkiDER, &spki)
	if err != nil {
		return nil, fmt.Errorf("parse subject public key info: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("trailing data after subject public key info")
	}
	return spki.PublicKey.RightAlign(), nil
}

// subjectKeyID computes a key identifier with RFC 7093 method 1 (the leftmost
// 160 bits of the SHA-256 of the subjectPublicKey), the same method
// crypto/x509 uses by default for CAs, so identifiers look alike whichever
// code produced them.
func subjectKeyID(spkiDER []byte) ([]byte, error) {
	bits, err := publicKeyBits(spkiDER)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(bits)
	return sum[:20], nil
}

// Pool returns a new certificate pool holding only c, for use as
// tls.Config.RootCAs or x509.VerifyOptions.Roots.
func (c *Cert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Cert)
	return p
}

// SPKIPin returns the RFC 7469 pin of c's public key: "sha256/" followed by
// the standard, padded base64 of the SHA-256 of the DER SubjectPublicKeyInfo.
func (c *Cert) SPKIPin() string {
	sum := sha256.Sum256(c.Cert.RawSubjectPublicKeyInfo)
	return "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
}

// Fingerprint returns the SHA-256 of the DER certificate as colon-separated
// uppercase hex pairs, which is exactly what
// "openssl x509 -fingerprint -sha256" prints after the '='.
func (c *Cert) Fingerprint() string {
	sum := sha256.Sum256(c.Cert.Raw)
	pairs := make([]string, len(sum))
	for i, b := range sum {
		pairs[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(pairs, ":")
}

// CertPEM returns c's certificate as a PEM "CERTIFICATE" block.
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// KeyPEM returns c's private key as a PKCS #8 PEM "PRIVATE KEY" block. It
// panics if the key cannot be marshaled, which cannot happen for keys this
// package generates and signals a programming error for any other.
func (c *Cert) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		panic(fmt.Errorf("testpki: marshal private key: %w", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TLSCertificate returns a tls.Certificate that serves leaf followed by the
// given chain certificates in order, with Leaf set so that crypto/tls need
// not parse it again.
func TLSCertificate(leaf *Cert, chain ...*Cert) tls.Certificate {
	ders := make([][]byte, 0, 1+len(chain))
	ders = append(ders, leaf.Cert.Raw)
	for _, c := range chain {
		ders = append(ders, c.Cert.Raw)
	}
	return tls.Certificate{
		Certificate: ders,
		PrivateKey:  leaf.Key,
		Leaf:        leaf.Cert,
	}
}

// ChainPEM returns leaf followed by the chain certificates as concatenated
// PEM blocks, the format nginx and openssl expect in a certificate file.
func ChainPEM(leaf *Cert, chain ...*Cert) []byte {
	var buf bytes.Buffer
	buf.Write(leaf.CertPEM())
	for _, c := range chain {
		buf.Write(c.CertPEM())
	}
	return buf.Bytes()
}

// OCSPStatus is the certificate status reported in an OCSP response.
type OCSPStatus int

const (
	// OCSPGood reports that the certificate is not revoked.
	OCSPGood OCSPStatus = iota
	// OCSPRevoked reports that the certificate is revoked.
	OCSPRevoked
)

// oidOCSPBasic returns id-pkix-ocsp-basic, the type of a BasicOCSPResponse.
func oidOCSPBasic() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
}

// oidSHA1 returns the OID of SHA-1, the CertID hash every OCSP client
// understands.
func oidSHA1() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26} }

// ocspSigAlg describes how to sign an OCSP response with a given issuer key.
type ocspSigAlg struct {
	algorithm pkix.AlgorithmIdentifier
	hash      crypto.Hash // zero for Ed25519, which signs the message itself
}

// asn1NULL returns the DER NULL used as AlgorithmIdentifier parameters where
// the algorithm's specification demands it (SHA-1 and RSA PKCS #1 v1.5).
func asn1NULL() asn1.RawValue { return asn1.RawValue{Tag: asn1.TagNull} }

// ocspSignatureAlgorithm returns the signature algorithm for key: the same
// one crypto/x509 picks by default for certificates, so a response is signed
// exactly as the issuer's certificates are.
func ocspSignatureAlgorithm(key crypto.Signer) (ocspSigAlg, error) {
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		return ocspSigAlg{
			algorithm: pkix.AlgorithmIdentifier{
				Algorithm:  asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, // sha256WithRSAEncryption
				Parameters: asn1NULL(),
			},
			hash: crypto.SHA256,
		}, nil
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P224(), elliptic.P256():
			return ocspSigAlg{
				algorithm: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}}, // ecdsa-with-SHA256
				hash:      crypto.SHA256,
			}, nil
		case elliptic.P384():
			return ocspSigAlg{
				algorithm: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}}, // ecdsa-with-SHA384
				hash:      crypto.SHA384,
			}, nil
		}
		return ocspSigAlg{}, fmt.Errorf("unsupported ECDSA curve %s", pub.Curve.Params().Name)
	case ed25519.PublicKey:
		return ocspSigAlg{
			algorithm: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 3, 101, 112}}, // id-Ed25519
		}, nil
	default:
		return ocspSigAlg{}, fmt.Errorf("unsupported issuer key type %T", pub)
	}
}

// The following types mirror the ASN.1 of RFC 6960 section 4.2.1. The OCSP
// module uses explicit tagging by default, hence "explicit" on the tagged
// fields that are not marked IMPLICIT in the RFC.

type ocspResponse struct {
	Status        asn1.Enumerated
	ResponseBytes ocspResponseBytes `asn1:"explicit,tag:0"`
}

type ocspResponseBytes struct {
	ResponseType asn1.ObjectIdentifier
	Response     []byte
}

type basicOCSPResponse struct {
	TBSResponseData    asn1.RawValue
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          asn1.BitString
}

type responseData struct {
	// Version is DEFAULT v1 and so, in DER, always omitted.
	ResponderID asn1.RawValue // byKey [2] EXPLICIT KeyHash
	ProducedAt  time.Time     `asn1:"generalized"`
	Responses   []singleResponse
}

type certID struct {
	HashAlgorithm  pkix.AlgorithmIdentifier
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	SerialNumber   *big.Int
}

type singleResponse struct {
	CertID     certID
	CertStatus asn1.RawValue
	ThisUpdate time.Time `asn1:"generalized"`
	NextUpdate time.Time `asn1:"generalized,explicit,tag:0,optional"`
}

type revokedInfo struct {
	RevocationTime time.Time `asn1:"generalized"`
}

// OCSPResponse returns a DER OCSPResponse (RFC 6960) for c, signed directly
// by c's issuer, suitable for tls.Certificate.OCSPStaple. The response
// reports status for the period thisUpdate to nextUpdate; a zero nextUpdate
// omits the field. A revoked status gives thisUpdate as the revocation time.
// Times are truncated to whole seconds, as the encoding requires.
func (c *Cert) OCSPResponse(status OCSPStatus, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	der, err := c.buildOCSPResponse(status, thisUpdate, nextUpdate)
	if err != nil {
		return nil, fmt.Errorf("testpki: OCSP response for %q: %w", c.Cert.Subject.CommonName, err)
	}
	return der, nil
}

// buildOCSPResponse does the work of OCSPResponse; errors are wrapped there.
func (c *Cert) buildOCSPResponse(status OCSPStatus, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	issuer := c.Issuer
	if issuer == nil {
		return nil, errors.New("certificate has no issuer")
	}
	alg, err := ocspSignatureAlgorithm(issuer.Key)
	if err != nil {
		return nil, err
	}

	issuerKeyBits, err := publicKeyBits(issuer.Cert.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, err
	}
	// The responder is the issuer itself, identified by the SHA-1 of its
	// public key (RFC 6960 ResponderID byKey). The CertID key hash is the
	// same value by definition.
	keyHash := sha1.Sum(issuerKeyBits)
	nameHash := sha1.Sum(issuer.Cert.RawSubject)

	keyHashDER, err := asn1.Marshal(keyHash[:])
	if err != nil {
		return nil, fmt.Errorf("marshal responder key hash: %w", err)
	}

	utcSecond := func(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

	var certStatus asn1.RawValue
	switch status {
	case OCSPGood:
		// good [0] IMPLICIT NULL: a primitive, empty context tag.
		certStatus = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0}
	case OCSPRevoked:
		// revoked [1] IMPLICIT RevokedInfo: the SEQUENCE's contents under a
		// constructed context tag.
		ri, err := asn1.Marshal(revokedInfo{RevocationTime: utcSecond(thisUpdate)})
		if err != nil {
			return nil, fmt.Errorf("marshal revoked info: %w", err)
		}
		var seq asn1.RawValue
		if _, err := asn1.Unmarshal(ri, &seq); err != nil {
			return nil, fmt.Errorf("re-read revoked info: %w", err)
		}
		certStatus = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: seq.Bytes}
	default:
		return nil, fmt.Errorf("unknown OCSP status %d", int(status))
	}

	var next time.Time
	if !nextUpdate.IsZero() {
		next = utcSecond(nextUpdate)
	}

	tbs, err := asn1.Marshal(responseData{
		ResponderID: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: keyHashDER},
		ProducedAt:  utcSecond(time.Now()),
		Responses: []singleResponse{{
			CertID: certID{
				HashAlgorithm:  pkix.AlgorithmIdentifier{Algorithm: oidSHA1(), Parameters: asn1NULL()},
				IssuerNameHash: nameHash[:],
				IssuerKeyHash:  keyHash[:],
				SerialNumber:   c.Cert.SerialNumber,
			},
			CertStatus: certStatus,
			ThisUpdate: utcSecond(thisUpdate),
			NextUpdate: next,
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("marshal response data: %w", err)
	}

	signed := tbs
	if alg.hash != 0 {
		h := alg.hash.New()
		h.Write(tbs)
		signed = h.Sum(nil)
	}
	sig, err := issuer.Key.Sign(rand.Reader, signed, alg.hash)
	if err != nil {
		return nil, fmt.Errorf("sign response: %w", err)
	}

	basic, err := asn1.Marshal(basicOCSPResponse{
		TBSResponseData:    asn1.RawValue{FullBytes: tbs},
		SignatureAlgorithm: alg.algorithm,
		Signature:          asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		return nil, fmt.Errorf("marshal basic response: %w", err)
	}

	der, err := asn1.Marshal(ocspResponse{
		Status:        0, // successful
		ResponseBytes: ocspResponseBytes{ResponseType: oidOCSPBasic(), Response: basic},
	})
	if err != nil {
		return nil, fmt.Errorf("marshal response: %w", err)
	}
	return der, nil
}
