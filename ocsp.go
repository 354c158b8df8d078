package securehttp

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"golang.org/x/crypto/ocsp"
)

// oidTLSFeature is the TLS Feature extension (RFC 7633); with the
// status_request feature it marks a must-staple certificate.
var oidTLSFeature = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}

// featureStatusRequest is the TLS extension number of status_request.
const featureStatusRequest = 5

// stapleSkew tolerates small clock differences with the OCSP responder.
const stapleSkew = 5 * time.Minute

// maxStapleAge bounds a response that gives no nextUpdate.
const maxStapleAge = 7 * 24 * time.Hour

// mustStaple reports whether leaf demands a stapled OCSP response.
func mustStaple(leaf *x509.Certificate) bool {
	for _, ext := range leaf.Extensions {
		if !ext.Id.Equal(oidTLSFeature) {
			continue
		}
		var features []int
		if rest, err := asn1.Unmarshal(ext.Value, &features); err != nil || len(rest) != 0 {
			return true // an unreadable feature list is treated as the strictest one
		}
		if slices.Contains(features, featureStatusRequest) {
			return true
		}
	}
	return false
}

// checkStaple verifies a stapled OCSP response against the issuer in the
// verified chain, refuses a revoked certificate, and requires a staple when
// the configuration or the certificate asks for one. A staple that is present
// must be valid: a server that staples garbage or a stale answer is refused.
//
// On a resumed session crypto/tls restores the staple of the full handshake,
// which was judged fresh then; judging it at the current time would refuse
// a session that is still good (its life is bounded by the session ticket's,
// at most 7 days in TLS 1.3). So a resumed session's staple is checked for
// everything but its age: issuer, signature, CertID and status. A required
// staple is still required.
func (t *transport) checkStaple(cs tls.ConnectionState, chains [][]*x509.Certificate) error {
	leaf := chains[0][0]
	if len(cs.OCSPResponse) == 0 {
		if t.requireStaple || mustStaple(leaf) {
			return fmt.Errorf("%w: the server stapled no OCSP response for %q", ErrOCSPStaple, leaf.Subject.CommonName)
		}
		return nil
	}
	var lastErr error
	for _, chain := range chains {
		if len(chain) < 2 {
			continue
		}
		err := t.verifyStaple(cs.OCSPResponse, leaf, chain[1], !cs.DidResume)
		if err == nil || errors.Is(err, ErrRevoked) {
			return err
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("%w: no issuer to check it against", ErrOCSPStaple)
	}
	return lastErr
}

// verifyStaple checks der for leaf. With fresh false, the times in the
// response and in a delegated responder's certificate are not judged: the
// staple is the one a full handshake already judged.
func (t *transport) verifyStaple(der []byte, leaf, issuer *x509.Certificate, fresh bool) error {
	// The parser is given no issuer: with one, it takes any certificate sent
	// with the response for a delegated responder, and so refuses a response
	// the issuer signed and sent its own certificate with, as openssl ocsp
	// writes them by default (golang/go#59641). The signer is checked here.
	resp, err := ocsp.ParseResponseForCert(der, leaf, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrOCSPStaple, err)
	}
	now := t.now()
	if r := resp.Certificate; r == nil || r.Equal(issuer) {
		if err := resp.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("%w: %v", ErrOCSPStaple, err)
		}
	} else {
		// A delegated responder, whose signature the parser checked, must be
		// certified by the issuer for OCSP signing, and be valid now.
		if err := r.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("%w: the responder certificate is not from the issuer: %v", ErrOCSPStaple, err)
		}
		if !slices.Contains(r.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return fmt.Errorf("%w: the responder certificate is not authorised for OCSP signing", ErrOCSPStaple)
		}
		if fresh && (now.Before(r.NotBefore) || now.After(r.NotAfter)) {
			return fmt.Errorf("%w: the responder certificate is not valid at %s", ErrOCSPStaple, now.Format(time.RFC3339))
		}
	}
	if err := checkCertID(resp, leaf, issuer); err != nil {
		return err
	}
	if fresh {
		if err := checkStapleTimes(resp, now); err != nil {
			return err
		}
	}
	switch resp.Status {
	case ocsp.Good:
		return nil
	case ocsp.Revoked:
		return fmt.Errorf("%w: %q revoked at %s", ErrRevoked, leaf.Subject.CommonName, resp.RevokedAt.Format(time.RFC3339))
	default:
		return fmt.Errorf("%w: the responder does not know the certificate", ErrOCSPStaple)
	}
}

// checkStapleTimes refuses a response that is not yet valid or has expired
// at now.
func checkStapleTimes(resp *ocsp.Response, now time.Time) error {
	if resp.ThisUpdate.After(now.Add(stapleSkew)) {
		return fmt.Errorf("%w: response is not valid until %s", ErrOCSPStaple, resp.ThisUpdate.Format(time.RFC3339))
	}
	expires := resp.NextUpdate
	if expires.IsZero() {
		// Without nextUpdate the responder promises nothing; bound its age.
		expires = resp.ThisUpdate.Add(maxStapleAge)
	}
	if now.After(expires.Add(stapleSkew)) {
		return fmt.Errorf("%w: response expired at %s", ErrOCSPStaple, expires.Format(time.RFC3339))
	}
	return nil
}

// ocspResponseData is the start of RFC 6960 ResponseData, down to the
// CertIDs, which x/crypto/ocsp reads but does not return (golang/go#81396).
// encoding/asn1 ignores the fields left out.
type ocspResponseData struct {
	Version     int `asn1:"optional,explicit,default:0,tag:0"`
	ResponderID asn1.RawValue
	ProducedAt  time.Time `asn1:"generalized"`
	Responses   []struct{ CertID ocspCertID }
}

type ocspCertID struct {
	HashAlgorithm pkix.AlgorithmIdentifier
	NameHash      []byte
	KeyHash       []byte
	Serial        *big.Int
}

// checkCertID checks that the single response resp was read from names the
// leaf's issuer as well as its serial number: a serial is unique only within
// one issuer, and ParseResponseForCert matches the serial alone.
func checkCertID(resp *ocsp.Response, leaf, issuer *x509.Certificate) error {
	var data ocspResponseData
	if _, err := asn1.Unmarshal(resp.TBSResponseData, &data); err != nil {
		return fmt.Errorf("%w: %v", ErrOCSPStaple, err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return fmt.Errorf("%w: issuer key: %v", ErrOCSPStaple, err)
	}
	if !resp.IssuerHash.Available() {
		return fmt.Errorf("%w: unsupported CertID hash %v", ErrOCSPStaple, resp.IssuerHash)
	}
	h := resp.IssuerHash.New()
	h.Write(issuer.RawSubject)
	nameHash := h.Sum(nil)
	h.Reset()
	h.Write(spki.PublicKey.RightAlign())
	keyHash := h.Sum(nil)
	for _, r := range data.Responses {
		// The parser read the first response for the leaf's serial.
		if r.CertID.Serial == nil || r.CertID.Serial.Cmp(leaf.SerialNumber) != 0 {
			continue
		}
		if !bytes.Equal(r.CertID.NameHash, nameHash) || !bytes.Equal(r.CertID.KeyHash, keyHash) {
			return fmt.Errorf("%w: the response is for the serial number under another issuer", ErrOCSPStaple)
		}
		return nil
	}
	return fmt.Errorf("%w: no response for the certificate", ErrOCSPStaple)
}
