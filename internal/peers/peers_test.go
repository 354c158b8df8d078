package peers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testPKI is a root -> intermediate -> leaf hierarchy; the leaf is valid for
// IP 127.0.0.1 and DNS localhost.
type testPKI struct {
	roots       *x509.CertPool
	rootPEM     []byte
	chainPEM    []byte // leaf then intermediate
	keyPEM      []byte // leaf key, PKCS#8
	leafPEM     []byte
	interPEM    []byte
	interKeyPEM []byte
	leaf        *x509.Certificate
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
	pkiErr  error
)

func certs(t *testing.T) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = newTestPKI() })
	if pkiErr != nil {
		t.Fatalf("generate test PKI: %v", pkiErr)
	}
	return pkiVal
}

func newTestPKI() (*testPKI, error) {
	now := time.Now()
	serial := func() *big.Int {
		n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
		if err != nil {
			panic(err)
		}
		return n.Add(n, big.NewInt(1<<16)) // positive, several bytes
	}
	newKey := func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

	rootKey, err := newKey()
	if err != nil {
		return nil, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "peers test root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}

	interKey, err := newKey()
	if err != nil {
		return nil, err
	}
	interTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "peers test intermediate"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		return nil, err
	}

	leafKey, err := newKey()
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, inter, &leafKey.PublicKey, interKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, err
	}

	keyPEM := func(k *ecdsa.PrivateKey) ([]byte, error) {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}
	certPEM := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }

	p := &testPKI{
		roots:    x509.NewCertPool(),
		rootPEM:  certPEM(rootDER),
		leafPEM:  certPEM(leafDER),
		interPEM: certPEM(interDER),
		leaf:     leaf,
	}
	p.roots.AddCert(root)
	p.chainPEM = append(append([]byte(nil), p.leafPEM...), p.interPEM...)
	if p.keyPEM, err = keyPEM(leafKey); err != nil {
		return nil, err
	}
	if p.interKeyPEM, err = keyPEM(interKey); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *testPKI) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: p.roots}
}

func httpClient(t *testing.T, p *testPKI, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: p.tlsConfig(), ForceAttemptHTTP2: h2}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp, string(body)
}

func TestRequireFindsPeers(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"nginx", "openssl", "tinyproxy"} {
		t.Run(bin, func(t *testing.T) {
			t.Parallel()
			path := Require(t, bin)
			if !filepath.IsAbs(path) {
				t.Errorf("Require(%q) = %q, want an absolute path", bin, path)
			}
			if !isExecutable(path) {
				t.Errorf("Require(%q) = %q, which is not an executable file", bin, path)
			}
		})
	}
}

// recordTB records the first Fatalf or Skipf and stops the calling code
// with a panic, as the real ones stop the goroutine.
type recordTB struct {
	testing.TB
	kind, msg string
}

var errStopped = errors.New("stopped")

func (r *recordTB) Helper() {}
func (r *recordTB) Fatalf(format string, args ...any) {
	r.kind, r.msg = "fatal", fmt.Sprintf(format, args...)
	panic(errStopped)
}
func (r *recordTB) Skipf(format string, args ...any) {
	r.kind, r.msg = "skip", fmt.Sprintf(format, args...)
	panic(errStopped)
}

func TestRequireMissing(t *testing.T) {
	// Not parallel: it sets CI.
	tests := []struct {
		ci, binary      string
		wantKind        string
		wantMsgContains []string
	}{
		{ci: "true", binary: "/nonexistent/tinyproxy", wantKind: "fatal", wantMsgContains: []string{"CI", "apt-get install -y tinyproxy"}},
		{ci: "", binary: "/nonexistent/tinyproxy", wantKind: "skip", wantMsgContains: []string{"Debian package tinyproxy"}},
		{ci: "false", binary: "/nonexistent/nginx", wantKind: "skip", wantMsgContains: []string{"Debian package nginx-light"}},
		{ci: "true", binary: "no-such-peer-binary-4711", wantKind: "fatal", wantMsgContains: []string{"no-such-peer-binary-4711 not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.ci+"/"+filepath.Base(tt.binary), func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			rec := &recordTB{}
			path := func() (path string) {
				defer func() {
					if r := recover(); r != nil && r != errStopped {
						panic(r)
					}
				}()
				return Require(rec, tt.binary)
			}()
			if path != "" {
				t.Errorf("Require(%q) = %q, want \"\"", tt.binary, path)
			}
			if rec.kind != tt.wantKind {
				t.Errorf("Require(%q) with CI=%q: got %s, want %s (message %q)", tt.binary, tt.ci, rec.kind, tt.wantKind, rec.msg)
			}
			for _, want := range tt.wantMsgContains {
				if !strings.Contains(rec.msg, want) {
					t.Errorf("message: got %q, want it to contain %q", rec.msg, want)
				}
			}
		})
	}
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	port := FreePort(t)
	if port <= 0 || port > 65535 {
		t.Fatalf("FreePort: got %d, want 1..65535", port)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("listen on the free port %d: got %v, want nil", port, err)
	}
	l.Close()
}

func TestNginx(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	tests := []struct {
		name       string
		cfg        NginxConfig
		h2         bool
		wantMajor  int
		wantProto  string // body of /proto
		wantVer    uint16
		wantSSL    string // prefix of /echo-ssl
		wantCipher uint16 // 0: any
	}{
		{
			name:      "default http1",
			cfg:       NginxConfig{},
			wantMajor: 1, wantProto: "HTTP/1.1\n",
			wantVer: tls.VersionTLS13, wantSSL: "TLSv1.3 ",
		},
		{
			name:      "http2",
			cfg:       NginxConfig{HTTP2: true},
			h2:        true,
			wantMajor: 2, wantProto: "HTTP/2.0\n",
			wantVer: tls.VersionTLS13, wantSSL: "TLSv1.3 ",
		},
		{
			name:      "http2 server, http1 client",
			cfg:       NginxConfig{HTTP2: true},
			wantMajor: 1, wantProto: "HTTP/1.1\n",
			wantVer: tls.VersionTLS13, wantSSL: "TLSv1.3 ",
		},
		{
			name:      "tls1.2 one cipher",
			cfg:       NginxConfig{Protocols: "TLSv1.2", Ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256"},
			wantMajor: 1, wantProto: "HTTP/1.1\n",
			wantVer: tls.VersionTLS12, wantSSL: "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256\n",
			wantCipher: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		},
		{
			name:      "tls1.3 only",
			cfg:       NginxConfig{Protocols: "TLSv1.3"},
			wantMajor: 1, wantProto: "HTTP/1.1\n",
			wantVer: tls.VersionTLS13, wantSSL: "TLSv1.3 TLS_",
		},
		{
			name:      "extra server directive",
			cfg:       NginxConfig{ExtraServer: `location = /extra { return 200 "extra\n"; }`},
			wantMajor: 1, wantProto: "HTTP/1.1\n",
			wantVer: tls.VersionTLS13, wantSSL: "TLSv1.3 ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.CertPEM, cfg.KeyPEM = pki.chainPEM, pki.keyPEM
			p := StartNginx(t, cfg)
			if want := "127.0.0.1:"; !strings.HasPrefix(p.Addr, want) {
				t.Errorf("Addr: got %q, want prefix %q", p.Addr, want)
			}
			if got, want := p.URL("/x"), "https://"+p.Addr+"/x"; got != want {
				t.Errorf("URL: got %q, want %q", got, want)
			}
			c := httpClient(t, pki, tt.h2)

			resp, body := get(t, c, p.URL("/"))
			if resp.StatusCode != 200 || body != "ok\n" {
				t.Errorf("GET /: got %d %q, want 200 %q", resp.StatusCode, body, "ok\n")
			}
			if resp.ProtoMajor != tt.wantMajor {
				t.Errorf("ProtoMajor: got %d, want %d", resp.ProtoMajor, tt.wantMajor)
			}
			wantALPN := ""
			if tt.wantMajor == 2 {
				wantALPN = "h2"
			}
			if resp.TLS == nil {
				t.Fatalf("resp.TLS: got nil, want connection state")
			}
			if got := resp.TLS.NegotiatedProtocol; got != wantALPN {
				t.Errorf("ALPN: got %q, want %q", got, wantALPN)
			}
			if got := resp.TLS.Version; got != tt.wantVer {
				t.Errorf("TLS version: got %s, want %s", tls.VersionName(got), tls.VersionName(tt.wantVer))
			}
			if tt.wantCipher != 0 && resp.TLS.CipherSuite != tt.wantCipher {
				t.Errorf("cipher: got %s, want %s", tls.CipherSuiteName(resp.TLS.CipherSuite), tls.CipherSuiteName(tt.wantCipher))
			}
			if n := len(resp.TLS.PeerCertificates); n != 2 {
				t.Errorf("chain sent by nginx: got %d certificates, want 2 (leaf, intermediate)", n)
			}

			if _, body := get(t, c, p.URL("/proto")); body != tt.wantProto {
				t.Errorf("GET /proto: got %q, want %q", body, tt.wantProto)
			}
			if _, body := get(t, c, p.URL("/echo-ssl")); !strings.HasPrefix(body, tt.wantSSL) {
				t.Errorf("GET /echo-ssl: got %q, want prefix %q", body, tt.wantSSL)
			}
			if tt.cfg.ExtraServer != "" {
				if _, body := get(t, c, p.URL("/extra")); body != "extra\n" {
					t.Errorf("GET /extra: got %q, want %q", body, "extra\n")
				}
			}
			if log := p.Log(); !strings.Contains(log, "nginx/") {
				t.Errorf("Log: got %q, want the nginx error log with its version line", tail(log, 500))
			}
		})
	}
}

// TestNginxLegacyTLS checks that a TLS 1.0/1.1-only nginx starts and really
// speaks TLS 1.1 (to a legacy openssl client), while a default Go client
// refuses it.
func TestNginxLegacyTLS(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	opensslBin := Require(t, "openssl")
	p := StartNginx(t, NginxConfig{CertPEM: pki.chainPEM, KeyPEM: pki.keyPEM, Protocols: "TLSv1 TLSv1.1"})

	// The default Go client (minimum TLS 1.2) must fail the handshake.
	conn, err := tls.Dial("tcp", p.Addr, &tls.Config{RootCAs: pki.roots, ServerName: "localhost"})
	if err == nil {
		v := conn.ConnectionState().Version
		conn.Close()
		t.Errorf("default Go client against TLS 1.0/1.1 nginx: got a %s connection, want a handshake error", tls.VersionName(v))
	}

	for _, tc := range []struct{ flag, want string }{
		{"-tls1_1", "TLSv1.1 "},
		{"-tls1", "TLSv1 "},
	} {
		out, err := legacyGet(t, opensslBin, p.Addr, tc.flag, "/echo-ssl")
		if err != nil {
			t.Errorf("openssl s_client %s: got %v, want success\n%s\nnginx log:\n%s", tc.flag, err, out, tail(p.Log(), 2000))
			continue
		}
		if !strings.Contains(out, "HTTP/1.1 200") || !strings.Contains(out, "\r\n\r\n"+tc.want) {
			t.Errorf("openssl s_client %s: got %q, want a 200 whose body starts with %q", tc.flag, out, tc.want)
		}
	}
}

// legacyGet sends an HTTP/1.0 GET with openssl s_client limited to one old
// protocol version (flag -tls1 or -tls1_1), verifying the server against the
// test root, and returns what it printed.
func legacyGet(t *testing.T, opensslBin, addr, flag, path string) (string, error) {
	t.Helper()
	rootFile := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(rootFile, certs(t).rootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, opensslBin, "s_client", "-connect", addr, flag,
		"-cipher", LegacyCiphers, "-CAfile", rootFile, "-verify_return_error",
		"-servername", "localhost", "-quiet", "-ign_eof")
	cmd.Stdin = strings.NewReader("GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOpenSSLLegacyTLS checks that s_server with -tls1_1 (and the cipher
// string StartOpenSSL adds for it) speaks TLS 1.1.
func TestOpenSSLLegacyTLS(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	opensslBin := Require(t, "openssl")
	p := StartOpenSSL(t, OpenSSLConfig{CertPEM: pki.chainPEM, KeyPEM: pki.keyPEM, Args: []string{"-tls1_1"}})
	if !strings.Contains(strings.Join(p.cmd.Args, " "), "-cipher "+LegacyCiphers) {
		t.Errorf("s_server command: got %q, want -cipher %s added", p.cmd.Args, LegacyCiphers)
	}
	out, err := legacyGet(t, opensslBin, p.Addr, "-tls1_1", "/")
	if err != nil {
		t.Fatalf("openssl s_client -tls1_1: got %v, want success\n%s\ns_server output:\n%s", err, out, tail(p.Log(), 2000))
	}
	if !strings.Contains(out, "HTTP/1.0 200 ok") || !strings.Contains(out, "TLSv1.1") {
		t.Errorf("openssl s_client -tls1_1: got %q, want an HTTP/1.0 200 status page naming TLSv1.1", tail(out, 1500))
	}
	if conn, err := tls.Dial("tcp", p.Addr, &tls.Config{RootCAs: pki.roots, ServerName: "localhost"}); err == nil {
		conn.Close()
		t.Errorf("default Go client against s_server -tls1_1: got a connection, want a handshake error")
	}
}

func TestNginxLegacyCiphersDefault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		protocols, ciphers string
		want               string
	}{
		{"TLSv1 TLSv1.1", "", "ssl_ciphers \"" + LegacyCiphers + "\";"},
		{"TLSv1.1 TLSv1.2", "", "ssl_ciphers \"" + LegacyCiphers + "\";"},
		{"TLSv1.1", "AES128-SHA:@SECLEVEL=0", "ssl_ciphers \"AES128-SHA:@SECLEVEL=0\";"},
		{"", "", "ssl_protocols TLSv1.2 TLSv1.3;"},
		{"TLSv1.2", "", "ssl_protocols TLSv1.2;"},
	}
	for _, tt := range tests {
		conf := nginxConf("/tmp/x", 4443, NginxConfig{Protocols: tt.protocols, Ciphers: tt.ciphers}, version{1, 22, 1})
		if !strings.Contains(conf, tt.want) {
			t.Errorf("nginxConf(Protocols %q, Ciphers %q): got\n%s\nwant it to contain %q", tt.protocols, tt.ciphers, conf, tt.want)
		}
		if tt.protocols == "" || tt.protocols == "TLSv1.2" {
			if strings.Contains(conf, "ssl_ciphers") {
				t.Errorf("nginxConf(Protocols %q): got an ssl_ciphers line, want none", tt.protocols)
			}
		}
	}
	// http2 directive by version.
	for _, tt := range []struct {
		ver        version
		want, deny string
	}{
		{version{1, 22, 1}, "listen 127.0.0.1:4443 ssl http2;", "http2 on;"},
		{version{1, 25, 1}, "http2 on;", "ssl http2;"},
		{version{1, 27, 0}, "http2 on;", "ssl http2;"},
	} {
		conf := nginxConf("/tmp/x", 4443, NginxConfig{HTTP2: true}, tt.ver)
		if !strings.Contains(conf, tt.want) || strings.Contains(conf, tt.deny) {
			t.Errorf("nginxConf(HTTP2, nginx %s): got\n%s\nwant %q and not %q", tt.ver, conf, tt.want, tt.deny)
		}
	}
}

// ocspResponse makes a DER OCSP response for the leaf, signed by the
// intermediate, with the openssl ocsp command.
func ocspResponse(t *testing.T, pki *testPKI) []byte {
	t.Helper()
	bin := Require(t, "openssl")
	dir := t.TempDir()
	files := map[string][]byte{"leaf.pem": pki.leafPEM, "inter.pem": pki.interPEM, "inter.key": pki.interKeyPEM}
	serial := fmt.Sprintf("%X", pki.leaf.SerialNumber)
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	files["index.txt"] = []byte("V\t" + pki.leaf.NotAfter.UTC().Format("060102150405Z") + "\t\t" + serial + "\tunknown\t/CN=localhost\n")
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ocsp", "-issuer", "inter.pem", "-cert", "leaf.pem", "-no_nonce", "-reqout", "req.der")
	run("ocsp", "-index", "index.txt", "-rsigner", "inter.pem", "-rkey", "inter.key", "-CA", "inter.pem",
		"-reqin", "req.der", "-respout", "resp.der", "-ndays", "1")
	der, err := os.ReadFile(filepath.Join(dir, "resp.der"))
	if err != nil || len(der) == 0 {
		t.Fatalf("read OCSP response: got %d bytes, %v; want a response", len(der), err)
	}
	return der
}

func TestNginxStapling(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	staple := ocspResponse(t, pki)
	p := StartNginx(t, NginxConfig{CertPEM: pki.chainPEM, KeyPEM: pki.keyPEM, StapleFile: staple})
	resp, body := get(t, httpClient(t, pki, false), p.URL("/"))
	if body != "ok\n" {
		t.Errorf("GET /: got %q, want %q", body, "ok\n")
	}
	if got := resp.TLS.OCSPResponse; !bytes.Equal(got, staple) {
		t.Errorf("stapled OCSP response: got %d bytes, want the %d bytes of StapleFile\nnginx log:\n%s", len(got), len(staple), tail(p.Log(), 2000))
	}
}

func TestOpenSSL(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	tests := []struct {
		name       string
		args       []string
		wantVer    uint16
		wantCipher uint16 // 0: any
	}{
		{name: "tls1.3", args: []string{"-tls1_3"}, wantVer: tls.VersionTLS13},
		{name: "tls1.2", args: []string{"-tls1_2"}, wantVer: tls.VersionTLS12},
		{name: "tls1.2 cipher", args: []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"},
			wantVer: tls.VersionTLS12, wantCipher: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{name: "default", wantVer: tls.VersionTLS13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := StartOpenSSL(t, OpenSSLConfig{CertPEM: pki.chainPEM, KeyPEM: pki.keyPEM, Args: tt.args})
			c := httpClient(t, pki, true)

			// Several requests: s_server serves them one after another and
			// neither exits on stdin EOF nor after a connection.
			for i := 0; i < 3; i++ {
				resp, body := get(t, c, p.URL("/any/path"))
				if resp.StatusCode != 200 {
					t.Errorf("request %d: status got %d, want 200", i, resp.StatusCode)
				}
				if resp.Proto != "HTTP/1.0" {
					t.Errorf("request %d: proto got %q, want HTTP/1.0", i, resp.Proto)
				}
				if !strings.Contains(body, "<HTML>") || !strings.Contains(body, "s_server") {
					t.Errorf("request %d: body got %q, want the s_server HTML status page", i, tail(body, 300))
				}
				if resp.TLS.Version != tt.wantVer {
					t.Errorf("request %d: TLS version got %s, want %s", i, tls.VersionName(resp.TLS.Version), tls.VersionName(tt.wantVer))
				}
				if tt.wantCipher != 0 && resp.TLS.CipherSuite != tt.wantCipher {
					t.Errorf("request %d: cipher got %s, want %s", i, tls.CipherSuiteName(resp.TLS.CipherSuite), tls.CipherSuiteName(tt.wantCipher))
				}
				if n := len(resp.TLS.PeerCertificates); n != 2 {
					t.Errorf("request %d: chain got %d certificates, want 2 (leaf, -cert_chain intermediate)", i, n)
				}
			}
			time.Sleep(100 * time.Millisecond)
			if p.exited() {
				t.Fatalf("s_server exited after serving requests: %v\n%s", p.waitErr, p.diagnostics())
			}

			// Session resumption with a Go client session cache.
			cfg := &tls.Config{
				RootCAs:            pki.roots,
				ServerName:         "localhost",
				ClientSessionCache: tls.NewLRUClientSessionCache(8),
			}
			for i, wantResume := range []bool{false, true, true} {
				if got := tlsGet(t, p.Addr, cfg); got != wantResume {
					t.Errorf("connection %d: DidResume got %v, want %v", i, got, wantResume)
				}
			}
			if log := p.Log(); !strings.Contains(log, "ACCEPT") {
				t.Errorf("Log: got %q, want the s_server output with ACCEPT", tail(log, 500))
			}
		})
	}
}

// tlsGet sends one HTTP/1.0 GET over a new TLS connection, reads the whole
// response (so TLS 1.3 tickets are processed) and reports DidResume.
func tlsGet(t *testing.T, addr string, cfg *tls.Config) bool {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("tls dial %s: %v", addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status: got %d, want 200", resp.StatusCode)
	}
	return conn.ConnectionState().DidResume
}

func TestTinyproxyConnect(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	target := StartNginx(t, NginxConfig{CertPEM: pki.chainPEM, KeyPEM: pki.keyPEM, HTTP2: true})
	proxy := StartTinyproxy(t, TinyproxyConfig{})

	if got, want := proxy.ProxyURL().String(), "http://"+proxy.Addr; got != want {
		t.Errorf("ProxyURL: got %q, want %q", got, want)
	}
	if n := proxy.ConnectCount(); n != 0 {
		t.Errorf("ConnectCount before any request: got %d, want 0", n)
	}
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{
			Proxy:             http.ProxyURL(proxy.ProxyURL()),
			TLSClientConfig:   pki.tlsConfig(),
			ForceAttemptHTTP2: h2,
		}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, body := get(t, c, target.URL("/"))
		tr.CloseIdleConnections()
		if resp.StatusCode != 200 || body != "ok\n" {
			t.Errorf("GET %s via tinyproxy (h2 %v): got %d %q, want 200 %q", target.URL("/"), h2, resp.StatusCode, body, "ok\n")
		}
		if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
			t.Errorf("ProtoMajor via tinyproxy: got %d, want %d", resp.ProtoMajor, want)
		}
	}
	waitFor(t, func() bool { return proxy.ConnectCount() == 2 }, func() string {
		return fmt.Sprintf("ConnectCount: got %d, want 2\n%s", proxy.ConnectCount(), proxy.Log())
	})
	if want := "CONNECT " + target.Addr; !strings.Contains(proxy.Log(), want) {
		t.Errorf("tinyproxy log: got %q, want it to contain %q", tail(proxy.Log(), 1000), want)
	}
}

// waitFor polls cond for up to 5 s (logs are written asynchronously).
func waitFor(t *testing.T, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Error(msg())
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawConnect sends a CONNECT for target to the proxy and returns the status.
func rawConnect(t *testing.T, proxyAddr, target, authorization string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if authorization != "" {
		req += "Proxy-Authorization: " + authorization + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("write CONNECT: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("read CONNECT response: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestTinyproxyBasicAuth(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	target := StartNginx(t, NginxConfig{CertPEM: pki.chainPEM, KeyPEM: pki.keyPEM})
	proxy := StartTinyproxy(t, TinyproxyConfig{BasicAuthUser: "alice", BasicAuthPass: "s3cret"})

	if got, want := proxy.ProxyURL().String(), "http://alice:s3cret@"+proxy.Addr; got != want {
		t.Errorf("ProxyURL: got %q, want %q", got, want)
	}
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	tests := []struct {
		name, auth string
		want       int
	}{
		{"no credentials", "", http.StatusProxyAuthRequired},
		// tinyproxy quirk: wrong credentials get 401, not 407.
		{"wrong password", basic("alice", "wrong"), http.StatusUnauthorized},
		{"unknown user", basic("bob", "s3cret"), http.StatusUnauthorized},
		{"right credentials", basic("alice", "s3cret"), http.StatusOK},
	}
	for _, tt := range tests {
		if got := rawConnect(t, proxy.Addr, target.Addr, tt.auth); got != tt.want {
			t.Errorf("CONNECT with %s: got %d, want %d", tt.name, got, tt.want)
		}
	}

	// Through net/http: with the credentials in the proxy URL it works...
	tr := &http.Transport{Proxy: http.ProxyURL(proxy.ProxyURL()), TLSClientConfig: pki.tlsConfig()}
	t.Cleanup(tr.CloseIdleConnections)
	resp, body := get(t, &http.Client{Transport: tr, Timeout: 10 * time.Second}, target.URL("/"))
	if resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("GET via authenticated proxy: got %d %q, want 200 %q", resp.StatusCode, body, "ok\n")
	}
	// ... and without them the CONNECT is refused.
	noAuth := *proxy.ProxyURL()
	noAuth.User = nil
	tr2 := &http.Transport{Proxy: http.ProxyURL(&noAuth), TLSClientConfig: pki.tlsConfig()}
	t.Cleanup(tr2.CloseIdleConnections)
	_, err := (&http.Client{Transport: tr2, Timeout: 10 * time.Second}).Get(target.URL("/"))
	if err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required") {
		t.Errorf("GET via proxy without credentials: got error %v, want Proxy Authentication Required", err)
	}
}

func TestTinyproxyRejectsBadCredentials(t *testing.T) {
	t.Parallel()
	Require(t, "tinyproxy")
	for _, cfg := range []TinyproxyConfig{
		{BasicAuthUser: "a b", BasicAuthPass: "x"},
		{BasicAuthUser: "a", BasicAuthPass: `x"y`},
		{BasicAuthUser: "a"},
	} {
		rec := &recordTB{TB: t}
		func() {
			defer func() {
				if r := recover(); r != nil && r != errStopped {
					panic(r)
				}
			}()
			StartTinyproxy(rec, cfg)
		}()
		if rec.kind != "fatal" {
			t.Errorf("StartTinyproxy(%+v): got %q, want a fatal error", cfg, rec.kind)
		}
	}
}

// startFuncs starts each kind of peer with a given port picker.
func startFuncs(t *testing.T) map[string]func(t *testing.T, pick func(testing.TB) int) *Peer {
	pki := certs(t)
	return map[string]func(t *testing.T, pick func(testing.TB) int) *Peer{
		"nginx": func(t *testing.T, pick func(testing.TB) int) *Peer {
			return startNginx(t, NginxConfig{CertPEM: pki.chainPEM, KeyPEM: pki.keyPEM}, pick)
		},
		"openssl": func(t *testing.T, pick func(testing.TB) int) *Peer {
			return startOpenSSL(t, OpenSSLConfig{CertPEM: pki.chainPEM, KeyPEM: pki.keyPEM}, pick)
		},
		"tinyproxy": func(t *testing.T, pick func(testing.TB) int) *Peer {
			return startTinyproxy(t, TinyproxyConfig{}, pick)
		},
		"redis": func(t *testing.T, pick func(testing.TB) int) *Peer {
			return startRedis(t, pick)
		},
	}
}

func TestStopLeavesNoProcess(t *testing.T) {
	t.Parallel()
	for name, startPeer := range startFuncs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := startPeer(t, nil)
			pid := p.Pid()
			if err := syscall.Kill(pid, 0); err != nil {
				t.Fatalf("peer pid %d before Stop: got %v, want it running", pid, err)
			}
			start := time.Now()
			p.Stop()
			// Generous bound: Stop waits stopTimeout at most, then kills.
			if max := 2*stopTimeout + 2*time.Second; time.Since(start) > max {
				t.Errorf("Stop took %v, want at most %v", time.Since(start), max)
			}
			p.Stop() // idempotent
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("kill(%d, 0) after Stop: got %v, want ESRCH", pid, err)
			}
			if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("kill(-%d, 0) (process group) after Stop: got %v, want ESRCH", pid, err)
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("/proc/%d after Stop: got %v, want not exist", pid, err)
			}
			if c, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
				c.Close()
				t.Errorf("dial %s after Stop: got a connection, want refused", p.Addr)
			}
		})
	}
}

// TestStartRetriesTakenPort makes the first attempt use a port that is
// already bound and checks that the start succeeds on another port.
func TestStartRetriesTakenPort(t *testing.T) {
	t.Parallel()
	for name, startPeer := range startFuncs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			taken := l.Addr().(*net.TCPAddr).Port
			calls := 0
			pick := func(tb testing.TB) int {
				calls++
				if calls == 1 {
					return taken
				}
				return FreePort(tb)
			}
			start := time.Now()
			p := startPeer(t, pick)
			if p.Port == taken {
				t.Errorf("port: got the taken port %d, want another", taken)
			}
			if calls != 2 {
				t.Errorf("port picks: got %d, want 2", calls)
			}
			// nginx retries bind() for 2.5 s; start must not wait for that
			// nor for the ready timeout (bound generous for loaded CI).
			if d := time.Since(start); d > readyTimeout+stopTimeout {
				t.Errorf("start with one taken port took %v, want under %v", d, readyTimeout+stopTimeout)
			}
			if c, err := net.DialTimeout("tcp", p.Addr, time.Second); err != nil {
				t.Errorf("dial %s: got %v, want a connection", p.Addr, err)
			} else {
				c.Close()
			}
		})
	}
}

// fatalOf runs f with a recordTB around t and returns what it recorded.
func fatalOf(t *testing.T, f func(tb testing.TB)) *recordTB {
	rec := &recordTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != errStopped {
				panic(r)
			}
		}()
		f(rec)
	}()
	return rec
}

func TestStartReportsConfigError(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	begin := time.Now()
	rec := fatalOf(t, func(tb testing.TB) {
		StartNginx(tb, NginxConfig{CertPEM: pki.chainPEM, KeyPEM: pki.keyPEM, ExtraServer: "bogus_directive on;"})
	})
	if rec.kind != "fatal" {
		t.Fatalf("StartNginx with a bad directive: got %q, want a fatal error", rec.kind)
	}
	for _, want := range []string{"exited early", `unknown directive "bogus_directive"`} {
		if !strings.Contains(rec.msg, want) {
			t.Errorf("message: got %q, want it to contain %q", rec.msg, want)
		}
	}
	if d := time.Since(begin); d > readyTimeout {
		t.Errorf("failing start took %v, want it to fail before the %v ready timeout", d, readyTimeout)
	}
}

func TestStartNeverReady(t *testing.T) {
	t.Parallel()
	sleepBin, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("no sleep binary: %v", err)
	}
	dir := t.TempDir()
	picks := 0
	var pids []int
	begin := time.Now()
	rec := fatalOf(t, func(tb testing.TB) {
		start(tb, launchSpec{
			name: "sleeper", bin: sleepBin, dir: dir, scheme: "http", stopSig: syscall.SIGTERM,
			pickPort: func(tb testing.TB) int { picks++; return FreePort(tb) },
			build:    func(int) (launch, error) { return launch{args: []string{"60"}}, nil },
			ready: func(p *Peer) bool {
				if len(pids) == 0 || pids[len(pids)-1] != p.Pid() {
					pids = append(pids, p.Pid())
				}
				return false
			},
		})
	})
	if rec.kind != "fatal" || !strings.Contains(rec.msg, "not listening after 5s") {
		t.Errorf("start of a peer that never listens: got %s %q, want fatal \"not listening after 5s\"", rec.kind, rec.msg)
	}
	if picks != 2 {
		t.Errorf("attempts: got %d, want 2 (one retry after a timeout)", picks)
	}
	if max := 2*readyTimeout + 2*stopTimeout + 5*time.Second; time.Since(begin) > max {
		t.Errorf("failing start took %v, want at most %v", time.Since(begin), max)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("kill(%d, 0) after the failed start: got %v, want ESRCH", pid, err)
		}
	}
}

func TestPEMCerts(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	got := pemCerts(append(append([]byte("junk\n"), pki.chainPEM...), pki.keyPEM...))
	if len(got) != 2 || !bytes.Equal(got[0], pki.leafPEM) || !bytes.Equal(got[1], pki.interPEM) {
		t.Errorf("pemCerts: got %d blocks, want leaf and intermediate", len(got))
	}
}

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	b := &tailBuffer{limit: 10}
	for i := 0; i < 10; i++ {
		fmt.Fprintf(b, "%d23456789\n", i)
	}
	got := b.String()
	if !strings.HasSuffix(got, "\n923456789\n") || !strings.Contains(got, "90 bytes dropped") {
		t.Errorf("tailBuffer: got %q, want the last 10 bytes and a note that 90 were dropped", got)
	}
}
