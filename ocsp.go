package securehttp

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
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
func (t *Transport) checkStaple(cs tls.ConnectionState, chains [][]*x509.Certificate) error {
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
		err := t.verifyStaple(cs.OCSPResponse, leaf, chain[1])
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

func (t *Transport) verifyStaple(der []byte, leaf, issuer *x509.Certificate) error {
	resp, err := ocsp.ParseResponseForCert(der, leaf, issuer)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrOCSPStaple, err)
	}
	if resp.Certificate != nil {
		// A delegated responder must be authorised for OCSP signing.
		if !slices.Contains(resp.Certificate.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return fmt.Errorf("%w: the responder certificate is not authorised for OCSP signing", ErrOCSPStaple)
		}
	}
	now := t.now()
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
	switch resp.Status {
	case ocsp.Good:
		return nil
	case ocsp.Revoked:
		return fmt.Errorf("%w: %q revoked at %s", ErrRevoked, leaf.Subject.CommonName, resp.RevokedAt.Format(time.RFC3339))
	default:
		return fmt.Errorf("%w: the responder does not know the certificate", ErrOCSPStaple)
	}
}
