package testpki

import (
	"bytes"
	"context"
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
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// must is Must that fails the test instead of panicking, so that a
// generation failure is reported against the test that caused it. It is
// curried so that it can wrap a constructor call: must(t)(NewRoot(...)).
func must(t *testing.T) func(*Cert, error) *Cert {
	return func(c *Cert, err error) *Cert {
		t.Helper()
		if err != nil {
			t.Fatalf("generate certificate: %v", err)
		}
		return c
	}
}

// findExtension returns the extension with the given OID, or nil.
func findExtension(c *x509.Certificate, oid asn1.ObjectIdentifier) *pkix.Extension {
	for i := range c.Extensions {
		if c.Extensions[i].Id.Equal(oid) {
			return &c.Extensions[i]
		}
	}
	return nil
}

// verify runs x509 verification of leaf for name against root, with the
// given intermediates, at the current time.
func verify(leaf *Cert, name string, root *Cert, intermediates ...*Cert) ([][]*x509.Certificate, error) {
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c.Cert)
	}
	return leaf.Cert.Verify(x509.VerifyOptions{
		DNSName:       name,
		Roots:         root.Pool(),
		Intermediates: inter,
	})
}

// requireOpenSSL skips the calling (sub)test when there is no openssl binary,
// so that only the comparison with openssl is skipped and never the checks
// that need nothing but the standard library.
func requireOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not found on PATH; skipping the cross-check against openssl")
	}
}

// runOpenSSL runs openssl with args and stdin and returns its standard output,
// its standard error and the error from running it.
func runOpenSSL(t *testing.T, stdin []byte, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// openssl is runOpenSSL for invocations that must succeed.
func openssl(t *testing.T, stdin []byte, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := runOpenSSL(t, stdin, args...)
	if err != nil {
		t.Fatalf("openssl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout, stderr
}

func TestKeyTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		keyType   KeyType
		checkKey  func(crypto.PublicKey) bool
		wantSig   x509.SignatureAlgorithm
		wantUsage x509.KeyUsage // of a leaf
	}{
		{
			keyType: ECDSAP256,
			checkKey: func(k crypto.PublicKey) bool {
				p, ok := k.(*ecdsa.PublicKey)
				return ok && p.Curve.Params().Name == "P-256"
			},
			wantSig:   x509.ECDSAWithSHA256,
			wantUsage: x509.KeyUsageDigitalSignature,
		},
		{
			keyType: ECDSAP384,
			checkKey: func(k crypto.PublicKey) bool {
				p, ok := k.(*ecdsa.PublicKey)
				return ok && p.Curve.Params().Name == "P-384"
			},
			wantSig:   x509.ECDSAWithSHA384,
			wantUsage: x509.KeyUsageDigitalSignature,
		},
		{
			keyType: ECDSAP224,
			checkKey: func(k crypto.PublicKey) bool {
				p, ok := k.(*ecdsa.PublicKey)
				return ok && p.Curve.Params().Name == "P-224"
			},
			wantSig:   x509.ECDSAWithSHA256,
			wantUsage: x509.KeyUsageDigitalSignature,
		},
		{
			keyType: RSA2048,
			checkKey: func(k crypto.PublicKey) bool {
				p, ok := k.(*rsa.PublicKey)
				return ok && p.N.BitLen() == 2048
			},
			wantSig:   x509.SHA256WithRSA,
			wantUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		},
		{
			keyType: RSA1024,
			checkKey: func(k crypto.PublicKey) bool {
				p, ok := k.(*rsa.PublicKey)
				return ok && p.N.BitLen() == 1024
			},
			wantSig:   x509.SHA256WithRSA,
			wantUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		},
		{
			keyType: Ed25519,
			checkKey: func(k crypto.PublicKey) bool {
				_, ok := k.(ed25519.PublicKey)
				return ok
			},
			wantSig:   x509.PureEd25519,
			wantUsage: x509.KeyUsageDigitalSignature,
		},
	}
	for _, tt := range tests {
		t.Run(tt.keyType.String(), func(t *testing.T) {
			t.Parallel()
			o := Options{KeyType: tt.keyType}
			root := must(t)(NewRoot("Test Root", o))
			leaf := must(t)(root.NewLeaf("leaf", Options{KeyType: tt.keyType, DNSNames: []string{"example.test"}}))

			for _, c := range []*Cert{root, leaf} {
				name := c.Cert.Subject.CommonName
				if !tt.checkKey(c.Cert.PublicKey) {
					t.Errorf("%s: got public key %T, want a %v key", name, c.Cert.PublicKey, tt.keyType)
				}
				if got := c.Cert.SignatureAlgorithm; got != tt.wantSig {
					t.Errorf("%s: got signature algorithm %v, want %v", name, got, tt.wantSig)
				}
				if got := c.Cert.SerialNumber; got.Sign() <= 0 || got.BitLen() != 128 {
					t.Errorf("%s: got serial %v (%d bits), want a positive 128-bit serial", name, got, got.BitLen())
				}
				if got := len(c.Cert.SubjectKeyId); got != 20 {
					t.Errorf("%s: got SubjectKeyId of %d bytes, want 20", name, got)
				}
				if !c.Cert.BasicConstraintsValid {
					t.Errorf("%s: got BasicConstraintsValid false, want true", name)
				}
				// KeyPEM must round-trip to the same key for every key type,
				// because the demo writes it to disk for nginx and openssl.
				block, rest := pem.Decode(c.KeyPEM())
				if block == nil || block.Type != "PRIVATE KEY" || len(rest) != 0 {
					t.Fatalf("%s: KeyPEM: got %v (rest %d bytes), want one PRIVATE KEY block", name, block, len(rest))
				}
				key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
				if err != nil {
					t.Fatalf("%s: parse KeyPEM: %v", name, err)
				}
				if k, ok := key.(interface{ Equal(crypto.PrivateKey) bool }); !ok || !k.Equal(c.Key) {
					t.Errorf("%s: got KeyPEM key %T that does not equal Key, want the same key", name, key)
				}
			}

			if !root.Cert.IsCA {
				t.Errorf("root: got IsCA false, want true")
			}
			if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; root.Cert.KeyUsage != want {
				t.Errorf("root: got KeyUsage %v, want %v", root.Cert.KeyUsage, want)
			}
			if root.Issuer != nil {
				t.Errorf("root: got Issuer %v, want nil", root.Issuer)
			}
			if leaf.Cert.IsCA {
				t.Errorf("leaf: got IsCA true, want false")
			}
			if leaf.Cert.KeyUsage != tt.wantUsage {
				t.Errorf("leaf: got KeyUsage %v, want %v", leaf.Cert.KeyUsage, tt.wantUsage)
			}
			if leaf.Issuer != root {
				t.Errorf("leaf: got Issuer %p, want root %p", leaf.Issuer, root)
			}
			if !bytes.Equal(leaf.Cert.AuthorityKeyId, root.Cert.SubjectKeyId) {
				t.Errorf("leaf: got AuthorityKeyId %x, want root SubjectKeyId %x", leaf.Cert.AuthorityKeyId, root.Cert.SubjectKeyId)
			}
			if bytes.Equal(leaf.Cert.SubjectKeyId, root.Cert.SubjectKeyId) {
				t.Errorf("leaf: got SubjectKeyId equal to the root's (%x), want distinct", leaf.Cert.SubjectKeyId)
			}
			if leaf.Cert.SerialNumber.Cmp(root.Cert.SerialNumber) == 0 {
				t.Errorf("got equal serials %v for root and leaf, want distinct", leaf.Cert.SerialNumber)
			}
			// Go's verifier accepts even the weak key types; rejecting them is
			// the library's policy, which is why they exist here.
			if _, err := verify(leaf, "example.test", root); err != nil {
				t.Errorf("verify leaf: got %v, want success", err)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	root := must(t)(NewRoot("Test Root", Options{}))
	now := time.Now()
	tests := []struct {
		name    string
		gen     func() (*Cert, error)
		wantSub string
	}{
		{"unknown key type", func() (*Cert, error) { return NewRoot("r", Options{KeyType: KeyType(99)}) }, "unknown key type KeyType(99)"},
		{"nil issuer", func() (*Cert, error) { return (*Cert)(nil).NewLeaf("l", Options{}) }, "nil issuer"},
		{"issuer without key", func() (*Cert, error) { return (&Cert{Cert: root.Cert}).NewLeaf("l", Options{}) }, "no key"},
		{"inverted validity", func() (*Cert, error) {
			return root.NewLeaf("l", Options{NotBefore: now, NotAfter: now.Add(-time.Hour)})
		}, "is not after NotBefore"},
		{"OCSP for a root", func() (*Cert, error) {
			_, err := root.OCSPResponse(OCSPGood, now, now.Add(time.Hour))
			return nil, err
		}, "has no issuer"},
		{"unknown OCSP status", func() (*Cert, error) {
			leaf := must(t)(root.NewLeaf("l", Options{}))
			_, err := leaf.OCSPResponse(OCSPStatus(7), now, now.Add(time.Hour))
			return nil, err
		}, "unknown OCSP status 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := tt.gen()
			if err == nil {
				t.Fatalf("got certificate %v and nil error, want an error containing %q", c, tt.wantSub)
			}
			if !strings.HasPrefix(err.Error(), "testpki: ") || !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("got error %q, want prefix %q and substring %q", err, "testpki: ", tt.wantSub)
			}
		})
	}
}

func TestMust(t *testing.T) {
	t.Parallel()
	c := &Cert{}
	wantErr := errors.New("boom")
	tests := []struct {
		name      string
		c         *Cert
		err       error
		wantPanic error
	}{
		{"no error", c, nil, nil},
		{"error", nil, wantErr, wantErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got *Cert
			panicked := func() (p any) {
				defer func() { p = recover() }()
				got = Must(tt.c, tt.err)
				return nil
			}()
			if tt.wantPanic == nil {
				if panicked != nil || got != tt.c {
					t.Errorf("got (%p, panic %v), want (%p, no panic)", got, panicked, tt.c)
				}
				return
			}
			if err, ok := panicked.(error); !ok || !errors.Is(err, tt.wantPanic) {
				t.Errorf("got panic %v, want panic with %v", panicked, tt.wantPanic)
			}
		})
	}
}

func TestChainVerifies(t *testing.T) {
	t.Parallel()
	root := must(t)(NewRoot("Test Root", Options{}))
	inter := must(t)(root.NewIntermediate("Test Intermediate", Options{}))
	leaf := must(t)(inter.NewLeaf("leaf", Options{
		DNSNames: []string{"example.test"},
		IPs:      []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}))
	tests := []struct {
		name    string
		wantErr bool
	}{
		{"example.test", false},
		{"127.0.0.1", false},
		{"::1", false},
		{"other.test", true},
		{"10.0.0.1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			chains, err := verify(leaf, tt.name, root, inter)
			if tt.wantErr {
				var he x509.HostnameError
				if !errors.As(err, &he) {
					t.Errorf("got error %v, want x509.HostnameError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want success", err)
			}
			want := []*x509.Certificate{leaf.Cert, inter.Cert, root.Cert}
			if len(chains) != 1 || len(chains[0]) != len(want) {
				t.Fatalf("got chains %v, want one chain of %d", chains, len(want))
			}
			for i := range want {
				if !chains[0][i].Equal(want[i]) {
					t.Errorf("chain[%d]: got %q, want %q", i, chains[0][i].Subject, want[i].Subject)
				}
			}
		})
	}
}

func TestSelfSignedLeaf(t *testing.T) {
	t.Parallel()
	self := must(t)(SelfSignedLeaf("self", Options{DNSNames: []string{"self.test"}}))
	other := must(t)(NewRoot("Other Root", Options{}))

	if self.Cert.IsCA || !self.Cert.BasicConstraintsValid {
		t.Errorf("got IsCA %v BasicConstraintsValid %v, want false and true", self.Cert.IsCA, self.Cert.BasicConstraintsValid)
	}
	if self.Issuer != nil {
		t.Errorf("got Issuer %v, want nil", self.Issuer)
	}
	if !bytes.Equal(self.Cert.RawIssuer, self.Cert.RawSubject) {
		t.Errorf("got issuer %q, want subject %q", self.Cert.Issuer, self.Cert.Subject)
	}
	if err := self.Cert.CheckSignatureFrom(self.Cert); err == nil {
		// CheckSignatureFrom insists the parent is a CA, so success would
		// mean the certificate claims to be one.
		t.Errorf("got nil error from CheckSignatureFrom(self), want a not-a-CA error")
	}
	if err := self.Cert.CheckSignature(self.Cert.SignatureAlgorithm, self.Cert.RawTBSCertificate, self.Cert.Signature); err != nil {
		t.Errorf("got self-signature error %v, want nil", err)
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}; !equalEKU(self.Cert.ExtKeyUsage, want) {
		t.Errorf("got ExtKeyUsage %v, want %v", self.Cert.ExtKeyUsage, want)
	}

	tests := []struct {
		name    string
		root    *Cert
		wantErr bool
	}{
		{"trusted as itself", self, false},
		{"untrusted", other, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := verify(self, "self.test", tt.root)
			if tt.wantErr {
				var ua x509.UnknownAuthorityError
				if !errors.As(err, &ua) {
					t.Errorf("got error %v, want x509.UnknownAuthorityError", err)
				}
			} else if err != nil {
				t.Errorf("got error %v, want success", err)
			}
		})
	}
}

func equalEKU(a, b []x509.ExtKeyUsage) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestValidityFailures(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name      string
		interOpts Options
		leafOpts  Options
		wantCert  string // common name of the certificate reported as invalid
	}{
		{
			name:     "expired leaf",
			leafOpts: Options{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)},
			wantCert: "leaf",
		},
		{
			name:     "expired leaf by NotAfter alone",
			leafOpts: Options{NotAfter: now.Add(-time.Minute)},
			wantCert: "leaf",
		},
		{
			name:     "not yet valid leaf",
			leafOpts: Options{NotBefore: now.Add(time.Hour)},
			wantCert: "leaf",
		},
		{
			name:      "expired intermediate",
			interOpts: Options{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)},
			wantCert:  "Test Intermediate",
		},
		{
			name:      "not yet valid intermediate",
			interOpts: Options{NotBefore: now.Add(time.Hour)},
			wantCert:  "Test Intermediate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := must(t)(NewRoot("Test Root", Options{}))
			inter := must(t)(root.NewIntermediate("Test Intermediate", tt.interOpts))
			tt.leafOpts.DNSNames = []string{"example.test"}
			leaf := must(t)(inter.NewLeaf("leaf", tt.leafOpts))

			_, err := verify(leaf, "example.test", root, inter)
			var cie x509.CertificateInvalidError
			if !errors.As(err, &cie) || cie.Reason != x509.Expired {
				t.Fatalf("got error %v, want x509.CertificateInvalidError with reason Expired", err)
			}
			if got := cie.Cert.Subject.CommonName; got != tt.wantCert {
				t.Errorf("got invalid certificate %q, want %q", got, tt.wantCert)
			}
		})
	}
}

func TestNotCAIntermediate(t *testing.T) {
	t.Parallel()
	root := must(t)(NewRoot("Test Root", Options{}))
	// crypto/x509 reports a non-CA issuer only as the (unexported) hint of an
	// UnknownAuthorityError, so the hint is checked through the message.
	notSignText := x509.ConstraintViolationError{}.Error()
	tests := []struct {
		name  string
		notCA bool
	}{
		{"CA intermediate", false},
		{"non-CA intermediate", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inter := must(t)(root.NewIntermediate("Test Intermediate", Options{NotCA: tt.notCA}))
			leaf := must(t)(inter.NewLeaf("leaf", Options{DNSNames: []string{"example.test"}}))
			if got := inter.Cert.IsCA; got == tt.notCA {
				t.Errorf("got IsCA %v, want %v", got, !tt.notCA)
			}
			if !inter.Cert.BasicConstraintsValid {
				t.Errorf("got BasicConstraintsValid false, want true")
			}
			_, err := verify(leaf, "example.test", root, inter)
			if !tt.notCA {
				if err != nil {
					t.Errorf("got error %v, want success", err)
				}
				return
			}
			var ua x509.UnknownAuthorityError
			if !errors.As(err, &ua) || !strings.Contains(err.Error(), notSignText) {
				t.Errorf("got error %v, want x509.UnknownAuthorityError hinting %q", err, notSignText)
			}
		})
	}
}

func TestDefaultValidity(t *testing.T) {
	t.Parallel()
	root := must(t)(NewRoot("Test Root", Options{}))
	past := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	future := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	type window struct{ notBefore, notAfter time.Time }
	tests := []struct {
		name string
		gen  func(string, Options) (*Cert, error)
		opts Options
		// want computes the expected window from the time of generation.
		want func(now time.Time) window
	}{
		{"leaf zero", root.NewLeaf, Options{}, func(now time.Time) window {
			return window{now.Add(-DefaultBackdate), now.Add(DefaultLeafLifetime)}
		}},
		{"self-signed leaf zero", SelfSignedLeaf, Options{}, func(now time.Time) window {
			return window{now.Add(-DefaultBackdate), now.Add(DefaultLeafLifetime)}
		}},
		{"root zero", NewRoot, Options{}, func(now time.Time) window {
			return window{now.Add(-DefaultBackdate), now.Add(DefaultCALifetime)}
		}},
		{"intermediate zero", root.NewIntermediate, Options{}, func(now time.Time) window {
			return window{now.Add(-DefaultBackdate), now.Add(DefaultCALifetime)}
		}},
		{"leaf NotAfter in the past", root.NewLeaf, Options{NotAfter: past}, func(time.Time) window {
			return window{past.Add(-DefaultLeafLifetime), past}
		}},
		{"intermediate NotAfter in the past", root.NewIntermediate, Options{NotAfter: past}, func(time.Time) window {
			return window{past.Add(-DefaultCALifetime), past}
		}},
		{"leaf NotBefore in the future", root.NewLeaf, Options{NotBefore: future}, func(time.Time) window {
			return window{future, future.Add(DefaultLeafLifetime)}
		}},
		{"leaf both set", root.NewLeaf, Options{NotBefore: past, NotAfter: future}, func(time.Time) window {
			return window{past, future}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := time.Now()
			c := must(t)(tt.gen("cert", tt.opts))
			after := time.Now()
			lo, hi := tt.want(before), tt.want(after)
			// Certificates hold whole seconds, truncated.
			check := func(field string, got, lo, hi time.Time) {
				if got.Before(lo.Truncate(time.Second)) || got.After(hi) {
					t.Errorf("got %s %v, want within [%v, %v]", field, got, lo, hi)
				}
			}
			check("NotBefore", c.Cert.NotBefore, lo.notBefore, hi.notBefore)
			check("NotAfter", c.Cert.NotAfter, lo.notAfter, hi.notAfter)
		})
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	root := must(t)(NewRoot("Test Root", Options{}))
	ocspURL := []string{"http://ocsp.example.test/"}
	tests := []struct {
		name     string
		gen      func(string, Options) (*Cert, error)
		opts     Options
		wantEKU  []x509.ExtKeyUsage
		wantDNS  []string
		wantOCSP []string
	}{
		{"leaf default EKU", root.NewLeaf, Options{}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil, nil},
		{"leaf client EKU", root.NewLeaf, Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil},
		{"leaf empty EKU", root.NewLeaf, Options{ExtKeyUsage: []x509.ExtKeyUsage{}}, nil, nil, nil},
		{"leaf names and OCSP", root.NewLeaf, Options{DNSNames: []string{"a.test", "b.test"}, OCSPServer: ocspURL}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []string{"a.test", "b.test"}, ocspURL},
		{"intermediate default EKU", root.NewIntermediate, Options{}, nil, nil, nil},
		{"intermediate EKU, names ignored, OCSP", root.NewIntermediate, Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSNames: []string{"a.test"}, OCSPServer: ocspURL}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil, ocspURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := must(t)(tt.gen("cert", tt.opts))
			if !equalEKU(c.Cert.ExtKeyUsage, tt.wantEKU) {
				t.Errorf("got ExtKeyUsage %v, want %v", c.Cert.ExtKeyUsage, tt.wantEKU)
			}
			if !equalStrings(c.Cert.DNSNames, tt.wantDNS) {
				t.Errorf("got DNSNames %v, want %v", c.Cert.DNSNames, tt.wantDNS)
			}
			if !equalStrings(c.Cert.OCSPServer, tt.wantOCSP) {
				t.Errorf("got OCSPServer %v, want %v", c.Cert.OCSPServer, tt.wantOCSP)
			}
		})
	}
}

// TestGivenKey: a certificate issued with Options.Key certifies that key,
// whatever KeyType says.
func TestGivenKey(t *testing.T) {
	t.Parallel()
	root := must(t)(NewRoot("Test Root", Options{}))
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := must(t)(root.NewLeaf("leaf", Options{Key: key, KeyType: RSA1024}))
	if c.Key != crypto.Signer(key) {
		t.Errorf("got key %T, want the given key", c.Key)
	}
	if pub, ok := c.Cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		t.Errorf("got a certificate for %T, want one for the given key", c.Cert.PublicKey)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMustStaple(t *testing.T) {
	t.Parallel()
	root := must(t)(NewRoot("Test Root", Options{}))
	oid := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}
	wantDER := []byte{0x30, 0x03, 0x02, 0x01, 0x05}
	tests := []struct {
		name       string
		mustStaple bool
	}{
		{"must-staple", true},
		{"plain", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			leaf := must(t)(root.NewLeaf("leaf", Options{MustStaple: tt.mustStaple}))
			ext := findExtension(leaf.Cert, oid)
			if !tt.mustStaple {
				if ext != nil {
					t.Errorf("got TLS Feature extension %x, want none", ext.Value)
				}
				return
			}
			if ext == nil {
				t.Fatalf("got no TLS Feature extension, want one")
			}
			if !bytes.Equal(ext.Value, wantDER) || ext.Critical {
				t.Errorf("got value %x critical %v, want %x non-critical", ext.Value, ext.Critical, wantDER)
			}
		})
	}
}

func TestPinAndFingerprint(t *testing.T) {
	t.Parallel()
	fingerprintRE := regexp.MustCompile(`^[0-9A-F]{2}(:[0-9A-F]{2}){31}$`)
	root := must(t)(NewRoot("Test Root", Options{}))
	tests := []struct {
		name string
		cert *Cert
	}{
		{"ECDSA root", root},
		{"Ed25519 leaf", must(t)(root.NewLeaf("leaf", Options{KeyType: Ed25519}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.cert
			t.Run("independent", func(t *testing.T) {
				t.Parallel()
				// Re-encode the SPKI from the key rather than reading the
				// raw field, so the check does not share the code under test.
				spki, err := x509.MarshalPKIXPublicKey(c.Key.Public())
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(spki)
				if got, want := c.SPKIPin(), "sha256/"+base64.StdEncoding.EncodeToString(sum[:]); got != want {
					t.Errorf("got pin %q, want %q", got, want)
				}

				fp := sha256.Sum256(c.Cert.Raw)
				got := c.Fingerprint()
				if want := strings.ToUpper(hex.EncodeToString(fp[:])); strings.ReplaceAll(got, ":", "") != want {
					t.Errorf("got fingerprint %q, want the digits %q", got, want)
				}
				if !fingerprintRE.MatchString(got) {
					t.Errorf("got fingerprint %q, want 32 uppercase hex pairs joined by ':'", got)
				}
				if n := strings.Count(got, ":"); n != 31 {
					t.Errorf("got %d colons, want 31", n)
				}
			})
			t.Run("openssl", func(t *testing.T) {
				t.Parallel()
				requireOpenSSL(t)
				pubPEM, _ := openssl(t, c.CertPEM(), "x509", "-pubkey", "-noout")
				pubDER, _ := openssl(t, []byte(pubPEM), "pkey", "-pubin", "-outform", "der")
				digest, _ := openssl(t, []byte(pubDER), "dgst", "-sha256", "-binary")
				b64, _ := openssl(t, []byte(digest), "base64")
				if got, want := c.SPKIPin(), "sha256/"+strings.TrimSpace(b64); got != want {
					t.Errorf("got pin %q, want openssl's %q", got, want)
				}

				out, _ := openssl(t, c.CertPEM(), "x509", "-fingerprint", "-sha256", "-noout")
				_, want, ok := strings.Cut(strings.TrimSpace(out), "=")
				if !ok {
					t.Fatalf("got openssl output %q, want \"... Fingerprint=...\"", out)
				}
				if got := c.Fingerprint(); got != want {
					t.Errorf("got fingerprint %q, want openssl's %q", got, want)
				}
			})
		})
	}
}

// Test-local mirrors of the RFC 6960 structures, written separately from the
// package's so that a mistake in one is not silently repeated in the other.
type (
	testOCSPResponse struct {
		Status asn1.Enumerated
		Bytes  struct {
			Type     asn1.ObjectIdentifier
			Response []byte
		} `asn1:"explicit,tag:0"`
	}
	testBasicResponse struct {
		TBS       asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}
	testResponseData struct {
		ResponderID asn1.RawValue
		ProducedAt  time.Time `asn1:"generalized"`
		Responses   []testSingleResponse
	}
	testSingleResponse struct {
		CertID struct {
			HashAlgorithm  pkix.AlgorithmIdentifier
			IssuerNameHash []byte
			IssuerKeyHash  []byte
			SerialNumber   *big.Int
		}
		Status     asn1.RawValue
		ThisUpdate time.Time `asn1:"generalized"`
		NextUpdate time.Time `asn1:"generalized,explicit,tag:0,optional"`
	}
)

// parsedOCSP is what TestOCSPResponse learns from a response with the
// standard library alone.
type parsedOCSP struct {
	basic  testBasicResponse
	data   testResponseData
	single testSingleResponse
}

func parseOCSP(t *testing.T, der []byte) parsedOCSP {
	t.Helper()
	var p parsedOCSP
	var resp testOCSPResponse
	if rest, err := asn1.Unmarshal(der, &resp); err != nil || len(rest) != 0 {
		t.Fatalf("parse OCSPResponse: got error %v and %d trailing bytes, want neither", err, len(rest))
	}
	if resp.Status != 0 {
		t.Errorf("got responseStatus %d, want 0 (successful)", resp.Status)
	}
	if want := (asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}); !resp.Bytes.Type.Equal(want) {
		t.Errorf("got responseType %v, want %v", resp.Bytes.Type, want)
	}
	if rest, err := asn1.Unmarshal(resp.Bytes.Response, &p.basic); err != nil || len(rest) != 0 {
		t.Fatalf("parse BasicOCSPResponse: got error %v and %d trailing bytes, want neither", err, len(rest))
	}
	if rest, err := asn1.Unmarshal(p.basic.TBS.FullBytes, &p.data); err != nil || len(rest) != 0 {
		t.Fatalf("parse ResponseData: got error %v and %d trailing bytes, want neither", err, len(rest))
	}
	if len(p.data.Responses) != 1 {
		t.Fatalf("got %d SingleResponses, want 1", len(p.data.Responses))
	}
	p.single = p.data.Responses[0]
	return p
}

func TestOCSPResponse(t *testing.T) {
	t.Parallel()
	now := time.Now()
	thisUpdate, nextUpdate := now.Add(-time.Minute), now.Add(time.Hour)
	sec := func(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

	// Each chain is root -> [intermediate ->] leaf; the leaf's issuer signs.
	type chain struct{ root, issuer, leaf *Cert }
	newChain := func(t *testing.T, rootKey KeyType, withIntermediate bool) chain {
		root := must(t)(NewRoot("OCSP Root "+rootKey.String(), Options{KeyType: rootKey}))
		issuer := root
		if withIntermediate {
			issuer = must(t)(root.NewIntermediate("OCSP Intermediate", Options{}))
		}
		return chain{root, issuer, must(t)(issuer.NewLeaf("leaf", Options{DNSNames: []string{"example.test"}, MustStaple: true}))}
	}
	tests := []struct {
		name             string
		rootKey          KeyType
		withIntermediate bool
		status           OCSPStatus
		noNextUpdate     bool
		wantAlg          x509.SignatureAlgorithm
	}{
		{name: "good by intermediate", withIntermediate: true, status: OCSPGood, wantAlg: x509.ECDSAWithSHA256},
		{name: "revoked by intermediate", withIntermediate: true, status: OCSPRevoked, wantAlg: x509.ECDSAWithSHA256},
		{name: "good without nextUpdate", status: OCSPGood, noNextUpdate: true, wantAlg: x509.ECDSAWithSHA256},
		{name: "good by P-384 root", rootKey: ECDSAP384, status: OCSPGood, wantAlg: x509.ECDSAWithSHA384},
		{name: "revoked by RSA root", rootKey: RSA2048, status: OCSPRevoked, wantAlg: x509.SHA256WithRSA},
		{name: "good by Ed25519 root", rootKey: Ed25519, status: OCSPGood, wantAlg: x509.PureEd25519},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ch := newChain(t, tt.rootKey, tt.withIntermediate)
			next := nextUpdate
			if tt.noNextUpdate {
				next = time.Time{}
			}
			der, err := ch.leaf.OCSPResponse(tt.status, thisUpdate, next)
			if err != nil {
				t.Fatalf("OCSPResponse: %v", err)
			}
			// Flipping the final byte corrupts the signature, which is the
			// last field of the whole structure; both verifiers must notice.
			tampered := bytes.Clone(der)
			tampered[len(tampered)-1] ^= 0x01

			t.Run("stdlib", func(t *testing.T) {
				t.Parallel()
				p := parseOCSP(t, der)

				var spki struct {
					Algorithm pkix.AlgorithmIdentifier
					Key       asn1.BitString
				}
				if _, err := asn1.Unmarshal(ch.issuer.Cert.RawSubjectPublicKeyInfo, &spki); err != nil {
					t.Fatal(err)
				}
				keyHash := sha1.Sum(spki.Key.Bytes)
				nameHash := sha1.Sum(ch.issuer.Cert.RawSubject)

				wantResponder, err := asn1.Marshal(keyHash[:])
				if err != nil {
					t.Fatal(err)
				}
				if r := p.data.ResponderID; r.Class != asn1.ClassContextSpecific || r.Tag != 2 || !r.IsCompound || !bytes.Equal(r.Bytes, wantResponder) {
					t.Errorf("got responderID %x, want byKey [2] {OCTET STRING %x}", r.FullBytes, keyHash)
				}
				if d := time.Since(p.data.ProducedAt); d < 0 || d > time.Minute {
					t.Errorf("got producedAt %v, want about now", p.data.ProducedAt)
				}
				id := p.single.CertID
				if want := (asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}); !id.HashAlgorithm.Algorithm.Equal(want) {
					t.Errorf("got CertID hash algorithm %v, want SHA-1 %v", id.HashAlgorithm.Algorithm, want)
				}
				if !bytes.Equal(id.IssuerNameHash, nameHash[:]) {
					t.Errorf("got issuerNameHash %x, want %x", id.IssuerNameHash, nameHash)
				}
				if !bytes.Equal(id.IssuerKeyHash, keyHash[:]) {
					t.Errorf("got issuerKeyHash %x, want %x", id.IssuerKeyHash, keyHash)
				}
				if id.SerialNumber.Cmp(ch.leaf.Cert.SerialNumber) != 0 {
					t.Errorf("got serial %v, want %v", id.SerialNumber, ch.leaf.Cert.SerialNumber)
				}

				st := p.single.Status
				switch tt.status {
				case OCSPGood:
					if want := []byte{0x80, 0x00}; !bytes.Equal(st.FullBytes, want) {
						t.Errorf("got certStatus %x, want good %x", st.FullBytes, want)
					}
				case OCSPRevoked:
					var revokedAt time.Time
					_, err := asn1.UnmarshalWithParams(st.Bytes, &revokedAt, "generalized")
					if st.Class != asn1.ClassContextSpecific || st.Tag != 1 || !st.IsCompound || err != nil || !revokedAt.Equal(sec(thisUpdate)) {
						t.Errorf("got certStatus %x (parse error %v), want revoked [1] {%v}", st.FullBytes, err, sec(thisUpdate))
					}
				}
				if !p.single.ThisUpdate.Equal(sec(thisUpdate)) {
					t.Errorf("got thisUpdate %v, want %v", p.single.ThisUpdate, sec(thisUpdate))
				}
				wantNext := time.Time{}
				if !tt.noNextUpdate {
					wantNext = sec(nextUpdate)
				}
				if !p.single.NextUpdate.Equal(wantNext) {
					t.Errorf("got nextUpdate %v, want %v", p.single.NextUpdate, wantNext)
				}

				// The algorithm identifier must be the one x509 uses for the
				// same key, and the signature must verify under it.
				if got := sigAlgFromOID(p.basic.Algorithm.Algorithm); got != tt.wantAlg {
					t.Errorf("got signature algorithm %v (%v), want %v", got, p.basic.Algorithm.Algorithm, tt.wantAlg)
				}
				if err := ch.issuer.Cert.CheckSignature(tt.wantAlg, p.basic.TBS.FullBytes, p.basic.Signature.RightAlign()); err != nil {
					t.Errorf("got signature error %v, want a valid signature", err)
				}
				bad := parseOCSP(t, tampered)
				if err := ch.issuer.Cert.CheckSignature(tt.wantAlg, bad.basic.TBS.FullBytes, bad.basic.Signature.RightAlign()); err == nil {
					t.Errorf("tampered response: got valid signature, want an error")
				}
			})

			t.Run("openssl", func(t *testing.T) {
				t.Parallel()
				requireOpenSSL(t)
				dir := t.TempDir()
				write := func(name string, data []byte) string {
					p := filepath.Join(dir, name)
					if err := os.WriteFile(p, data, 0o600); err != nil {
						t.Fatal(err)
					}
					return p
				}
				leafPath := write("leaf.pem", ch.leaf.CertPEM())
				issuerPath := write("issuer.pem", ch.issuer.CertPEM())
				rootPath := write("root.pem", ch.root.CertPEM())
				wantStatus := map[OCSPStatus]string{OCSPGood: "good", OCSPRevoked: "revoked"}[tt.status]

				for _, r := range []struct {
					name     string
					der      []byte
					wantOKay bool
				}{
					{"response", der, true},
					{"tampered", tampered, false},
				} {
					respPath := write(r.name+".der", r.der)
					// openssl exits non-zero when verification fails, so the
					// exit status is checked against the expectation too.
					stdout, stderr, err := runOpenSSL(t, nil, "ocsp", "-respin", respPath,
						"-issuer", issuerPath, "-cert", leafPath, "-CAfile", rootPath, "-resp_text")
					all := stdout + stderr
					if got := strings.Contains(all, "Response verify OK"); got != r.wantOKay || (err == nil) != r.wantOKay {
						t.Errorf("%s: got \"Response verify OK\" %v and exit error %v, want verification %v; openssl said:\n%s", r.name, got, err, r.wantOKay, all)
					}
					if want := leafPath + ": " + wantStatus; !strings.Contains(stdout, want) {
						t.Errorf("%s: got openssl output without %q:\n%s", r.name, want, all)
					}
					if want := "Cert Status: " + wantStatus; !strings.Contains(stdout, want) {
						t.Errorf("%s: got openssl output without %q:\n%s", r.name, want, all)
					}
				}
			})
		})
	}
}

// sigAlgFromOID maps the OCSP signature OIDs this package emits to x509's
// names for them.
func sigAlgFromOID(oid asn1.ObjectIdentifier) x509.SignatureAlgorithm {
	switch oid.String() {
	case "1.2.840.10045.4.3.2":
		return x509.ECDSAWithSHA256
	case "1.2.840.10045.4.3.3":
		return x509.ECDSAWithSHA384
	case "1.2.840.113549.1.1.11":
		return x509.SHA256WithRSA
	case "1.3.101.112":
		return x509.PureEd25519
	}
	return x509.UnknownSignatureAlgorithm
}

func TestPEMAndTLSCertificate(t *testing.T) {
	t.Parallel()
	root := must(t)(NewRoot("Test Root", Options{}))
	inter := must(t)(root.NewIntermediate("Test Intermediate", Options{}))
	leaf := must(t)(inter.NewLeaf("leaf", Options{DNSNames: []string{"example.test"}}))

	block, rest := pem.Decode(leaf.CertPEM())
	if block == nil || block.Type != "CERTIFICATE" || !bytes.Equal(block.Bytes, leaf.Cert.Raw) || len(rest) != 0 {
		t.Errorf("CertPEM: got block %v and %d trailing bytes, want exactly the leaf as CERTIFICATE", block, len(rest))
	}

	want := []*Cert{leaf, inter, root}
	rest = ChainPEM(leaf, inter, root)
	for i, c := range want {
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != "CERTIFICATE" || !bytes.Equal(block.Bytes, c.Cert.Raw) {
			t.Errorf("ChainPEM block %d: got %v, want CERTIFICATE of %q", i, block, c.Cert.Subject)
		}
	}
	if len(rest) != 0 {
		t.Errorf("ChainPEM: got %d trailing bytes, want 0", len(rest))
	}

	tc := TLSCertificate(leaf, inter, root)
	if len(tc.Certificate) != len(want) {
		t.Fatalf("TLSCertificate: got %d certificates, want %d", len(tc.Certificate), len(want))
	}
	for i, c := range want {
		if !bytes.Equal(tc.Certificate[i], c.Cert.Raw) {
			t.Errorf("TLSCertificate[%d]: got a different certificate, want %q", i, c.Cert.Subject)
		}
	}
	if tc.Leaf != leaf.Cert || tc.PrivateKey != leaf.Key {
		t.Errorf("TLSCertificate: got Leaf %p PrivateKey %p, want %p and %p", tc.Leaf, tc.PrivateKey, leaf.Cert, leaf.Key)
	}

	// The PEM files the demo writes must load as a server key pair.
	pair, err := tls.X509KeyPair(ChainPEM(leaf, inter), leaf.KeyPEM())
	if err != nil {
		t.Fatalf("tls.X509KeyPair(ChainPEM, KeyPEM): %v", err)
	}
	if len(pair.Certificate) != 2 {
		t.Errorf("X509KeyPair: got %d certificates, want 2", len(pair.Certificate))
	}
}

func TestTLSHandshake(t *testing.T) {
	t.Parallel()
	root := must(t)(NewRoot("Test Root", Options{}))
	otherRoot := must(t)(NewRoot("Other Root", Options{}))
	inter := must(t)(root.NewIntermediate("Test Intermediate", Options{}))
	names := Options{DNSNames: []string{"example.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	ecLeaf := must(t)(inter.NewLeaf("leaf", names))
	names.KeyType = Ed25519
	edLeaf := must(t)(inter.NewLeaf("ed25519 leaf", names))

	staple, err := ecLeaf.OCSPResponse(OCSPGood, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		leaf       *Cert
		chain      []*Cert
		roots      *Cert
		serverName string
		staple     []byte
		wantErr    bool
	}{
		{name: "ECDSA chain with staple", leaf: ecLeaf, chain: []*Cert{inter}, roots: root, serverName: "example.test", staple: staple},
		{name: "Ed25519 chain", leaf: edLeaf, chain: []*Cert{inter}, roots: root, serverName: "example.test"},
		{name: "IP server name", leaf: ecLeaf, chain: []*Cert{inter}, roots: root, serverName: "127.0.0.1"},
		{name: "wrong server name", leaf: ecLeaf, chain: []*Cert{inter}, roots: root, serverName: "other.test", wantErr: true},
		{name: "untrusted root", leaf: ecLeaf, chain: []*Cert{inter}, roots: otherRoot, serverName: "example.test", wantErr: true},
		{name: "missing intermediate", leaf: ecLeaf, roots: root, serverName: "example.test", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			serving := TLSCertificate(tt.leaf, tt.chain...)
			serving.OCSPStaple = tt.staple
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
				Certificates: []tls.Certificate{serving},
				MinVersion:   tls.VersionTLS12,
			})
			if err != nil {
				t.Fatalf("listen: %v", err)
			}
			defer ln.Close()

			// The server handles exactly one connection and returns; the
			// deadline guarantees that even a stalled peer cannot keep it.
			serverDone := make(chan error, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					serverDone <- err
					return
				}
				defer conn.Close()
				if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
					serverDone <- err
					return
				}
				serverDone <- conn.(*tls.Conn).Handshake()
			}()

			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			dialer := &tls.Dialer{Config: &tls.Config{
				RootCAs:    tt.roots.Pool(),
				ServerName: tt.serverName,
				MinVersion: tls.VersionTLS12,
			}}
			conn, err := dialer.DialContext(ctx, "tcp", ln.Addr().String())
			if err == nil {
				cs := conn.(*tls.Conn).ConnectionState()
				conn.Close()
				if tt.wantErr {
					t.Errorf("got a verified connection, want a handshake error")
				}
				if len(cs.PeerCertificates) != 1+len(tt.chain) || !cs.PeerCertificates[0].Equal(tt.leaf.Cert) {
					t.Errorf("got %d peer certificates, want the leaf and %d chain certificates", len(cs.PeerCertificates), len(tt.chain))
				}
				if len(cs.VerifiedChains) != 1 || len(cs.VerifiedChains[0]) != 3 {
					t.Errorf("got verified chains %v, want one of leaf, intermediate and root", cs.VerifiedChains)
				}
				if !bytes.Equal(cs.OCSPResponse, tt.staple) {
					t.Errorf("got stapled OCSP response of %d bytes, want %d", len(cs.OCSPResponse), len(tt.staple))
				}
			} else if !tt.wantErr {
				t.Errorf("got handshake error %v, want success", err)
			}

			select {
			case err := <-serverDone:
				if !tt.wantErr && err != nil {
					t.Errorf("server: got handshake error %v, want success", err)
				}
				if tt.wantErr && err == nil {
					t.Errorf("server: got a completed handshake, want the client to abort it")
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("server goroutine still running 15s after the client finished, want it stopped")
			}
		})
	}
}
