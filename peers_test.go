package securehttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// These tests run the client against real third-party peers: nginx,
// openssl s_server and tinyproxy, started on 127.0.0.1 by internal/peers.
// Without the binaries they skip locally; with CI=true they fail.

// peerURL is the URL of a peer under the test host name; testutil.LoopbackDial
// sends it to the peer's port on 127.0.0.1.
func peerURL(p *peers.Peer, host, path string) string {
	return fmt.Sprintf("https://%s:%d%s", host, p.Port, path)
}

// peerGet is get with retries off, so that every failure is one handshake.
func peerGet(t *testing.T, cfg Config, rawURL string) (string, error) {
	t.Helper()
	cfg.Retry.MaxRetries = -1
	return get(t, newTestTransport(t, cfg), rawURL)
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

func TestNginxMatrix(t *testing.T) {
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

// TestOpenSSLServer uses openssl s_server as a second TLS stack.
func TestOpenSSLServer(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	pinned := func(c *Config) { c.Pins = []PinSet{{Host: hostAPI, Pins: []string{p.inter.SPKIPin()}}} }
	for _, tt := range []struct {
		name, want string
		args       []string
	}{
		{"TLS 1.3 only", "TLSv1.3", []string{"-tls1_3"}},
		{"TLS 1.2 only, one ECDHE suite", "ECDHE-ECDSA-AES128-GCM-SHA256", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := peers.StartOpenSSL(t, peers.OpenSSLConfig{CertPEM: testpki.ChainPEM(p.leaf, p.inter), KeyPEM: p.leaf.KeyPEM(), Args: tt.args})
			cfg := testConfig(t)
			pinned(&cfg)
			body, err := peerGet(t, cfg, peerURL(srv, hostAPI, "/"))
			if err != nil || !strings.Contains(body, tt.want) {
				t.Fatalf("got (%d bytes, %v), want a status page naming %s", len(body), err, tt.want)
			}
		})
	}

	t.Run("resumption keeps pins", func(t *testing.T) {
		t.Parallel()
		srv := peers.StartOpenSSL(t, peers.OpenSSLConfig{CertPEM: testpki.ChainPEM(p.leaf, p.inter), KeyPEM: p.leaf.KeyPEM(), Args: []string{"-tls1_3"}})
		url := peerURL(srv, hostAPI, "/")
		good := testConfig(t)
		pinned(&good)
		good.Retry.MaxRetries = -1
		trGood := newTestTransport(t, good)
		var resumed atomic.Int64
		verify := trGood.conns.base.TLSClientConfig.VerifyConnection
		trGood.conns.base.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			if cs.DidResume {
				resumed.Add(1)
			}
			return verify(cs)
		}
		for i := range 2 {
			if _, err := get(t, trGood, url); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			trGood.conns.base.CloseIdleConnections()
		}
		if resumed.Load() != 1 {
			t.Fatalf("got %d resumed handshakes with s_server, want 1", resumed.Load())
		}

		bad := testConfig(t)
		bad.Pins = []PinSet{{Host: hostAPI, Pins: []string{fakePin('R')}}}
		bad.Retry.MaxRetries = -1
		trBad := newTestTransport(t, bad)
		trBad.conns.base.TLSClientConfig.ClientSessionCache = trGood.conns.base.TLSClientConfig.ClientSessionCache
		var badResumed atomic.Bool
		verifyBad := trBad.conns.base.TLSClientConfig.VerifyConnection
		trBad.conns.base.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			badResumed.Store(cs.DidResume)
			return verifyBad(cs)
		}
		_, err := get(t, trBad, url)
		if !badResumed.Load() {
			t.Fatalf("the wrongly pinned client did not resume; the test proves nothing")
		}
		if !errors.Is(err, ErrPinMismatch) {
			t.Fatalf("got %v on a resumed session, want ErrPinMismatch", err)
		}
	})
}

// TestTinyproxy tunnels through a real CONNECT proxy.
func TestTinyproxy(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	origin := peers.StartNginx(t, peers.NginxConfig{CertPEM: testpki.ChainPEM(p.leaf, p.inter), KeyPEM: p.leaf.KeyPEM()})
	const user, pass = "proxyuser", "pr0xy-s3cret"
	for _, tt := range []struct {
		name      string
		auth      bool // the proxy requires basic authentication
		withCreds bool // the proxy URL carries them
		pin       string
		wantErr   func(error) bool
	}{
		{name: "pins hold through CONNECT", pin: p.inter.SPKIPin()},
		{name: "wrong pin through CONNECT", pin: fakePin('P'), wantErr: func(err error) bool { return errors.Is(err, ErrPinMismatch) }},
		{name: "proxy basic auth from the URL", auth: true, withCreds: true, pin: p.root.SPKIPin()},
		{name: "proxy basic auth missing", auth: true, pin: p.root.SPKIPin(), wantErr: func(err error) bool { return err != nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pcfg := peers.TinyproxyConfig{}
			if tt.auth {
				pcfg = peers.TinyproxyConfig{BasicAuthUser: user, BasicAuthPass: pass}
			}
			proxy := peers.StartTinyproxy(t, pcfg)
			proxyURL := proxy.ProxyURL()
			if !tt.withCreds {
				proxyURL.User = nil
			}
			logger, logs := testutil.NewLogger()
			cfg := testConfig(t)
			cfg.Logger = logger
			cfg.Proxy = http.ProxyURL(proxyURL)
			// The proxy resolves and dials the target, so it is named by its
			// address, which the shared leaf also covers; only the proxy's
			// own address may be dialled here.
			cfg.Pins = []PinSet{{Host: "127.0.0.1", Pins: []string{tt.pin}}}
			cfg.DialContext = proxyOnlyDial(t, proxy.Addr)
			body, err := peerGet(t, cfg, origin.URL("/"))
			if tt.wantErr == nil {
				if err != nil || body != "ok\n" {
					t.Fatalf("got (%q, %v), want \"ok\\n\"", body, err)
				}
				if n := proxy.ConnectCount(); n != 1 {
					t.Fatalf("the proxy logged %d CONNECTs, want 1", n)
				}
			} else if !tt.wantErr(err) {
				t.Fatalf("got %v, not the expected error", err)
			}
			for _, secret := range []string{pass, "cHJveHl1c2VyOnByMHh5LXMzY3JldA=="} {
				if strings.Contains(logs.String(), secret) || (err != nil && strings.Contains(err.Error(), secret)) {
					t.Fatalf("the proxy password reached a log or an error")
				}
			}
		})
	}
}

// proxyOnlyDial dials only addr, the proxy, and refuses any other address.
func proxyOnlyDial(t *testing.T, addr string) func(ctx context.Context, network, a string) (net.Conn, error) {
	return func(ctx context.Context, network, a string) (net.Conn, error) {
		if a != addr {
			return nil, fmt.Errorf("dialled %s directly, want only the proxy %s", a, addr)
		}
		return testutil.LoopbackDial(ctx, network, a)
	}
}
