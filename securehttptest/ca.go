package securehttptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testpki"
)

// CA is a certificate authority for tests: a root, the intermediate that
// issues its certificates, and a backup key held in reserve, as production
// pin sets name one. Its keys live in memory only. A CA is safe for
// concurrent use.
type CA struct {
	root  *testpki.Cert
	inter *testpki.Cert
	// other is a second intermediate of root, which issues MisIssued
	// certificates: trusted through root, named by no pin.
	other  *testpki.Cert
	backup string // the pin of the key held in reserve
}

// Lifetimes of what a CA issues, unless Validity says otherwise: long
// enough that no certificate of a test is warned of as expiring (the
// client warns 14 days ahead), short enough to look like a real one.
const (
	leafLifetime = 90 * 24 * time.Hour
	backdate     = time.Hour
)

// defaultCA is the CA of the servers made without WithCA, made on first
// use and never changed, so that every server of a test binary chains to
// one root and a client made from any server's Config reaches them all.
var defaultCA = sync.OnceValues(newCA)

// NewCA returns a new CA, with a root and an intermediate of its own.
func NewCA(t testing.TB) *CA {
	t.Helper()
	ca, err := newCA()
	if err != nil {
		t.Fatalf("securehttptest: NewCA: %v", err)
	}
	return ca
}

func newCA() (*CA, error) {
	root, err := testpki.NewRoot("securehttptest root", testpki.Options{})
	if err != nil {
		return nil, err
	}
	inter, err := root.NewIntermediate("securehttptest intermediate", testpki.Options{})
	if err != nil {
		return nil, err
	}
	other, err := root.NewIntermediate("securehttptest unpinned intermediate", testpki.Options{})
	if err != nil {
		return nil, err
	}
	backup, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(backup.Public())
	if err != nil {
		return nil, err
	}
	return &CA{root: root, inter: inter, other: other, backup: securehttp.SPKIPin(&x509.Certificate{RawSubjectPublicKeyInfo: der})}, nil
}

// serversCA returns the CA of servers made with s: WithCA's, or the
// shared one.
func serversCA(t testing.TB, s settings) *CA {
	t.Helper()
	if s.ca != nil {
		return s.ca
	}
	ca, err := defaultCA()
	if err != nil {
		t.Fatalf("securehttptest: the shared CA: %v", err)
	}
	return ca
}

// Pool returns a new pool holding the CA's root, for Config.RootCAs or a
// server's tls.Config.ClientCAs.
func (ca *CA) Pool() *x509.CertPool { return ca.root.Pool() }

// RootPEM returns the CA's root certificate in PEM, for code that reads
// its roots from a file.
func (ca *CA) RootPEM() []byte { return ca.root.CertPEM() }

// Pins returns the pins of a PinSet for the CA's certificates: the pin of
// its intermediate, which every certificate it issues chains to, and a
// backup pin, of a key held in reserve.
func (ca *CA) Pins() []string { return []string{ca.inter.SPKIPin(), ca.backup} }

// Issue returns a new certificate, for server and client authentication,
// issued by the CA's intermediate. It accepts the options that describe a
// certificate: Hosts (127.0.0.1 without it), Key, WeakKey, Validity,
// Expired, NotYetValid, MustStaple, MisIssued, StapleOCSP, StapleRevoked
// and StapleStale.
func (ca *CA) Issue(t testing.TB, opts ...Option) *Cert {
	t.Helper()
	s := apply(t, toIssue, "CA.Issue", opts)
	hosts := s.cert.hosts
	if len(hosts) == 0 {
		hosts = []string{loopback}
	}
	c, err := ca.issue(hosts[0], hosts, s.cert)
	if err != nil {
		t.Fatalf("securehttptest: CA.Issue: %v", err)
	}
	return c
}

// loopback is where every server of the kit listens.
const loopback = "127.0.0.1"

// issue makes a certificate with common name cn for hosts, as cs says.
func (ca *CA) issue(cn string, hosts []string, cs certSettings) (*Cert, error) {
	o := testpki.Options{
		Key:         cs.key,
		NotBefore:   cs.notBefore,
		NotAfter:    cs.notAfter,
		MustStaple:  cs.mustStaple,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if cs.weak {
		o.KeyType = testpki.RSA1024
	}
	if o.NotBefore.IsZero() {
		now := time.Now()
		o.NotBefore, o.NotAfter = now.Add(-backdate), now.Add(leafLifetime)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			o.IPs = append(o.IPs, ip)
		} else {
			o.DNSNames = append(o.DNSNames, h)
		}
	}
	issuer := ca.inter
	if cs.misIssued {
		issuer = ca.other
	}
	leaf, err := issuer.NewLeaf(cn, o)
	if err != nil {
		return nil, err
	}
	c := &Cert{leaf: leaf, issuer: issuer}
	if cs.staple != noStaple {
		now := time.Now()
		status, thisUpdate, nextUpdate := testpki.OCSPGood, now.Add(-time.Hour), now.Add(24*time.Hour)
		switch cs.staple {
		case stapleRevoked:
			status = testpki.OCSPRevoked
		case stapleStale:
			thisUpdate, nextUpdate = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
		}
		if c.staple, err = leaf.OCSPResponse(status, thisUpdate, nextUpdate); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Cert is a certificate issued by a CA, with its private key and the
// intermediate that issued it.
type Cert struct {
	leaf, issuer *testpki.Cert
	staple       []byte // a DER OCSP response, or nil
}

// Leaf returns the certificate.
func (c *Cert) Leaf() *x509.Certificate { return c.leaf.Cert }

// TLSCertificate returns the certificate, its intermediate and its key, and
// the OCSP response stapled to it, for a tls.Config of a server or a
// client of your own.
func (c *Cert) TLSCertificate() tls.Certificate {
	tc := testpki.TLSCertificate(c.leaf, c.issuer)
	tc.OCSPStaple = c.staple
	return tc
}

// Pin returns the certificate's SPKI pin, "sha256/" and the base64 of the
// SHA-256 of its public key (RFC 7469), as PinSet.Pins takes it.
func (c *Cert) Pin() string { return c.leaf.SPKIPin() }

// Fingerprint returns the SHA-256 of the certificate in colon-separated
// hex, as "openssl x509 -fingerprint -sha256" prints it and PinSet.Pins
// takes it.
func (c *Cert) Fingerprint() string { return c.leaf.Fingerprint() }

// Files writes the certificate, followed by its intermediate, and its key
// (PKCS #8, readable by the owner only) as PEM to two files in a directory
// of t's, as securehttp.LoadClientCert reads them.
func (c *Cert) Files(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, testpki.ChainPEM(c.leaf, c.issuer), 0o600); err != nil {
		t.Fatalf("securehttptest: Cert.Files: %v", err)
	}
	if err := os.WriteFile(keyFile, c.leaf.KeyPEM(), 0o600); err != nil {
		t.Fatalf("securehttptest: Cert.Files: %v", err)
	}
	return certFile, keyFile
}
