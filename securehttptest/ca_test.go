package securehttptest_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/securehttptest"
)

// verifyChain verifies c's chain, as its TLSCertificate serves it, against
// ca's root for host.
func verifyChain(ca *securehttptest.CA, c *securehttptest.Cert, host string) ([][]*x509.Certificate, error) {
	tc := c.TLSCertificate()
	inters := x509.NewCertPool()
	for _, der := range tc.Certificate[1:] {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		inters.AddCert(cert)
	}
	return c.Leaf().Verify(x509.VerifyOptions{DNSName: host, Roots: ca.Pool(), Intermediates: inters})
}

// TestIssue: a certificate is for the hosts, key, validity and features
// asked for, chains to the CA's root through the pinned intermediate, and
// serves client and server authentication.
func TestIssue(t *testing.T) {
	t.Parallel()
	ca := securehttptest.NewCA(t)
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notBefore, notAfter := time.Now().Add(-time.Minute).Truncate(time.Second), time.Now().Add(time.Hour).Truncate(time.Second)

	c := ca.Issue(t, securehttptest.Hosts("api.test", "10.0.0.1"), securehttptest.Key(key),
		securehttptest.Validity(notBefore, notAfter), securehttptest.MustStaple())
	leaf := c.Leaf()
	if leaf.Subject.CommonName != "api.test" || !slices.Equal(leaf.DNSNames, []string{"api.test"}) ||
		len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Errorf("got CN %q, names %v, IPs %v; want api.test, [api.test], [10.0.0.1]", leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(key.Public()) {
		t.Errorf("got a certificate for %T, want one for the given key", leaf.PublicKey)
	}
	if !leaf.NotBefore.Equal(notBefore) || !leaf.NotAfter.Equal(notAfter) {
		t.Errorf("got validity %v to %v, want %v to %v", leaf.NotBefore, leaf.NotAfter, notBefore, notAfter)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("got extended key usages %v, want server and client authentication", leaf.ExtKeyUsage)
	}
	if !slices.ContainsFunc(leaf.Extensions, func(e pkix.Extension) bool { return e.Id.String() == "1.3.6.1.5.5.7.1.24" }) {
		t.Error("got no TLS Feature extension, want must-staple")
	}
	chains, err := verifyChain(ca, c, "api.test")
	if err != nil {
		t.Fatalf("chain: %v", err)
	}
	if got := securehttp.SPKIPin(chains[0][1]); got != ca.Pins()[0] {
		t.Errorf("got intermediate pin %s, want the CA's first pin %s", got, ca.Pins()[0])
	}

	def := ca.Issue(t)
	if !slices.EqualFunc(def.Leaf().IPAddresses, []net.IP{net.IPv4(127, 0, 0, 1)}, net.IP.Equal) || len(def.Leaf().DNSNames) != 0 {
		t.Errorf("default: got names %v and IPs %v, want 127.0.0.1 only", def.Leaf().DNSNames, def.Leaf().IPAddresses)
	}
	if pub, ok := def.Leaf().PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("default: got a %T key, want ECDSA P-256", def.Leaf().PublicKey)
	}
	if life := time.Until(def.Leaf().NotAfter); life < 15*24*time.Hour {
		t.Errorf("default: got a certificate that expires in %v, want one the client does not warn of (14 days)", life)
	}
	if weak, ok := ca.Issue(t, securehttptest.WeakKey()).Leaf().PublicKey.(*rsa.PublicKey); !ok || weak.N.BitLen() != 1024 {
		t.Errorf("WeakKey: got a %T key, want RSA 1024", weak)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ca.Issue(t, securehttptest.Key(edKey)).Leaf().PublicKey.(ed25519.PublicKey); !ok {
		t.Error("Key(an Ed25519 key): got another key type")
	}
}

// TestIssueValidity: Expired and NotYetValid make certificates that do
// not verify now.
func TestIssueValidity(t *testing.T) {
	t.Parallel()
	ca := securehttptest.NewCA(t)
	for _, opt := range []securehttptest.Option{securehttptest.Expired(), securehttptest.NotYetValid()} {
		c := ca.Issue(t, opt)
		_, err := verifyChain(ca, c, "127.0.0.1")
		if inv, ok := err.(x509.CertificateInvalidError); !ok || inv.Reason != x509.Expired {
			t.Errorf("got %v for a certificate valid from %v to %v, want it refused as expired", err, c.Leaf().NotBefore, c.Leaf().NotAfter)
		}
	}
}

// TestIssueMisIssued: a MisIssued certificate verifies against the CA's
// root, and none of its chain's certificates matches the CA's pins.
func TestIssueMisIssued(t *testing.T) {
	t.Parallel()
	ca := securehttptest.NewCA(t)
	chains, err := verifyChain(ca, ca.Issue(t, securehttptest.MisIssued()), "127.0.0.1")
	if err != nil {
		t.Fatalf("got %v, want a chain that verifies", err)
	}
	for _, cert := range chains[0] {
		if pin := securehttp.SPKIPin(cert); slices.Contains(ca.Pins(), pin) {
			t.Errorf("%s matches the CA's pins, want no certificate of the chain to", cert.Subject.CommonName)
		}
	}
}

// TestCAPins: a CA's pins are its intermediate's and a backup, which no
// certificate of another CA has; CAs share no key.
func TestCAPins(t *testing.T) {
	t.Parallel()
	a, b := securehttptest.NewCA(t), securehttptest.NewCA(t)
	pa, pb := a.Pins(), b.Pins()
	if len(pa) != 2 || pa[0] == pa[1] {
		t.Fatalf("got pins %q, want two different ones", pa)
	}
	if slices.ContainsFunc(pa, func(p string) bool { return slices.Contains(pb, p) }) {
		t.Errorf("two CAs share a pin: %q and %q", pa, pb)
	}
	if _, err := verifyChain(a, b.Issue(t), "127.0.0.1"); err == nil {
		t.Error("a certificate of one CA verifies against another's root, want it refused")
	}
	block, _ := pem.Decode(a.RootPEM())
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !root.IsCA || securehttp.SPKIPin(root) == pa[0] || securehttp.SPKIPin(root) == pa[1] {
		t.Errorf("RootPEM: got %v (CA %t), want the root, which is not pinned", err, err == nil && root.IsCA)
	}
}

// TestCertPinsAndFiles: a certificate's pin and fingerprint are those
// securehttp and openssl compute, and its files load with LoadClientCert,
// the key readable by its owner only.
func TestCertPinsAndFiles(t *testing.T) {
	t.Parallel()
	c := securehttptest.NewCA(t).Issue(t, securehttptest.Hosts("reporting-service"))
	if got, want := c.Pin(), securehttp.SPKIPin(c.Leaf()); got != want {
		t.Errorf("got pin %s, want %s", got, want)
	}
	sum := sha256.Sum256(c.Leaf().Raw)
	if got, want := strings.ReplaceAll(c.Fingerprint(), ":", ""), strings.ToUpper(hex.EncodeToString(sum[:])); got != want {
		t.Errorf("got fingerprint %s, want %s", got, want)
	}
	certFile, keyFile := c.Files(t)
	if info, err := os.Stat(keyFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("key file: got %v, %v; want mode 0600", info.Mode(), err)
	}
	cc, err := securehttp.LoadClientCert(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadClientCert: %v", err)
	}
	defer cc.Close()
	tc, err := cc.GetClientCertificate(nil)
	if err != nil || len(tc.Certificate) != 2 || !tc.Leaf.Equal(c.Leaf()) {
		t.Errorf("got %v with %d certificates, want the certificate and its intermediate", err, len(tc.Certificate))
	}
}

// TestIssueStaples: a certificate's TLSCertificate carries the OCSP
// response its staple option asks for, signed by its issuer.
func TestIssueStaples(t *testing.T) {
	t.Parallel()
	ca := securehttptest.NewCA(t)
	tests := []struct {
		opt        securehttptest.Option
		status     int
		nextPassed bool
	}{
		{securehttptest.StapleOCSP(), ocsp.Good, false},
		{securehttptest.StapleRevoked(), ocsp.Revoked, false},
		{securehttptest.StapleStale(), ocsp.Good, true},
	}
	for _, tt := range tests {
		c := ca.Issue(t, tt.opt)
		chains, err := verifyChain(ca, c, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ocsp.ParseResponseForCert(c.TLSCertificate().OCSPStaple, c.Leaf(), chains[0][1])
		if err != nil {
			t.Fatalf("got %v, want a staple signed by the issuer", err)
		}
		if resp.Status != tt.status || resp.NextUpdate.Before(time.Now()) != tt.nextPassed {
			t.Errorf("got status %d, next update %v; want status %d, next update passed %t", resp.Status, resp.NextUpdate, tt.status, tt.nextPassed)
		}
	}
	if staple := ca.Issue(t).TLSCertificate().OCSPStaple; staple != nil {
		t.Errorf("got a staple of %d bytes without a staple option, want none", len(staple))
	}
}
