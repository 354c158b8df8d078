package securehttp

import (
	"bufio"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

func TestChainValidation(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	now := time.Now()
	names := testpki.Options{DNSNames: []string{hostAPI}}
	leafWith := func(issuer *testpki.Cert, o testpki.Options) *testpki.Cert {
		if o.DNSNames == nil {
			o.DNSNames = names.DNSNames
		}
		return testpki.Must(issuer.NewLeaf(hostAPI, o))
	}
	otherRoot := testpki.Must(testpki.NewRoot("untrusted root", testpki.Options{}))
	otherInter := testpki.Must(otherRoot.NewIntermediate("untrusted intermediate", testpki.Options{}))
	expiredInter := testpki.Must(p.root.NewIntermediate("expired intermediate", testpki.Options{NotAfter: now.Add(-time.Hour)}))
	notCA := testpki.Must(p.root.NewIntermediate("not a CA", testpki.Options{NotCA: true}))
	weakInter := testpki.Must(p.root.NewIntermediate("weak intermediate", testpki.Options{KeyType: testpki.RSA1024}))

	expired := func(err error) bool {
		var invalid x509.CertificateInvalidError
		return errors.As(err, &invalid) && invalid.Reason == x509.Expired
	}
	unknownAuthority := func(err error) bool {
		var unknown x509.UnknownAuthorityError
		return errors.As(err, &unknown)
	}
	weakP224 := testpki.Must(p.root.NewIntermediate("weak P-224 intermediate", testpki.Options{KeyType: testpki.ECDSAP224}))
	tests := []struct {
		name string
		cert tls.Certificate
		// check inspects the error; nil means the request must succeed.
		check func(error) bool
	}{
		{"valid chain", p.serverCert(), nil},
		{"valid RSA 2048 leaf", testpki.TLSCertificate(leafWith(p.inter, testpki.Options{KeyType: testpki.RSA2048}), p.inter), nil},
		{"valid Ed25519 leaf", testpki.TLSCertificate(leafWith(p.inter, testpki.Options{KeyType: testpki.Ed25519}), p.inter), nil},
		{"expired leaf",
			testpki.TLSCertificate(leafWith(p.inter, testpki.Options{NotAfter: now.Add(-time.Minute)}), p.inter),
			expired},
		{"not yet valid leaf",
			testpki.TLSCertificate(leafWith(p.inter, testpki.Options{NotBefore: now.Add(time.Hour)}), p.inter),
			expired},
		{"expired intermediate",
			testpki.TLSCertificate(leafWith(expiredInter, testpki.Options{NotAfter: now.Add(time.Hour)}), expiredInter),
			expired},
		{"wrong host",
			testpki.TLSCertificate(leafWith(p.inter, testpki.Options{DNSNames: []string{"elsewhere.test"}}), p.inter),
			func(err error) bool { var hostname x509.HostnameError; return errors.As(err, &hostname) }},
		{"self-signed",
			testpki.TLSCertificate(testpki.Must(testpki.SelfSignedLeaf(hostAPI, names))),
			unknownAuthority},
		{"untrusted root",
			testpki.TLSCertificate(leafWith(otherInter, testpki.Options{}), otherInter),
			unknownAuthority},
		{"missing intermediate",
			testpki.TLSCertificate(leafWith(p.inter, testpki.Options{})),
			unknownAuthority},
		{"intermediate that is not a CA",
			testpki.TLSCertificate(leafWith(notCA, testpki.Options{}), notCA),
			unknownAuthority},
		{"client-auth-only leaf",
			testpki.TLSCertificate(leafWith(p.inter, testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}), p.inter),
			func(err error) bool {
				var invalid x509.CertificateInvalidError
				return errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage
			}},
		{"weak RSA 1024 leaf",
			testpki.TLSCertificate(leafWith(p.inter, testpki.Options{KeyType: testpki.RSA1024}), p.inter),
			func(err error) bool { return errors.Is(err, ErrWeakKey) }},
		{"weak P-224 intermediate",
			testpki.TLSCertificate(leafWith(weakP224, testpki.Options{}), weakP224),
			func(err error) bool { return errors.Is(err, ErrWeakKey) }},
		{"weak RSA 1024 intermediate",
			testpki.TLSCertificate(leafWith(weakInter, testpki.Options{}), weakInter),
			func(err error) bool { return errors.Is(err, ErrWeakKey) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := testutil.StartServer(t, tt.cert, http.HandlerFunc(okHandler))
			tr := newTestTransport(t, testConfig(t))
			body, err := get(t, tr, testutil.HostURL(srv, hostAPI, "/"))
			if tt.check == nil {
				if err != nil || body != "ok" {
					t.Fatalf("got (%q, %v), want (\"ok\", nil)", body, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got a response, want the connection refused")
			}
			if !tt.check(err) {
				t.Fatalf("got error %v (%T), not the expected kind", err, errors.Unwrap(err))
			}
			if errors.Is(err, ErrPinMismatch) {
				t.Fatalf("got ErrPinMismatch without pins: %v", err)
			}
		})
	}
}

func TestExpiryWarningOncePerCertificate(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	soon := testpki.Must(p.inter.NewLeaf(hostAPI, testpki.Options{
		DNSNames: []string{hostAPI}, NotAfter: time.Now().Add(72 * time.Hour),
	}))
	srv := testutil.StartServer(t, testpki.TLSCertificate(soon, p.inter), http.HandlerFunc(okHandler))
	logger, logs := testutil.NewLogger()
	cfg := testConfig(t)
	cfg.Logger = logger
	tr := newTestTransport(t, cfg)
	for range 3 {
		if _, err := get(t, tr, testutil.HostURL(srv, hostAPI, "/")); err != nil {
			t.Fatal(err)
		}
		tr.conns.base.CloseIdleConnections() // a new handshake each time
	}
	if got := strings.Count(logs.String(), "expires soon"); got != 1 {
		t.Fatalf("got %d expiry warnings, want 1:\n%s", got, logs)
	}

	quiet := testConfig(t)
	quietLogger, quietLogs := testutil.NewLogger()
	quiet.Logger, quiet.ExpiryWarning = quietLogger, time.Hour
	if _, err := get(t, newTestTransport(t, quiet), testutil.HostURL(srv, hostAPI, "/")); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(quietLogs.String(), "expires soon") {
		t.Fatalf("warned with a 1 h window for a certificate valid 72 h")
	}
}

// sha1Leaf has openssl issue a leaf for host signed with SHA-1 by issuer:
// crypto/x509 cannot produce such a certificate, and must refuse it.
func sha1Leaf(t *testing.T, issuer *testpki.Cert, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	openssl := peers.Require(t, "openssl")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caCert := write("ca.pem", issuer.CertPEM())
	caKey := write("ca.key", issuer.KeyPEM())
	ext := write("ext.cnf", []byte("subjectAltName=DNS:"+host+"\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"))
	key, csr, cert := filepath.Join(dir, "leaf.key"), filepath.Join(dir, "leaf.csr"), filepath.Join(dir, "leaf.pem")
	for _, args := range [][]string{
		{"req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-subj", "/CN=" + host, "-out", csr},
		{"x509", "-req", "-in", csr, "-CA", caCert, "-CAkey", caKey, "-CAcreateserial", "-days", "2", "-sha1", "-extfile", ext, "-out", cert},
	} {
		if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", args[0], err, out)
		}
	}
	certPEM, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err = os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// TestChainValidationNginx runs the chain and pin cases of
// TestChainValidation, and a few that need another TLS stack (a SHA-1 signed
// leaf, TLS 1.0 and 1.1 only, HTTP/2 by ALPN), against nginx.
func TestChainValidationNginx(t *testing.T) {
	t.Parallel()
	peers.Require(t, "nginx")
	p := sharedPKI(t)
	now := time.Now()
	leaf := func(issuer *testpki.Cert, o testpki.Options) *testpki.Cert {
		if o.DNSNames == nil {
			o.DNSNames = []string{hostAPI}
		}
		return testpki.Must(issuer.NewLeaf(hostAPI, o))
	}
	otherRoot := testpki.Must(testpki.NewRoot("untrusted root", testpki.Options{}))
	otherInter := testpki.Must(otherRoot.NewIntermediate("untrusted intermediate", testpki.Options{}))
	expiredInter := testpki.Must(p.root.NewIntermediate("expired intermediate", testpki.Options{NotAfter: now.Add(-time.Hour)}))
	notCA := testpki.Must(p.root.NewIntermediate("not a CA", testpki.Options{NotCA: true}))
	rsaRoot := testpki.Must(testpki.NewRoot("rsa root", testpki.Options{KeyType: testpki.RSA2048}))
	rsaInter := testpki.Must(rsaRoot.NewIntermediate("rsa intermediate", testpki.Options{KeyType: testpki.RSA2048}))
	rsaLeaf := leaf(rsaInter, testpki.Options{KeyType: testpki.RSA2048})
	weak := leaf(p.inter, testpki.Options{KeyType: testpki.RSA1024})
	selfSigned := testpki.Must(testpki.SelfSignedLeaf(hostAPI, testpki.Options{DNSNames: []string{hostAPI}}))
	sha1Cert, sha1Key := sha1Leaf(t, p.inter, hostAPI)

	rogueRoot := testpki.Must(testpki.NewRoot("rogue but trusted root", testpki.Options{}))
	rogueInter := testpki.Must(rogueRoot.NewIntermediate("rogue intermediate", testpki.Options{}))
	rogueLeaf := leaf(rogueInter, testpki.Options{})
	bothRoots := x509.NewCertPool()
	bothRoots.AddCert(p.root.Cert)
	bothRoots.AddCert(rogueRoot.Cert)

	chain := func(l *testpki.Cert, rest ...*testpki.Cert) peers.NginxConfig {
		return peers.NginxConfig{CertPEM: testpki.ChainPEM(l, rest...), KeyPEM: l.KeyPEM()}
	}
	isExpired := func(err error) bool {
		var e x509.CertificateInvalidError
		return errors.As(err, &e) && e.Reason == x509.Expired
	}
	isUnknown := func(err error) bool {
		var e x509.UnknownAuthorityError
		return errors.As(err, &e)
	}
	ok := func(error) bool { return false }

	tests := []struct {
		name  string
		nginx peers.NginxConfig
		cfg   func(*Config)
		path  string
		want  string           // the body on success; "" when the request must fail
		check func(error) bool // the failure expected
	}{
		// Refused.
		{name: "expired leaf", nginx: chain(leaf(p.inter, testpki.Options{NotAfter: now.Add(-time.Minute)}), p.inter), check: isExpired},
		{name: "not yet valid leaf", nginx: chain(leaf(p.inter, testpki.Options{NotBefore: now.Add(time.Hour)}), p.inter), check: isExpired},
		{name: "expired intermediate", nginx: chain(leaf(expiredInter, testpki.Options{NotAfter: now.Add(time.Hour)}), expiredInter), check: isExpired},
		{name: "wrong host", nginx: chain(leaf(p.inter, testpki.Options{DNSNames: []string{"elsewhere.test"}}), p.inter),
			check: func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) }},
		{name: "self-signed", nginx: chain(selfSigned), check: isUnknown},
		{name: "untrusted root", nginx: chain(leaf(otherInter, testpki.Options{}), otherInter), check: isUnknown},
		{name: "intermediate not sent", nginx: chain(leaf(p.inter, testpki.Options{})), check: isUnknown},
		{name: "intermediate that is not a CA", nginx: chain(leaf(notCA, testpki.Options{}), notCA), check: isUnknown},
		{name: "SHA-1 signed leaf", nginx: peers.NginxConfig{CertPEM: append(sha1Cert, p.inter.CertPEM()...), KeyPEM: sha1Key, Ciphers: peers.LegacyCiphers},
			check: func(err error) bool { var e x509.InsecureAlgorithmError; return errors.As(err, &e) || isUnknown(err) }},
		{name: "RSA-1024 leaf", nginx: peers.NginxConfig{CertPEM: testpki.ChainPEM(weak, p.inter), KeyPEM: weak.KeyPEM(), Ciphers: peers.LegacyCiphers},
			check: func(err error) bool { return errors.Is(err, ErrWeakKey) }},
		{name: "leaf for client authentication only",
			nginx: chain(leaf(p.inter, testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}), p.inter),
			check: func(err error) bool {
				var e x509.CertificateInvalidError
				return errors.As(err, &e) && e.Reason == x509.IncompatibleUsage
			}},
		{name: "TLS 1.0 and 1.1 only", nginx: withProtocols(chain(leaf(p.inter, testpki.Options{}), p.inter), "TLSv1 TLSv1.1"),
			check: func(err error) bool {
				var cve *tls.CertificateVerificationError
				return err != nil && !errors.As(err, &cve) && !errors.Is(err, ErrPinMismatch)
			}},
		{name: "appended pinned certificate", nginx: chain(rogueLeaf, rogueInter, p.inter),
			cfg: func(c *Config) {
				c.RootCAs = bothRoots
				c.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin()}}}
			},
			check: func(err error) bool { return errors.Is(err, ErrPinMismatch) }},
		{name: "wrong pin", nginx: chain(leaf(p.inter, testpki.Options{}), p.inter),
			cfg:   func(c *Config) { c.Pins = []PinSet{{Host: hostAPI, Pins: []string{fakePin('N')}}} },
			check: func(err error) bool { return errors.Is(err, ErrPinMismatch) }},

		// Accepted.
		{name: "ECDSA chain", nginx: chain(p.leaf, p.inter), want: "ok\n", check: ok},
		{name: "RSA chain", nginx: chain(rsaLeaf, rsaInter),
			cfg: func(c *Config) { c.RootCAs = rsaRoot.Pool() }, want: "ok\n", check: ok},
		{name: "HTTP/2 via ALPN", nginx: withHTTP2(chain(p.leaf, p.inter)), path: "/proto", want: "HTTP/2.0\n", check: ok},
		{name: "HTTP/1.1 without h2", nginx: chain(p.leaf, p.inter), path: "/proto", want: "HTTP/1.1\n", check: ok},
		{name: "pin on the leaf", nginx: chain(p.leaf, p.inter), want: "ok\n", check: ok,
			cfg: func(c *Config) { c.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.leaf.SPKIPin()}}} }},
		{name: "pin on the intermediate", nginx: chain(p.leaf, p.inter), want: "ok\n", check: ok,
			cfg: func(c *Config) { c.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin()}}} }},
		{name: "pin on the root, not sent", nginx: chain(p.leaf, p.inter), want: "ok\n", check: ok,
			cfg: func(c *Config) { c.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.root.SPKIPin()}}} }},
		{name: "certificate fingerprint pin", nginx: chain(p.leaf, p.inter), want: "ok\n", check: ok,
			cfg: func(c *Config) { c.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.leaf.Fingerprint()}}} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := peers.StartNginx(t, tt.nginx)
			cfg := testConfig(t)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			path := tt.path
			if path == "" {
				path = "/"
			}
			body, err := peerGet(t, cfg, peerURL(srv, hostAPI, path))
			if tt.want != "" {
				if err != nil || body != tt.want {
					t.Fatalf("got (%q, %v), want %q", body, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %q, want the connection refused", body)
			}
			if !tt.check(err) {
				t.Fatalf("got error %v, not the expected kind", err)
			}
			t.Logf("refused as expected: %v", err)
		})
	}
}

func withProtocols(c peers.NginxConfig, protocols string) peers.NginxConfig {
	c.Protocols = protocols
	return c
}

func withHTTP2(c peers.NginxConfig) peers.NginxConfig {
	c.HTTP2 = true
	return c
}

// limboFile is a copy of C2SP/x509-limbo's generated suite, minus the
// bettertls and online namespaces; testdata/x509-limbo/README.md says where
// it comes from.
const limboFile = "testdata/x509-limbo/x509-limbo-core.json"

// limboTimeout bounds each case: the client's request and every server
// connection.
const limboTimeout = 20 * time.Second

// limboPlaceholderHost stands in for a missing expected_peer_name. Our client
// always verifies a host name, so such a case can only pass when the leaf
// happens to name this host.
const limboPlaceholderHost = "limbo-no-peer-name.invalid"

// limboDivergences lists every selected case whose outcome through NewClient
// differs from the suite's expected_result, with the reason. The text before
// the first colon is the category counted in the summary:
//
//   - go-leniency: Go's crypto/x509 accepts what the suite's profile refuses;
//   - go-strictness: Go's crypto/x509 refuses what the suite accepts;
//   - our-policy: a deliberate rule of ours (key sizes, must-staple, host
//     name checking) decides the case;
//   - no-option: the case depends on a verifier option that neither Go nor
//     our Config exposes;
//   - conflict: the suite holds a conflicting case (conflicts_with) with the
//     opposite expectation under another profile; one of the two must
//     diverge;
//   - unservable: the server cannot serve this key, so the case cannot be
//     run end to end.
//
// A divergence missing from this map fails the test, and so does an entry
// whose case no longer diverges, so that the list stays honest.
var limboDivergences = map[string]string{
	// Options that no Go verifier has.
	"pathlen::max-chain-depth-0-exhausted": "no-option: the case caps the chain depth at 0 intermediates (max_chain_depth); neither crypto/x509 nor Config has such a cap, and the chain is otherwise valid",
	"pathlen::max-chain-depth-1-exhausted": "no-option: the case caps the chain depth at 1 intermediate (max_chain_depth); neither crypto/x509 nor Config has such a cap, and the chain is otherwise valid",

	// Cases the suite accepts and crypto/x509 refuses.
	"pathlen::self-issued-certs-pathlen":     "go-strictness: crypto/x509 counts a self-issued intermediate against pathLenConstraint, which RFC 5280 4.2.1.9 exempts (too many intermediates for path length constraint)",
	"rfc5280::nc::nc-forbids-othername-noop": "go-strictness: crypto/x509 refuses a critical nameConstraints extension with an otherName subtree as an unhandled critical extension, although no otherName appears on the path",
	"rfc5280::nc::permitted-self-issued":     "go-strictness: crypto/x509 applies the root's name constraints to the SAN of a self-issued intermediate, which RFC 5280 4.2.1.10 exempts",

	// Our own rules.
	"rfc5280::nc::permitted-dn-match": "our-policy: the case has no expected_peer_name and the leaf names only a directoryName; the client always verifies a DNS name or IP (a placeholder host here), so no name can pass",

	// Cases that cannot be served.
	"webpki::forbidden-dsa-leaf":  "unservable: server cannot serve this key: a DSA leaf key, which crypto/tls cannot sign with (crypto/x509 does not verify DSA, and our key policy refuses any key that is not RSA, ECDSA or Ed25519)",
	"webpki::forbidden-p192-leaf": "unservable: server cannot serve this key: a P-192 leaf key, which crypto/x509 cannot parse (our key policy would refuse an EC key under 256 bits)",

	// Pairs of cases with opposite expectations under RFC 5280 and CABF;
	// crypto/x509 follows the other member of each pair, which matches.
	"webpki::ca-as-leaf":                           "conflict: with rfc5280::ca-as-leaf, which matches; crypto/x509 accepts a CA certificate in leaf position, which CABF 7.1.2.7.8 and 7.1.2.7.11 forbid",
	"webpki::eku::ee-without-eku":                  "conflict: with rfc5280::eku::ee-without-eku, which matches; crypto/x509 treats a leaf without extKeyUsage as valid for any usage, where CABF 7.1.2.7.6 requires the extension",
	"rfc5280::nc::permitted-dns-match-noncritical": "conflict: with webpki::nc::permitted-dns-match-noncritical, which matches; crypto/x509 does not require nameConstraints to be critical as RFC 5280 4.2.1.10 does",

	// Leniencies of crypto/x509: the suite refuses, Go accepts.
	"pathological::nc-dos-1":                                    "go-leniency: crypto/x509 evaluates the root's many permitted and excluded name constraints against the leaf's many names and accepts; the suite expects a refusal as a guard against quadratic blowup",
	"pathological::nc-dos-2":                                    "go-leniency: crypto/x509 evaluates the root's over 2048 name constraints against the leaf's 2048 SANs and accepts; the suite expects a refusal as a guard against quadratic blowup",
	"rfc5280::aki::cross-signed-root-missing-aki":               "go-leniency: crypto/x509 accepts a cross-signed root without authorityKeyIdentifier (pedantic RFC 5280 4.2.1.1)",
	"rfc5280::aki::intermediate-missing-aki":                    "go-leniency: crypto/x509 accepts an intermediate without authorityKeyIdentifier, which RFC 5280 4.2.1.1 requires",
	"rfc5280::aki::leaf-missing-aki":                            "go-leniency: crypto/x509 accepts a leaf without authorityKeyIdentifier, which RFC 5280 4.2.1.1 requires",
	"rfc5280::ca-empty-subject":                                 "go-leniency: crypto/x509 accepts a CA whose subject is an empty SEQUENCE, which RFC 5280 4.1.2.6 forbids",
	"rfc5280::eku::ee-eku-empty":                                "go-leniency: crypto/x509 treats an extKeyUsage extension listing no usage like an absent one (any usage), where RFC 5280 4.2.1.12 requires at least one",
	"rfc5280::leaf-ku-keycertsign":                              "go-leniency: crypto/x509 accepts a leaf with cA=FALSE asserting keyCertSign, which RFC 5280 4.2.1.9 forbids",
	"rfc5280::nc::invalid-dnsname-leading-period":               "go-leniency: crypto/x509 accepts a dNSName constraint with a leading period (it reads it as subdomains only), which RFC 5280 4.2.1.10 does not allow",
	"rfc5280::nc::not-allowed-in-ee-critical":                   "go-leniency: crypto/x509 accepts a critical nameConstraints extension in an end-entity certificate, which RFC 5280 4.2.1.10 allows only in CAs",
	"rfc5280::nc::not-allowed-in-ee-noncritical":                "go-leniency: crypto/x509 accepts a non-critical nameConstraints extension in an end-entity certificate, which RFC 5280 4.2.1.10 allows only in CAs",
	"rfc5280::pc::ica-noncritical-pc":                           "go-leniency: crypto/x509 accepts a non-critical policyConstraints extension, which RFC 5280 4.2.1.11 requires to be critical",
	"rfc5280::root-inconsistent-ca-extensions":                  "go-leniency: crypto/x509 does not check keyUsage on a trust anchor, so a root with cA=TRUE and keyCertSign=FALSE still issues",
	"rfc5280::root-non-critical-basic-constraints":              "go-leniency: crypto/x509 accepts a CA whose basicConstraints is not critical, which RFC 5280 4.2.1.9 requires",
	"rfc5280::san::noncritical-with-empty-subject":              "go-leniency: crypto/x509 accepts a non-critical subjectAltName in a certificate with an empty subject, which RFC 5280 4.2.1.6 requires to be critical",
	"rfc5280::san::underscore-dns":                              "go-leniency: crypto/x509 accepts an underscore in a dNSName, and so does our host normalisation (idna lookup profile)",
	"rfc5280::serial::too-long":                                 "go-leniency: crypto/x509 accepts a serial number longer than 20 octets (pedantic RFC 5280 4.1.2.2)",
	"rfc5280::serial::zero":                                     "go-leniency: crypto/x509 accepts a serial number of zero (pedantic RFC 5280 4.1.2.2)",
	"rfc5280::ski::intermediate-missing-ski":                    "go-leniency: crypto/x509 accepts an intermediate CA without subjectKeyIdentifier, which RFC 5280 4.2.1.2 requires",
	"rfc5280::ski::root-missing-ski":                            "go-leniency: crypto/x509 accepts a root CA without subjectKeyIdentifier, which RFC 5280 4.2.1.2 requires",
	"webpki::aki::root-with-aki-all-fields":                     "go-leniency: crypto/x509 ignores a root's authorityKeyIdentifier, here with authorityCertIssuer and authorityCertSerialNumber, which CABF 7.1.2.1.3 forbids",
	"webpki::aki::root-with-aki-authoritycertissuer":            "go-leniency: crypto/x509 ignores a root's authorityKeyIdentifier, here with authorityCertIssuer, which CABF 7.1.2.1.3 forbids",
	"webpki::aki::root-with-aki-authoritycertserialnumber":      "go-leniency: crypto/x509 ignores a root's authorityKeyIdentifier, here with authorityCertSerialNumber, which CABF 7.1.2.1.3 forbids",
	"webpki::aki::root-with-aki-missing-keyidentifier":          "go-leniency: crypto/x509 ignores a root's authorityKeyIdentifier, here without the keyIdentifier CABF 7.1.2.1.3 requires",
	"webpki::aki::root-with-aki-ski-mismatch":                   "go-leniency: crypto/x509 ignores a self-signed root's authorityKeyIdentifier, here differing from its subjectKeyIdentifier (CABF 7.1.2.1.3)",
	"webpki::cn::case-mismatch":                                 "go-leniency: crypto/x509 ignores the subject CN when SANs are present, so a CN differing from the SAN in case (CABF BR 7.1.4.3) passes",
	"webpki::cn::ipv4-hex-mismatch":                             "go-leniency: crypto/x509 ignores the subject CN when SANs are present, so a CN holding a hexadecimal IPv4 address (CABF BR 7.1.4.3) passes",
	"webpki::cn::ipv4-leading-zeros-mismatch":                   "go-leniency: crypto/x509 ignores the subject CN when SANs are present, so a CN holding an IPv4 address with leading zeros (CABF BR 7.1.4.3) passes",
	"webpki::cn::ipv6-non-rfc5952-mismatch":                     "go-leniency: crypto/x509 ignores the subject CN when SANs are present, so a CN holding an IPv6 address not in RFC 5952 form (CABF BR 7.1.4.3) passes",
	"webpki::cn::ipv6-uncompressed-mismatch":                    "go-leniency: crypto/x509 ignores the subject CN when SANs are present, so a CN holding an uncompressed IPv6 address (CABF BR 7.1.4.3) passes",
	"webpki::cn::ipv6-uppercase-mismatch":                       "go-leniency: crypto/x509 ignores the subject CN when SANs are present, so a CN holding an upper-case IPv6 address (CABF BR 7.1.4.3) passes",
	"webpki::cn::not-in-san":                                    "go-leniency: crypto/x509 ignores the subject CN when SANs are present, so a CN naming a host absent from the SANs (CABF BR 7.1.4.3) passes",
	"webpki::cn::punycode-not-in-san":                           "go-leniency: crypto/x509 ignores the subject CN when SANs are present, so a punycode CN absent from the SANs (CABF BR 7.1.4.3) passes",
	"webpki::cn::utf8-vs-punycode-mismatch":                     "go-leniency: crypto/x509 ignores the subject CN when SANs are present, so a UTF-8 CN whose SAN is the A-label (CABF BR 7.1.4.3) passes",
	"webpki::ee-basicconstraints-ca":                            "go-leniency: crypto/x509 accepts a leaf with basicConstraints cA=TRUE, which CABF 7.1.2.7.8 forbids",
	"webpki::eku::ee-anyeku":                                    "go-leniency: crypto/x509 accepts anyExtendedKeyUsage in a leaf, which CABF 7.1.2.7.10 forbids",
	"webpki::eku::ee-critical-eku":                              "go-leniency: crypto/x509 accepts a critical extKeyUsage in a leaf, which CABF 7.1.2.7.6 forbids",
	"webpki::eku::root-has-eku":                                 "go-leniency: crypto/x509 accepts a root carrying extKeyUsage (it only checks that usages nest), which CABF 7.1.2.1.2 forbids",
	"webpki::forbidden-rsa-key-not-divisible-by-8-in-leaf":      "go-leniency: crypto/x509 accepts a 2052-bit RSA leaf key, not a multiple of 8 bits as CABF 6.1.5 requires; our key policy checks the 2048-bit floor only",
	"webpki::forbidden-rsa-not-divisible-by-8-in-root":          "go-leniency: crypto/x509 accepts a 2052-bit RSA root key, not a multiple of 8 bits as CABF 6.1.5 requires; our key policy checks the 2048-bit floor only",
	"webpki::san::public-suffix-multi-label-wildcard-san":       "go-leniency: crypto/x509 lets *.co.uk match, consulting no public suffix list",
	"webpki::san::public-suffix-private-namespace-wildcard-san": "go-leniency: crypto/x509 lets *.s3.amazonaws.com match, consulting no public suffix list (private section)",
	"webpki::san::public-suffix-wildcard-san":                   "go-leniency: crypto/x509 lets *.com match, consulting no public suffix list",
	"webpki::san::san-critical-with-nonempty-subject":           "go-leniency: crypto/x509 accepts a critical subjectAltName with a non-empty subject, which CABF forbids",
}

// limboCategoryOutcome is the outcome each divergence category implies.
var limboCategoryOutcome = map[string]string{
	"go-leniency":   "SUCCESS",
	"go-strictness": "FAILURE",
	"no-option":     "SUCCESS",
	"unservable":    "",
}

// limboCase is the part of an x509-limbo test case that this test uses.
type limboCase struct {
	ID                     string   `json:"id"`
	ConflictsWith          []string `json:"conflicts_with"`
	Features               []string `json:"features"`
	Description            string   `json:"description"`
	ValidationKind         string   `json:"validation_kind"`
	TrustedCerts           []string `json:"trusted_certs"`
	UntrustedIntermediates []string `json:"untrusted_intermediates"`
	PeerCertificate        string   `json:"peer_certificate"`
	PeerCertificateKey     *string  `json:"peer_certificate_key"`
	ValidationTime         *string  `json:"validation_time"`
	ExtendedKeyUsage       []string `json:"extended_key_usage"`
	ExpectedResult         string   `json:"expected_result"`
	ExpectedPeerName       *struct {
		Kind  string `json:"kind"`
		Value string `json:"value"`
	} `json:"expected_peer_name"`
	MaxChainDepth *int `json:"max_chain_depth"`
}

// limboSelect returns the SERVER cases that carry a key and no fixed
// validation time: those that can be served from a real listener today.
func limboSelect(t *testing.T) []limboCase {
	t.Helper()
	data, err := os.ReadFile(limboFile)
	if err != nil {
		t.Fatalf("reading the limbo suite: %v", err)
	}
	var suite struct {
		Testcases []limboCase `json:"testcases"`
	}
	if err := json.Unmarshal(data, &suite); err != nil {
		t.Fatalf("decoding %s: %v", limboFile, err)
	}
	var out []limboCase
	for _, c := range suite.Testcases {
		if c.ValidationKind == "SERVER" && c.PeerCertificateKey != nil && *c.PeerCertificateKey != "" &&
			(c.ValidationTime == nil || *c.ValidationTime == "") {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no case selected from %d in %s", len(suite.Testcases), limboFile)
	}
	return out
}

// limboOutcome is what happened to one case.
type limboOutcome struct {
	got        string // "SUCCESS" or "FAILURE"; "" when the case could not be run
	unservable string // why the server could not serve the case, if it could not
	clientErr  error
	notes      []string // differences between the case's setup and ours
}

func TestLimbo(t *testing.T) {
	cases := limboSelect(t)

	var (
		mu       sync.Mutex
		diverged = make(map[string]string) // id -> category
		matched  int
		// byKeyPolicy counts matched failures that only our key policy
		// caught: crypto/x509 alone would have accepted them.
		byKeyPolicy int
	)
	t.Run("case", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.ID, func(t *testing.T) {
				t.Parallel()
				out := limboRun(t, c)
				for _, n := range out.notes {
					t.Logf("note: %s", n)
				}
				reason, listed := limboDivergences[c.ID]
				var diverges bool
				var desc string
				switch {
				case out.unservable != "":
					diverges = true
					desc = "could not be run: " + out.unservable
				case out.got != c.ExpectedResult:
					diverges = true
					desc = fmt.Sprintf("got %s, want %s (client error: %v)", out.got, c.ExpectedResult, out.clientErr)
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case diverges && listed:
					cat := limboCategory(reason)
					diverged[c.ID] = cat
					t.Logf("known divergence: %s; %s", desc, reason)
					// A category names a direction; hold the entry to it.
					if want, ok := limboCategoryOutcome[cat]; ok && out.got != want {
						t.Errorf("limboDivergences files this case under %s, which means got %s, but got %q", cat, want, out.got)
					}
				case diverges:
					diverged[c.ID] = "unlisted"
					t.Errorf("%s: not in limboDivergences\ndescription: %s", desc, strings.TrimSpace(c.Description))
				case listed:
					matched++
					t.Errorf("got %s as expected, but limboDivergences still lists it (%q): remove the entry", out.got, reason)
				default:
					matched++
					if errors.Is(out.clientErr, ErrWeakKey) {
						byKeyPolicy++
					}
					t.Logf("got %s as expected (client error: %v)", out.got, out.clientErr)
				}
			})
		}
	})

	selected := make(map[string]bool, len(cases))
	for _, c := range cases {
		selected[c.ID] = true
	}
	for id := range limboDivergences {
		if !selected[id] {
			t.Errorf("limboDivergences lists %q, which is not a selected case: remove the entry", id)
		}
	}

	counts := make(map[string]int)
	for _, cat := range diverged {
		counts[cat]++
	}
	cats := make([]string, 0, len(counts))
	for cat := range counts {
		cats = append(cats, cat)
	}
	sort.Slice(cats, func(i, j int) bool {
		if counts[cats[i]] != counts[cats[j]] {
			return counts[cats[i]] > counts[cats[j]]
		}
		return cats[i] < cats[j]
	})
	parts := make([]string, len(cats))
	for i, cat := range cats {
		parts[i] = fmt.Sprintf("%s %d", cat, counts[cat])
	}
	t.Logf("limbo: run %d, matched %d, diverged %d (%s); %d of the matches are failures only our key policy caught",
		len(cases), matched, len(diverged), strings.Join(parts, ", "), byKeyPolicy)
}

// limboCategory is the text of reason before its first colon.
func limboCategory(reason string) string {
	cat, _, ok := strings.Cut(reason, ":")
	if !ok {
		return "uncategorised"
	}
	return cat
}

// limboRun serves c from a loopback listener and requests it through
// NewClient.
func limboRun(t *testing.T, c limboCase) limboOutcome {
	var out limboOutcome

	key, err := limboKey(*c.PeerCertificateKey)
	if err != nil {
		out.unservable = "server cannot serve this key: " + err.Error()
		return out
	}
	chain := []string{c.PeerCertificate}
	chain = append(chain, c.UntrustedIntermediates...)
	ders := make([][]byte, 0, len(chain))
	for i, p := range chain {
		der, err := limboDER(p)
		if err != nil {
			t.Fatalf("certificate %d of the served chain: %v", i, err)
		}
		ders = append(ders, der)
	}
	srv := limboServe(t, tls.Certificate{Certificate: ders, PrivateKey: key})

	roots := x509.NewCertPool()
	for i, p := range c.TrustedCerts {
		der, err := limboDER(p)
		if err != nil {
			t.Fatalf("trusted certificate %d: %v", i, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			// Go refuses to parse it; the pool then lacks this root, which
			// can only turn a success into a failure.
			out.notes = append(out.notes, fmt.Sprintf("trusted certificate %d does not parse in crypto/x509: %v", i, err))
			continue
		}
		roots.AddCert(cert)
	}

	host := limboPlaceholderHost
	switch {
	case c.ExpectedPeerName == nil:
		out.notes = append(out.notes, "the case has no expected_peer_name; the client, which always checks the host name, dials "+host)
	case c.ExpectedPeerName.Kind == "IP":
		ip := net.ParseIP(c.ExpectedPeerName.Value)
		if ip == nil {
			t.Fatalf("expected_peer_name %q is not an IP address", c.ExpectedPeerName.Value)
		}
		host = ip.String()
		if ip.To4() == nil {
			host = "[" + host + "]"
		}
	default:
		host = c.ExpectedPeerName.Value
	}
	if len(c.ExtendedKeyUsage) > 0 && !slices.Equal(c.ExtendedKeyUsage, []string{"serverAuth"}) {
		out.notes = append(out.notes, fmt.Sprintf("the case requires EKU %v; the client always requires serverAuth", c.ExtendedKeyUsage))
	}
	if c.MaxChainDepth != nil {
		out.notes = append(out.notes, fmt.Sprintf("the case sets max_chain_depth %d; neither crypto/x509 nor Config limits the depth", *c.MaxChainDepth))
	}

	addr := srv.addr
	client, err := NewClient(Config{
		RootCAs: roots,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		Proxy:               func(*http.Request) (*url.URL, error) { return nil, nil },
		Retry:               RetryPolicy{MaxRetries: -1},
		TLSHandshakeTimeout: limboTimeout,
		ExpiryWarning:       -1,
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(client.CloseIdleConnections)

	ctx, cancel := context.WithTimeout(context.Background(), limboTimeout)
	defer cancel()
	out.got = "FAILURE"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/", nil)
	if err != nil {
		out.clientErr = err
	} else if resp, err := client.Do(req); err != nil {
		out.clientErr = err
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			out.got = "SUCCESS"
		} else {
			out.clientErr = fmt.Errorf("status %s", resp.Status)
		}
	}
	client.CloseIdleConnections()

	if local := srv.wait(); out.got == "FAILURE" && local != nil {
		// The server's handshake broke down on its side, not because the
		// client refused the certificate: the case did not really run.
		out.unservable = "server cannot serve this key: " + local.Error()
		out.got = ""
	}
	return out
}

// limboKey parses a case's private key in any of the PEM forms the suite
// uses, and returns it only when crypto/tls can sign with it.
func limboKey(p string) (crypto.Signer, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%s keys are not supported by crypto/tls", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%T is not a crypto.Signer", key)
	}
	return signer, nil
}

// limboDER decodes one PEM certificate.
func limboDER(p string) ([]byte, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return block.Bytes, nil
}

// limboServer answers one HTTP/1.1 request per TLS connection with 200.
type limboServer struct {
	addr string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	local error // the first handshake failure that was not the client's doing
}

// limboServe starts a server for cert on 127.0.0.1. Its goroutines end when
// wait or the test's cleanup closes the listener; every connection is bounded
// by limboTimeout.
func limboServe(t *testing.T, cert tls.Certificate) *limboServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatalf("tls.Listen: %v", err)
	}
	s := &limboServer{addr: ln.Addr().String(), ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				s.serve(conn.(*tls.Conn))
			}()
		}
	}()
	t.Cleanup(func() { s.wait() })
	return s
}

func (s *limboServer) serve(conn *tls.Conn) {
	_ = conn.SetDeadline(time.Now().Add(limboTimeout))
	err := conn.Handshake()
	s.mu.Lock()
	if err != nil && s.local == nil && !limboClientCaused(err) {
		s.local = err
	}
	s.mu.Unlock()
	if err != nil {
		return
	}
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
}

// limboClientCaused reports whether a server handshake error comes from the
// client: an alert it sent, or the connection it dropped.
func limboClientCaused(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET)
}

// wait closes the listener, waits for the server's goroutines and reports
// the first handshake failure that was the server's own.
func (s *limboServer) wait() error {
	s.ln.Close()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.local
}
