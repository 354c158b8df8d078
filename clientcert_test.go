package securehttp

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// testReloadInterval is the watcher's poll interval in these tests.
const testReloadInterval = 20 * time.Millisecond

// clientSubject is the subject common name of every test client
// certificate: a rotation keeps the name and changes the key and serial.
const clientSubject = "securehttp client"

var (
	clientCAOnce sync.Once
	clientCAVal  *testpki.Cert
)

// clientCA is the CA that issues the test client certificates.
func clientCA(t testing.TB) *testpki.Cert {
	t.Helper()
	clientCAOnce.Do(func() {
		clientCAVal = testpki.Must(testpki.NewRoot("securehttp client CA", testpki.Options{}))
	})
	return clientCAVal
}

// newClientLeaf issues a client certificate (extended key usage clientAuth)
// from the test client CA.
func newClientLeaf(t testing.TB, o testpki.Options) *testpki.Cert {
	t.Helper()
	if o.ExtKeyUsage == nil {
		o.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	return testpki.Must(clientCA(t).NewLeaf(clientSubject, o))
}

// pairFiles are a certificate file and a key file in a test directory.
type pairFiles struct {
	dir, cert, key string
}

func newPairFiles(t testing.TB, leaf *testpki.Cert) pairFiles {
	t.Helper()
	dir := t.TempDir()
	f := pairFiles{dir: dir, cert: filepath.Join(dir, "tls.crt"), key: filepath.Join(dir, "tls.key")}
	writeFile(t, f.cert, leaf.CertPEM())
	writeFile(t, f.key, leaf.KeyPEM())
	return f
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// renameInto replaces path atomically, as most tools that write a
// certificate do.
func renameInto(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// kubeSecret lays out a directory as the kubelet does for a mounted
// Secret: the files are symbolic links through "..data", itself a link to
// a timestamped directory, and an update swaps "..data" atomically.
type kubeSecret struct {
	dir, cert, key string
	n              int
}

func newKubeSecret(t testing.TB, leaf *testpki.Cert) *kubeSecret {
	t.Helper()
	k := &kubeSecret{dir: t.TempDir()}
	k.cert, k.key = filepath.Join(k.dir, "tls.crt"), filepath.Join(k.dir, "tls.key")
	k.update(t, leaf.CertPEM(), leaf.KeyPEM())
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(k.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

func (k *kubeSecret) update(t testing.TB, certPEM, keyPEM []byte) {
	t.Helper()
	k.n++
	ts := fmt.Sprintf("..2026_12_01_00_00_%02d.%d", k.n, k.n)
	if err := os.Mkdir(filepath.Join(k.dir, ts), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(k.dir, ts, "tls.crt"), certPEM)
	writeFile(t, filepath.Join(k.dir, ts, "tls.key"), keyPEM)
	tmp := filepath.Join(k.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// loadTestCert loads a pair with the tests' fast poll interval and closes
// it when the test ends.
func loadTestCert(t testing.TB, certFile, keyFile string) *ClientCert {
	t.Helper()
	c, err := loadClientCert(certFile, keyFile, testReloadInterval, time.Now)
	if err != nil {
		t.Fatalf("loadClientCert: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func serialHex(c *testpki.Cert) string { return strings.ToUpper(c.Cert.SerialNumber.Text(16)) }

// normSerial writes a hexadecimal serial as serialHex does: nginx pads it
// to whole bytes.
func normSerial(s string) string {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		return s
	}
	return strings.ToUpper(n.Text(16))
}

func mustSEC1(t testing.TB, c *testpki.Cert) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(c.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func x25519PKCS8(t testing.TB) []byte {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// quotesKey reports whether s holds a stretch of the key's PEM text.
func quotesKey(s string, keyPEM []byte) bool {
	body := pemBody(keyPEM)
	if len(body) < 16 {
		return false
	}
	return strings.Contains(s, body[:16]) || strings.Contains(s, body[len(body)/2:len(body)/2+16])
}

func TestLoadClientCert(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ecLeaf := newClientLeaf(t, testpki.Options{})
	rsaLeaf := newClientLeaf(t, testpki.Options{KeyType: testpki.RSA2048})
	edLeaf := newClientLeaf(t, testpki.Options{KeyType: testpki.Ed25519})
	p384Leaf := newClientLeaf(t, testpki.Options{KeyType: testpki.ECDSAP384})
	inter := testpki.Must(clientCA(t).NewIntermediate("client intermediate", testpki.Options{}))
	chainLeaf := testpki.Must(inter.NewLeaf(clientSubject, testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}))
	expired := newClientLeaf(t, testpki.Options{NotAfter: now.Add(-time.Minute)})
	future := newClientLeaf(t, testpki.Options{NotBefore: now.Add(time.Hour)})
	weakRSA := newClientLeaf(t, testpki.Options{KeyType: testpki.RSA1024})
	weakEC := newClientLeaf(t, testpki.Options{KeyType: testpki.ECDSAP224})
	serverOnly := newClientLeaf(t, testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	other := newClientLeaf(t, testpki.Options{})

	pemOf := func(typ string, der []byte, headers map[string]string) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: der})
	}
	pkcs8 := func(c *testpki.Cert) []byte { return c.KeyPEM() }
	isExpired := func(err error) bool {
		var e x509.CertificateInvalidError
		return errors.As(err, &e) && e.Reason == x509.Expired
	}
	is := func(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

	tests := []struct {
		name      string
		cert, key []byte
		wantChain int              // certificates served, on success
		wantErr   func(error) bool // nil: success
	}{
		{"EC PKCS #8", ecLeaf.CertPEM(), pkcs8(ecLeaf), 1, nil},
		{"EC SEC 1", ecLeaf.CertPEM(), pemOf("EC PRIVATE KEY", mustSEC1(t, ecLeaf), nil), 1, nil},
		{"RSA PKCS #1", rsaLeaf.CertPEM(), pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaLeaf.Key.(*rsa.PrivateKey)), nil), 1, nil},
		{"RSA PKCS #8", rsaLeaf.CertPEM(), pkcs8(rsaLeaf), 1, nil},
		{"Ed25519 PKCS #8", edLeaf.CertPEM(), pkcs8(edLeaf), 1, nil},
		{"P-384", p384Leaf.CertPEM(), pkcs8(p384Leaf), 1, nil},
		{"chain with intermediate", testpki.ChainPEM(chainLeaf, inter), pkcs8(chainLeaf), 2, nil},
		{"certificate and key in one file", append(ecLeaf.CertPEM(), pkcs8(ecLeaf)...), append(ecLeaf.CertPEM(), pkcs8(ecLeaf)...), 1, nil},
		{"key file with text and a certificate first", ecLeaf.CertPEM(), append(append([]byte("key for the client\n"), ecLeaf.CertPEM()...), pkcs8(ecLeaf)...), 1, nil},
		{"encrypted PKCS #8", ecLeaf.CertPEM(), pemOf("ENCRYPTED PRIVATE KEY", []byte{0x30, 0x00}, nil), 0, is(errEncryptedKey)},
		{"encrypted legacy PEM", rsaLeaf.CertPEM(), pemOf("RSA PRIVATE KEY", []byte{1, 2, 3},
			map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}), 0, is(errEncryptedKey)},
		{"key of another certificate", ecLeaf.CertPEM(), pkcs8(other), 0, is(errKeyMismatch)},
		{"expired", expired.CertPEM(), pkcs8(expired), 0, isExpired},
		{"not yet valid", future.CertPEM(), pkcs8(future), 0, isExpired},
		{"RSA 1024", weakRSA.CertPEM(), pkcs8(weakRSA), 0, is(ErrWeakKey)},
		{"EC P-224", weakEC.CertPEM(), pkcs8(weakEC), 0, is(ErrWeakKey)},
		{"server authentication only", serverOnly.CertPEM(), pkcs8(serverOnly), 0, is(errNotClientAuth)},
		{"no certificate", pkcs8(ecLeaf), pkcs8(ecLeaf), 0, is(errNoCertificate)},
		{"no key", ecLeaf.CertPEM(), ecLeaf.CertPEM(), 0, is(errNoKey)},
		{"truncated chain", testpki.ChainPEM(chainLeaf, inter)[:len(testpki.ChainPEM(chainLeaf, inter))-40], pkcs8(chainLeaf), 0, is(errTruncatedPEM)},
		{"X25519 key, which cannot sign", ecLeaf.CertPEM(), pemOf("PRIVATE KEY", x25519PKCS8(t), nil), 0, is(errKeyType)},
		{"garbage key", ecLeaf.CertPEM(), pemOf("PRIVATE KEY", []byte("not DER"), nil), 0, func(err error) bool { return err != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
			writeFile(t, certFile, tt.cert)
			writeFile(t, keyFile, tt.key)
			c, err := loadClientCert(certFile, keyFile, time.Hour, time.Now)
			if tt.wantErr != nil {
				if err == nil {
					c.Close()
					t.Fatal("got a certificate, want an error")
				}
				if !errors.Is(err, ErrClientCert) || !tt.wantErr(err) {
					t.Fatalf("got error %v, want one matching ErrClientCert and the case", err)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, "securehttp: ") || strings.Count(msg, "securehttp:") != 1 {
					t.Errorf("got message %q, want one leading \"securehttp: \"", msg)
				}
				if quotesKey(err.Error(), tt.key) {
					t.Errorf("error %q quotes key material", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadClientCert: %v", err)
			}
			defer c.Close()
			crt, err := c.GetClientCertificate(&tls.CertificateRequestInfo{})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(crt.Certificate); got != tt.wantChain {
				t.Errorf("got %d certificates, want %d", got, tt.wantChain)
			}
			leaf, _ := x509.ParseCertificate(crt.Certificate[0])
			if !c.NotAfter().Equal(leaf.NotAfter) {
				t.Errorf("NotAfter: got %v, want %v", c.NotAfter(), leaf.NotAfter)
			}
			for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v %#v", c, c), fmt.Sprintf("%v %+v %#v", crt.PrivateKey, crt.PrivateKey, crt.PrivateKey)} {
				if quotesKey(s, tt.key) || strings.Contains(s, "D:") {
					t.Errorf("formatted output %q shows key material", s)
				}
			}
		})
	}
}

// pemBody is the base64 text of the first PEM block of data.
func pemBody(data []byte) string {
	b, _ := pem.Decode(data)
	if b == nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b.Bytes)
}

// fetch GETs rawURL and returns the status and body. It is safe to call
// from any goroutine.
func fetch(tr http.RoundTripper, rawURL string) (int, string, error) {
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(rawURL)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// echoClient answers as nginx's /echo-client does: the client
// certificate's serial in upper-case hex, and "r" for a resumed session or
// "." for a full handshake.
func echoClient(w http.ResponseWriter, r *http.Request) {
	serial, resumed := "", "."
	if len(r.TLS.PeerCertificates) > 0 {
		serial = strings.ToUpper(r.TLS.PeerCertificates[0].SerialNumber.Text(16))
	}
	if r.TLS.DidResume {
		resumed = "r"
	}
	fmt.Fprintf(w, "%s %s\n", serial, resumed)
}

// startMTLSServer starts a TLS server that requires a client certificate
// from the test client CA. onHandshake, if set, sees every verified
// client certificate chain as its handshake completes.
func startMTLSServer(t testing.TB, h http.Handler, onHandshake func(leaf *x509.Certificate)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{sharedPKI(t).serverCert()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCA(t).Pool(),
		VerifyConnection: func(cs tls.ConnectionState) error {
			if onHandshake != nil && len(cs.PeerCertificates) > 0 {
				onHandshake(cs.PeerCertificates[0])
			}
			return nil
		},
	}
	srv.Config.ErrorLog = testutil.QuietLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// certTransport is a Transport for the test servers that presents c.
func certTransport(t testing.TB, c *ClientCert, cfg Config) *transport {
	t.Helper()
	base := testConfig(t)
	base.GetClientCertificate = c.GetClientCertificate
	base.Logger = cfg.Logger
	base.Bearer = cfg.Bearer
	base.ExpiryWarning = cfg.ExpiryWarning
	return newTestTransport(t, base)
}

// servedSerial GETs /echo-client and returns the serial the server saw.
func servedSerial(t testing.TB, tr http.RoundTripper, rawURL string) (serial string, resumed bool) {
	t.Helper()
	status, body, err := fetch(tr, rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	if status != http.StatusOK {
		t.Fatalf("GET %s: got status %d (%q), want 200", rawURL, status, body)
	}
	f := strings.Fields(body)
	if len(f) != 2 {
		t.Fatalf("GET %s: got body %q, want \"SERIAL r|.\"", rawURL, body)
	}
	return normSerial(f[0]), f[1] == "r"
}

// waitForPair waits until c uses leaf, for at most 5 s, and returns when
// it saw the change.
func waitForPair(t testing.TB, c *ClientCert, leaf *testpki.Cert) time.Time {
	t.Helper()
	want := sha256.Sum256(leaf.Cert.Raw)
	deadline := time.Now().Add(5 * time.Second)
	for c.pair.Load().hash != want {
		if time.Now().After(deadline) {
			t.Fatalf("the new certificate was not loaded within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	return time.Now()
}

func TestClientCertServerSeesSerial(t *testing.T) {
	t.Parallel()
	var handled atomic.Int64
	srv := startMTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled.Add(1)
		echoClient(w, r)
	}), nil)
	url := testutil.HostURL(srv, hostAPI, "/echo-client")

	// Every key type signs the handshake through the ClientCert's key.
	for _, kt := range []testpki.KeyType{testpki.ECDSAP256, testpki.ECDSAP384, testpki.RSA2048, testpki.Ed25519} {
		t.Run(kt.String(), func(t *testing.T) {
			leaf := newClientLeaf(t, testpki.Options{KeyType: kt})
			f := newPairFiles(t, leaf)
			c := loadTestCert(t, f.cert, f.key)
			if got, _ := servedSerial(t, certTransport(t, c, Config{}), url); got != serialHex(leaf) {
				t.Errorf("server saw serial %s, want %s", got, serialHex(leaf))
			}
		})
	}
	if n := handled.Load(); n != 4 {
		t.Fatalf("got %d requests handled, want 4", n)
	}

	cfg := testConfig(t)
	cfg.Retry.MaxRetries = -1
	if _, _, err := fetch(newTestTransport(t, cfg), url); err == nil {
		t.Error("got no error without a client certificate, want a refused handshake")
	}
	if n := handled.Load(); n != 4 {
		t.Errorf("got %d requests handled, want 4: the request without a certificate reached the handler", n)
	}
}

// TestClientCertReload rotates the files in each way tools write them and
// checks that the next requests present the new certificate, and how long
// that took.
func TestClientCertReload(t *testing.T) {
	t.Parallel()
	type rotation struct {
		certFile, keyFile string
		rotate            func(t *testing.T, next *testpki.Cert)
	}
	ways := []struct {
		name  string
		setup func(t *testing.T, first *testpki.Cert) rotation
	}{
		{"rewrite in place", func(t *testing.T, first *testpki.Cert) rotation {
			f := newPairFiles(t, first)
			return rotation{f.cert, f.key, func(t *testing.T, next *testpki.Cert) {
				writeFile(t, f.cert, next.CertPEM())
				writeFile(t, f.key, next.KeyPEM())
			}}
		}},
		{"atomic rename", func(t *testing.T, first *testpki.Cert) rotation {
			f := newPairFiles(t, first)
			return rotation{f.cert, f.key, func(t *testing.T, next *testpki.Cert) {
				renameInto(t, f.cert, next.CertPEM())
				renameInto(t, f.key, next.KeyPEM())
			}}
		}},
		{"kubernetes symlink swap", func(t *testing.T, first *testpki.Cert) rotation {
			k := newKubeSecret(t, first)
			return rotation{k.cert, k.key, func(t *testing.T, next *testpki.Cert) {
				k.update(t, next.CertPEM(), next.KeyPEM())
			}}
		}},
	}
	srv := startMTLSServer(t, http.HandlerFunc(echoClient), nil)
	url := testutil.HostURL(srv, hostAPI, "/echo-client")
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			first := newClientLeaf(t, testpki.Options{})
			next := newClientLeaf(t, testpki.Options{NotAfter: time.Now().Add(48 * time.Hour)})
			r := w.setup(t, first)
			c := loadTestCert(t, r.certFile, r.keyFile)
			tr := certTransport(t, c, Config{})
			if got, _ := servedSerial(t, tr, url); got != serialHex(first) {
				t.Fatalf("before rotation: server saw %s, want %s", got, serialHex(first))
			}

			start := time.Now()
			r.rotate(t, next)
			deadline := start.Add(5 * time.Second)
			for {
				got, _ := servedSerial(t, tr, url)
				if got == serialHex(next) {
					break
				}
				if got != serialHex(first) {
					t.Fatalf("server saw %s, want %s or %s", got, serialHex(first), serialHex(next))
				}
				if time.Now().After(deadline) {
					t.Fatalf("still %s 5 s after the rotation, want %s", got, serialHex(next))
				}
				time.Sleep(2 * time.Millisecond)
			}
			t.Logf("new certificate presented %v after the files changed (poll interval %v)", time.Since(start).Round(time.Millisecond), testReloadInterval)
			for i := range 5 {
				if got, _ := servedSerial(t, tr, url); got != serialHex(next) {
					t.Fatalf("request %d after the switch: server saw %s, want %s", i, got, serialHex(next))
				}
			}
			if !c.NotAfter().Equal(next.Cert.NotAfter) {
				t.Errorf("NotAfter: got %v, want %v", c.NotAfter(), next.Cert.NotAfter)
			}
		})
	}
}

// TestClientCertRotationDoesNotResumeOldSession shows that TLS sessions
// are resumed, and that none made with the old certificate is resumed once
// it has rotated: a resumed session keeps the identity of the handshake
// that made it.
func TestClientCertRotationDoesNotResumeOldSession(t *testing.T) {
	t.Parallel()
	first := newClientLeaf(t, testpki.Options{})
	next := newClientLeaf(t, testpki.Options{})
	f := newPairFiles(t, first)
	c := loadTestCert(t, f.cert, f.key)
	srv := startMTLSServer(t, http.HandlerFunc(echoClient), nil)
	url := testutil.HostURL(srv, hostAPI, "/echo-client")
	tr := certTransport(t, c, Config{})

	if got, resumed := servedSerial(t, tr, url); got != serialHex(first) || resumed {
		t.Fatalf("first request: got serial %s resumed %v, want %s on a full handshake", got, resumed, serialHex(first))
	}
	tr.CloseIdleConnections()
	if got, resumed := servedSerial(t, tr, url); got != serialHex(first) || !resumed {
		t.Fatalf("second connection: got serial %s resumed %v, want %s on a resumed session", got, resumed, serialHex(first))
	}
	renameInto(t, f.key, next.KeyPEM())
	renameInto(t, f.cert, next.CertPEM())
	waitForPair(t, c, next)
	if got, resumed := servedSerial(t, tr, url); got != serialHex(next) || resumed {
		t.Fatalf("after rotation: got serial %s resumed %v, want %s on a full handshake", got, resumed, serialHex(next))
	}
}

// TestClientCertBrokenRotation writes unusable files over a good pair: the
// good pair stays in use, one warning is logged per change, and a good pair
// written afterwards is picked up.
func TestClientCertBrokenRotation(t *testing.T) {
	t.Parallel()
	now := time.Now()
	srv := startMTLSServer(t, http.HandlerFunc(echoClient), nil)
	url := testutil.HostURL(srv, hostAPI, "/echo-client")
	other := newClientLeaf(t, testpki.Options{})
	expired := newClientLeaf(t, testpki.Options{NotAfter: now.Add(-time.Minute)})
	tests := []struct {
		name      string
		cert, key []byte
	}{
		{"key of another certificate", nil, other.KeyPEM()},
		{"expired certificate", expired.CertPEM(), expired.KeyPEM()},
		{"garbage", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n"), nil},
		{"encrypted key", nil, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}})},
		{"weak key", newClientLeaf(t, testpki.Options{KeyType: testpki.RSA1024}).CertPEM(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first := newClientLeaf(t, testpki.Options{})
			// Both files change at once, so that exactly one change is
			// seen however slowly the test runs.
			k := newKubeSecret(t, first)
			c := loadTestCert(t, k.cert, k.key)
			logger, logs := testutil.NewLogger()
			tr := certTransport(t, c, Config{Logger: logger})
			if got, _ := servedSerial(t, tr, url); got != serialHex(first) {
				t.Fatalf("before: server saw %s, want %s", got, serialHex(first))
			}
			certPEM, keyPEM := first.CertPEM(), first.KeyPEM()
			if tt.cert != nil {
				certPEM = tt.cert
			}
			if tt.key != nil {
				keyPEM = tt.key
			}
			k.update(t, certPEM, keyPEM)
			const warning = "client certificate files changed but cannot be loaded"
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(logs.String(), warning) {
				if time.Now().After(deadline) {
					t.Fatalf("no warning within 5 s; log:\n%s", logs)
				}
				time.Sleep(testReloadInterval)
			}
			time.Sleep(10 * testReloadInterval) // more polls, no new change
			if n := strings.Count(logs.String(), warning); n != 1 {
				t.Errorf("got %d warnings, want 1 for one change; log:\n%s", n, logs)
			}
			if got, _ := servedSerial(t, tr, url); got != serialHex(first) {
				t.Errorf("after the broken rotation: server saw %s, want the previous %s", got, serialHex(first))
			}

			next := newClientLeaf(t, testpki.Options{})
			k.update(t, next.CertPEM(), next.KeyPEM())
			waitForPair(t, c, next)
			if got, _ := servedSerial(t, tr, url); got != serialHex(next) {
				t.Errorf("after a good rotation: server saw %s, want %s", got, serialHex(next))
			}
		})
	}
}

// loadRecord is one request made during a rotation under load.
type loadRecord struct {
	start  time.Time
	serial string
	err    error
}

// rotateUnderLoad runs workers that GET rawURL (answered as /echo-client)
// while the files of c rotate from first to next, and checks that no
// request fails and that every request started after the new pair was
// loaded presents it. It returns the delay from the write to the load.
func rotateUnderLoad(t *testing.T, tr http.RoundTripper, c *ClientCert, f pairFiles, first, next *testpki.Cert, rawURL string) time.Duration {
	t.Helper()
	const workers = 8
	var (
		mu      sync.Mutex
		records []loadRecord
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				r := loadRecord{start: time.Now()}
				status, body, err := fetch(tr, rawURL)
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("status %d: %q", status, body)
				}
				if fields := strings.Fields(body); err == nil && len(fields) > 0 {
					r.serial = normSerial(fields[0])
				}
				r.err = err
				mu.Lock()
				records = append(records, r)
				mu.Unlock()
			}
		}()
	}
	// waitFor waits, for at most 10 s, until n requests that started
	// after since have completed.
	waitFor := func(n int, since time.Time) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			done := 0
			for _, r := range records {
				if r.start.After(since) {
					done++
				}
			}
			mu.Unlock()
			if done >= n {
				return
			}
			if time.Now().After(deadline) {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("only %d requests completed in 10 s, want %d", done, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	const enough = 4 * workers
	waitFor(enough, time.Time{})
	written := time.Now()
	renameInto(t, f.cert, next.CertPEM())
	renameInto(t, f.key, next.KeyPEM())
	loaded := waitForPair(t, c, next)
	waitFor(enough, loaded)
	stop.Store(true)
	wg.Wait()

	var before, after, failed int
	for _, r := range records {
		switch {
		case r.err != nil:
			failed++
			t.Errorf("request started %v after the write failed: %v", r.start.Sub(written), r.err)
		case r.start.After(loaded):
			after++
			if r.serial != serialHex(next) {
				t.Errorf("request started %v after the load presented %s, want %s", r.start.Sub(loaded), r.serial, serialHex(next))
			}
		case r.serial == serialHex(first):
			before++
		}
	}
	if before == 0 || after == 0 {
		t.Fatalf("got %d requests with the old certificate and %d started after the load, want some of each", before, after)
	}
	t.Logf("%d requests, %d failed; %d with the old certificate; %d started after the load; loaded %v after the write",
		len(records), failed, before, after, loaded.Sub(written).Round(time.Millisecond))
	return loaded.Sub(written)
}

func TestClientCertRotationUnderLoad(t *testing.T) {
	t.Parallel()
	first := newClientLeaf(t, testpki.Options{})
	next := newClientLeaf(t, testpki.Options{})
	f := newPairFiles(t, first)
	c := loadTestCert(t, f.cert, f.key)
	srv := startMTLSServer(t, http.HandlerFunc(echoClient), nil)
	tr := certTransport(t, c, Config{})
	if d := rotateUnderLoad(t, tr, c, f, first, next, testutil.HostURL(srv, hostAPI, "/echo-client")); d > time.Second {
		t.Errorf("loaded %v after the write, want within a second with a %v poll interval", d, testReloadInterval)
	}
}

// TestClientCertReloadDelay measures, with LoadClientCert's default poll
// interval, the delay from a change of the files to the first handshake
// that presents the new certificate, as the server sees it.
func TestClientCertReloadDelay(t *testing.T) {
	t.Parallel()
	const rotations = 4
	leaves := make([]*testpki.Cert, rotations+1)
	for i := range leaves {
		leaves[i] = newClientLeaf(t, testpki.Options{})
	}
	f := newPairFiles(t, leaves[0])
	c, err := LoadClientCert(f.cert, f.key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var mu sync.Mutex
	firstSeen := map[string]time.Time{}
	srv := startMTLSServer(t, http.HandlerFunc(echoClient), func(leaf *x509.Certificate) {
		mu.Lock()
		defer mu.Unlock()
		s := strings.ToUpper(leaf.SerialNumber.Text(16))
		if _, ok := firstSeen[s]; !ok {
			firstSeen[s] = time.Now()
		}
	})
	url := testutil.HostURL(srv, hostAPI, "/echo-client")
	tr := certTransport(t, c, Config{})
	servedSerial(t, tr, url)

	var worst time.Duration
	for i, next := range leaves[1:] {
		// Each rotation lands at another point of the poll cycle: the
		// previous one was seen just after a poll.
		time.Sleep(time.Duration(i) * defaultReloadInterval / rotations)
		written := time.Now()
		renameInto(t, f.cert, next.CertPEM())
		renameInto(t, f.key, next.KeyPEM())
		deadline := written.Add(defaultReloadInterval + 2*time.Second)
		for {
			if got, _ := servedSerial(t, tr, url); got == serialHex(next) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no handshake with the new certificate within %v", deadline.Sub(written))
			}
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		d := firstSeen[serialHex(next)].Sub(written)
		mu.Unlock()
		t.Logf("file change to first handshake with the new certificate: %v", d.Round(time.Millisecond))
		worst = max(worst, d)
	}
	// The bound leaves room for a loaded test machine; the figures logged
	// above are the measurement.
	if limit := defaultReloadInterval + 2*time.Second; worst > limit {
		t.Errorf("worst delay %v, want at most %v (poll interval %v)", worst, limit, defaultReloadInterval)
	}
}

// TestClientCertExpiryWarning warns once of a client certificate that
// expires within ExpiryWarning, as for server certificates.
func TestClientCertExpiryWarning(t *testing.T) {
	t.Parallel()
	leaf := newClientLeaf(t, testpki.Options{NotAfter: time.Now().Add(2 * 24 * time.Hour)})
	f := newPairFiles(t, leaf)
	c := loadTestCert(t, f.cert, f.key)
	srv := startMTLSServer(t, http.HandlerFunc(echoClient), nil)
	url := testutil.HostURL(srv, hostAPI, "/echo-client")
	logger, logs := testutil.NewLogger()
	tr := certTransport(t, c, Config{Logger: logger, ExpiryWarning: 3 * 24 * time.Hour})
	for range 3 {
		servedSerial(t, tr, url)
		tr.CloseIdleConnections()
	}
	n := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "certificate expires soon") && strings.Contains(line, `"CN=`+clientSubject+`"`) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("got %d expiry warnings for the client certificate, want 1; log:\n%s", n, logs)
	}
}

// TestClientCertBoundToken gets certificate-bound tokens with
// tls_client_auth from a token endpoint that binds each token to the
// certificate presented (cnf x5t#S256), from an API that refuses a token
// bound to another certificate. After a rotation a new token is obtained
// before the next request: the API never answers 401.
func TestClientCertBoundToken(t *testing.T) {
	t.Parallel()
	secret := []byte("token-signing-secret-of-the-test-server")
	thumbOf := func(r *http.Request) string {
		h := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
		return base64.RawURLEncoding.EncodeToString(h[:])
	}
	var (
		mu        sync.Mutex
		issued    []string // cnf of each token issued
		refused   int
		authProbs []string
	)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if r.PostForm.Get("client_id") != "svc" || r.PostForm.Has("client_assertion") || r.PostForm.Has("client_secret") || r.Header.Get("Authorization") != "" {
			authProbs = append(authProbs, fmt.Sprintf("client_id=%q assertion=%v secret=%v authorization=%v",
				r.PostForm.Get("client_id"), r.PostForm.Has("client_assertion"), r.PostForm.Has("client_secret"), r.Header.Get("Authorization") != ""))
		}
		thumb := thumbOf(r)
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": "test", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
			"jti": fmt.Sprint(len(issued)), "cnf": map[string]string{"x5t#S256": thumb},
		}).SignedString(secret)
		issued = append(issued, thumb)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, tok)
	})
	mux.HandleFunc("GET /api", func(w http.ResponseWriter, r *http.Request) {
		var claims struct {
			Cnf map[string]string `json:"cnf"`
			jwt.RegisteredClaims
		}
		raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return secret, nil }, jwt.WithValidMethods([]string{"HS256"}))
		if err != nil || claims.Cnf["x5t#S256"] != thumbOf(r) {
			mu.Lock()
			refused++
			mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	})
	srv := startMTLSServer(t, mux, nil)

	first := newClientLeaf(t, testpki.Options{})
	next := newClientLeaf(t, testpki.Options{})
	f := newPairFiles(t, first)
	c := loadTestCert(t, f.cert, f.key)
	tr := certTransport(t, c, Config{Bearer: &Bearer{
		ClientCredentials: &ClientCredentials{TokenURL: testutil.HostURL(srv, hostAPI, "/token"), ClientID: "svc"},
		Hosts:             []string{hostAPI},
	}})
	api := testutil.HostURL(srv, hostAPI, "/api")
	call := func(when string) {
		t.Helper()
		status, body, err := fetch(tr, api)
		if err != nil || status != http.StatusOK {
			t.Fatalf("%s: got %d %q %v, want 200", when, status, body, err)
		}
	}
	call("first request")
	call("second request")
	renameInto(t, f.cert, next.CertPEM())
	renameInto(t, f.key, next.KeyPEM())
	waitForPair(t, c, next)
	call("after rotation")
	call("again")

	mu.Lock()
	defer mu.Unlock()
	thumb := func(c *testpki.Cert) string {
		h := sha256.Sum256(c.Cert.Raw)
		return base64.RawURLEncoding.EncodeToString(h[:])
	}
	if want := []string{thumb(first), thumb(next)}; fmt.Sprint(issued) != fmt.Sprint(want) {
		t.Errorf("tokens issued bound to %v, want %v: one per certificate", issued, want)
	}
	if refused != 0 {
		t.Errorf("the API refused %d requests, want 0: the bound token must be renewed before the next request", refused)
	}
	if len(authProbs) != 0 {
		t.Errorf("token requests were not tls_client_auth: %v", authProbs)
	}
}

// TestClientCertNginx runs against nginx with "ssl_verify_client on": 400
// without a certificate, the certificate's serial with one, and a rotation
// under load, over HTTP/1.1 and HTTP/2, with nginx's session tickets on.
func TestClientCertNginx(t *testing.T) {
	t.Parallel()
	peers.Require(t, "nginx")
	p := sharedPKI(t)
	for _, tt := range []struct {
		name  string
		http2 bool
	}{{"HTTP/1.1", false}, {"HTTP/2", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nginx := peers.StartNginx(t, peers.NginxConfig{
				CertPEM:     testpki.ChainPEM(p.leaf, p.inter),
				KeyPEM:      p.leaf.KeyPEM(),
				ClientCAPEM: clientCA(t).CertPEM(),
				HTTP2:       tt.http2,
			})
			url := peerURL(nginx, hostAPI, "/echo-client")

			status, body, err := fetch(newTestTransport(t, testConfig(t)), url)
			if err != nil || status != http.StatusBadRequest {
				t.Errorf("without a client certificate: got %d %v, want 400", status, err)
			}
			if !strings.Contains(body, "No required SSL certificate was sent") {
				t.Errorf("without a client certificate: got body %q, want nginx's missing-certificate page", body)
			}

			first := newClientLeaf(t, testpki.Options{})
			next := newClientLeaf(t, testpki.Options{})
			f := newPairFiles(t, first)
			c := loadTestCert(t, f.cert, f.key)
			tr := certTransport(t, c, Config{})
			if got, _ := servedSerial(t, tr, url); got != serialHex(first) {
				t.Fatalf("nginx saw serial %s, want %s", got, serialHex(first))
			}
			rotateUnderLoad(t, tr, c, f, first, next, url)
			// nginx resumes sessions (session tickets are on), now with
			// the new identity. A connection dialled for the load may
			// still land in the pool after CloseIdleConnections, hence a
			// few tries.
			resumed := false
			for range 5 {
				tr.CloseIdleConnections()
				var got string
				if got, resumed = servedSerial(t, tr, url); got != serialHex(next) {
					t.Fatalf("new connection after the rotation: got serial %s, want %s", got, serialHex(next))
				}
				if resumed {
					break
				}
			}
			if !resumed {
				t.Errorf("no new connection after the rotation resumed its session, want nginx to resume one")
			}
		})
	}
}

// TestClientCertOpenSSL runs against "openssl s_server -Verify", which
// refuses a client without a certificate and prints the one it received.
func TestClientCertOpenSSL(t *testing.T) {
	t.Parallel()
	peers.Require(t, "openssl")
	p := sharedPKI(t)
	caFile := filepath.Join(t.TempDir(), "client-ca.pem")
	writeFile(t, caFile, clientCA(t).CertPEM())
	for _, version := range []string{"-tls1_3", "-tls1_2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			srv := peers.StartOpenSSL(t, peers.OpenSSLConfig{
				CertPEM: testpki.ChainPEM(p.leaf, p.inter),
				KeyPEM:  p.leaf.KeyPEM(),
				Args:    []string{version, "-Verify", "1", "-CAfile", caFile},
			})
			url := peerURL(srv, hostAPI, "/")

			cfg := testConfig(t)
			cfg.Retry.MaxRetries = -1
			if status, _, err := fetch(newTestTransport(t, cfg), url); err == nil {
				t.Errorf("without a client certificate: got status %d, want a refused handshake", status)
			}

			leaf := newClientLeaf(t, testpki.Options{KeyType: testpki.RSA2048})
			f := newPairFiles(t, leaf)
			c := loadTestCert(t, f.cert, f.key)
			status, body, err := fetch(certTransport(t, c, Config{}), url)
			if err != nil || status != http.StatusOK {
				t.Fatalf("with a client certificate: got %d %v, want 200", status, err)
			}
			if !strings.Contains(body, "Client certificate") || !strings.Contains(body, string(leaf.CertPEM())) {
				t.Errorf("s_server did not print our client certificate; body:\n%s", body)
			}
		})
	}
}

// TestClientCertOIDCProvider gets certificate-bound access tokens from
// oidc-provider with tls_client_auth, and calls an API that verifies each
// token against the provider's JWKS and checks its binding to the
// certificate presented. A rotation makes the client get a token bound to
// the new certificate before its next request.
func TestClientCertOIDCProvider(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	op := peers.StartOIDC(t, peers.OIDCConfig{
		CertPEM:     testpki.ChainPEM(p.leaf, p.inter),
		KeyPEM:      p.leaf.KeyPEM(),
		Resource:    oidcResource,
		MTLS:        true,
		ClientCAPEM: clientCA(t).CertPEM(),
		Clients: []map[string]any{oidcClientMeta("mtls-client", map[string]any{
			"token_endpoint_auth_method":                 "tls_client_auth",
			"tls_client_auth_subject_dn":                 "CN=" + clientSubject,
			"tls_client_certificate_bound_access_tokens": true,
		})},
	})
	verifier := newJWKSVerifier(t, op)

	var (
		mu      sync.Mutex
		bound   []string // cnf x5t#S256 of each distinct token seen
		refused []string
	)
	api := startMTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := verifier.verify(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), time.Now())
		h := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
		presented := base64.RawURLEncoding.EncodeToString(h[:])
		cnf, _ := claims["cnf"].(map[string]any)
		x5t, _ := cnf["x5t#S256"].(string)
		mu.Lock()
		defer mu.Unlock()
		if err != nil || x5t != presented {
			refused = append(refused, fmt.Sprintf("err=%v bound=%q presented=%q", err, x5t, presented))
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if len(bound) == 0 || bound[len(bound)-1] != x5t {
			bound = append(bound, x5t)
		}
		fmt.Fprint(w, "ok")
	}), nil)

	first := newClientLeaf(t, testpki.Options{})
	next := newClientLeaf(t, testpki.Options{})
	f := newPairFiles(t, first)
	c := loadTestCert(t, f.cert, f.key)
	tr := certTransport(t, c, Config{Bearer: &Bearer{
		ClientCredentials: &ClientCredentials{Issuer: op.Issuer, ClientID: "mtls-client", Resource: []string{oidcResource}},
		Hosts:             []string{hostAPI},
	}})
	url := testutil.HostURL(api, hostAPI, "/")
	call := func(when string) {
		t.Helper()
		status, body, err := fetch(tr, url)
		if err != nil || status != http.StatusOK {
			t.Fatalf("%s: got %d %q %v, want 200", when, status, body, err)
		}
	}
	call("first request")
	call("second request")
	renameInto(t, f.cert, next.CertPEM())
	renameInto(t, f.key, next.KeyPEM())
	waitForPair(t, c, next)
	call("after rotation")
	call("again")

	thumb := func(c *testpki.Cert) string {
		h := sha256.Sum256(c.Cert.Raw)
		return base64.RawURLEncoding.EncodeToString(h[:])
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{thumb(first), thumb(next)}; fmt.Sprint(bound) != fmt.Sprint(want) {
		t.Errorf("tokens bound to %v, want %v", bound, want)
	}
	if len(refused) != 0 {
		t.Errorf("the API refused %d requests, want 0: %v", len(refused), refused)
	}
}

// TestClientCertCustomFunc: a GetClientCertificate of the caller's own is
// used at each full handshake, and a change of the certificate it returns
// is not taken for a rotation, since it may choose a certificate per
// server: no new pool, no log.
func TestClientCertCustomFunc(t *testing.T) {
	t.Parallel()
	ca2 := testpki.Must(testpki.NewRoot("second client CA", testpki.Options{}))
	a := newClientLeaf(t, testpki.Options{})
	b := testpki.Must(ca2.NewLeaf(clientSubject, testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}))
	certA, certB := testpki.TLSCertificate(a), testpki.TLSCertificate(b)
	logger, logs := testutil.NewLogger()
	cfg := testConfig(t)
	cfg.Logger = logger
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		for _, name := range cri.AcceptableCAs {
			if bytes.Equal(name, ca2.Cert.RawSubject) {
				return &certB, nil
			}
		}
		return &certA, nil
	}
	tr := newTestTransport(t, cfg)
	srvA := startMTLSServer(t, http.HandlerFunc(echoClient), nil)
	srvB := httptest.NewUnstartedServer(http.HandlerFunc(echoClient))
	srvB.TLS = &tls.Config{
		Certificates: []tls.Certificate{sharedPKI(t).serverCert()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca2.Pool(),
	}
	srvB.Config.ErrorLog = testutil.QuietLog()
	srvB.StartTLS()
	t.Cleanup(srvB.Close)
	for i, tt := range []struct {
		url  string
		want *testpki.Cert
	}{
		{testutil.HostURL(srvA, hostAPI, "/echo-client"), a},
		{testutil.HostURL(srvB, hostOther, "/echo-client"), b},
		{testutil.HostURL(srvA, hostAPI, "/echo-client"), a},
		{testutil.HostURL(srvB, hostOther, "/echo-client"), b},
	} {
		tr.CloseIdleConnections()
		if got, _ := servedSerial(t, tr, tt.url); got != serialHex(tt.want) {
			t.Fatalf("request %d: server saw %s, want %s", i, got, serialHex(tt.want))
		}
	}
	if id := tr.conns.ident.Load(); id.pool != tr.conns.base || len(tr.conns.retired) != 0 {
		t.Errorf("got a new connection pool, want none: a per-server choice is no rotation")
	}
	if strings.Contains(logs.String(), "client certificate changed") {
		t.Errorf("a per-server choice was logged as a rotation; log:\n%s", logs)
	}
}

// TestClientCertEnablesTLSClientAuth: ClientCredentials with neither Key
// nor ClientSecret needs a client certificate.
func TestClientCertEnablesTLSClientAuth(t *testing.T) {
	t.Parallel()
	leaf := newClientLeaf(t, testpki.Options{})
	f := newPairFiles(t, leaf)
	c := loadTestCert(t, f.cert, f.key)
	for _, tt := range []struct {
		name    string
		get     func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
		wantErr bool
	}{{"without a certificate", nil, true}, {"with a certificate", c.GetClientCertificate, false}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr, err := newTransport(Config{
				GetClientCertificate: tt.get,
				Bearer: &Bearer{
					ClientCredentials: &ClientCredentials{TokenURL: "https://auth.test/token", ClientID: "svc"},
					Hosts:             []string{hostAPI},
				},
			})
			var ce *ConfigError
			if gotErr := errors.As(err, &ce); gotErr != tt.wantErr {
				t.Fatalf("got error %v, want a *ConfigError: %v", err, tt.wantErr)
			}
			if err == nil {
				tr.CloseIdleConnections()
			}
		})
	}
}

// TestInvalidateBound drops only a token bound to another certificate.
func TestInvalidateBound(t *testing.T) {
	t.Parallel()
	const current, previous = "current-thumbprint", "previous-thumbprint"
	jwtWith := func(claims jwt.MapClaims) string {
		claims["exp"] = time.Now().Add(time.Hour).Unix()
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("k"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name     string
		token    string
		wantDrop bool
	}{
		{"bound to the previous certificate", jwtWith(jwt.MapClaims{"cnf": map[string]string{"x5t#S256": previous}}), true},
		{"bound to the current certificate", jwtWith(jwt.MapClaims{"cnf": map[string]string{"x5t#S256": current}}), false},
		{"bound to a DPoP key", jwtWith(jwt.MapClaims{"cnf": map[string]string{"jkt": previous}}), false},
		{"not bound", jwtWith(jwt.MapClaims{"sub": "svc"}), false},
		{"opaque", "opaque-token-value", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts, err := newTestTokenSource(&Bearer{Store: NewMemoryStore(Token{}), Hosts: []string{hostAPI}}, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			// The token in use when the certificate changes; parse would
			// refuse one bound to another certificate or DPoP key than the
			// source's (TestClientCertForeignBoundToken).
			ts.cur = &token{raw: tt.token}
			ts.invalidateBound(current)
			if dropped := ts.cur == nil; dropped != tt.wantDrop {
				t.Errorf("dropped: got %v, want %v", dropped, tt.wantDrop)
			}
			if marked := ts.rejected == tt.token; marked != tt.wantDrop {
				t.Errorf("marked refused (not taken back from the store): got %v, want %v", marked, tt.wantDrop)
			}
		})
	}
}

// x5tOf is the RFC 8705 x5t#S256 of a DER certificate.
func x5tOf(der []byte) string {
	h := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// certBoundJWT is a JWT valid for an hour, bound to the certificate whose
// x5t#S256 is x5t.
func certBoundJWT(t testing.TB, x5t string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"exp": time.Now().Add(time.Hour).Unix(), "jti": rand.Text(), "cnf": map[string]string{"x5t#S256": x5t},
	}).SignedString(tokKey())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// certBoundAPI is an authorization server and an API on one mTLS test
// server. /token issues, by tls_client_auth, JWTs bound (cnf x5t#S256) to
// the certificate presented; /api refuses with 401 invalid_token a token
// bound to any other certificate than the one presented to it.
type certBoundAPI struct {
	srv *httptest.Server

	mu      sync.Mutex
	issued  map[string]int // x5t#S256 -> tokens issued for it
	refused int
}

func newCertBoundAPI(t testing.TB) *certBoundAPI {
	t.Helper()
	a := &certBoundAPI{issued: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		thumb := x5tOf(r.TLS.PeerCertificates[0].Raw)
		a.mu.Lock()
		a.issued[thumb]++
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, certBoundJWT(t, thumb))
	})
	mux.HandleFunc("/api", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		var claims struct {
			Cnf map[string]string `json:"cnf"`
			jwt.RegisteredClaims
		}
		raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return tokKey(), nil }, jwt.WithValidMethods([]string{"HS256"}))
		if err != nil || claims.Cnf["x5t#S256"] != x5tOf(r.TLS.PeerCertificates[0].Raw) {
			a.mu.Lock()
			a.refused++
			a.mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	})
	a.srv = startMTLSServer(t, mux, nil)
	return a
}

// bearer is a Bearer that gets tokens from a's token endpoint by
// tls_client_auth, for the API's host.
func (a *certBoundAPI) bearer(store TokenStore) *Bearer {
	return &Bearer{
		Store:             store,
		ClientCredentials: &ClientCredentials{TokenURL: testutil.HostURL(a.srv, hostAPI, "/token"), ClientID: "svc"},
		Hosts:             []string{hostAPI},
	}
}

// post sends a POST to the API whose body cannot be replayed, so that a
// refused token fails the request: the first token sent must be right.
func (a *certBoundAPI) post(tr http.RoundTripper) error {
	req, err := http.NewRequest(http.MethodPost, testutil.HostURL(a.srv, hostAPI, "/api"), io.NopCloser(strings.NewReader("payload")))
	if err != nil {
		return err
	}
	status, _, err := tokDo(&http.Client{Transport: tr}, req)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("status %d", status)
	}
	return err
}

// TestClientCertBindingStore: with a client certificate, a BindingStore is
// asked for the store of "mtls:" and the certificate's x5t#S256 from the
// first request on, never for unbound tokens: replicas with the same
// certificate share a token, a replica with another certificate never takes
// it, and after a rotation the new token is kept under the new certificate.
func TestClientCertBindingStore(t *testing.T) {
	t.Parallel()
	a := newCertBoundAPI(t)
	store := &bindingStore{MemoryStore: NewMemoryStore(Token{}), stores: map[string]*MemoryStore{}}
	leafA, leafB, leafC := newClientLeaf(t, testpki.Options{}), newClientLeaf(t, testpki.Options{}), newClientLeaf(t, testpki.Options{})
	filesA1 := newPairFiles(t, leafA)
	replica := func(files pairFiles) *transport {
		return certTransport(t, loadTestCert(t, files.cert, files.key), Config{Bearer: a.bearer(store)})
	}
	a1, b, a2 := replica(filesA1), replica(newPairFiles(t, leafB)), replica(newPairFiles(t, leafA))
	for i, tr := range []*transport{a1, b, a2} {
		if err := a.post(tr); err != nil {
			t.Fatalf("replica %d: got %v, want 200", i, err)
		}
	}
	renameInto(t, filesA1.cert, leafC.CertPEM())
	renameInto(t, filesA1.key, leafC.KeyPEM())
	waitForPair(t, a1.conns.owner.Load(), leafC)
	if err := a.post(a1); err != nil {
		t.Fatalf("after rotation: got %v, want 200", err)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refused != 0 {
		t.Errorf("the API refused %d requests, want 0", a.refused)
	}
	for _, leaf := range []*testpki.Cert{leafA, leafB, leafC} {
		if got := a.issued[x5tOf(leaf.Cert.Raw)]; got != 1 {
			t.Errorf("tokens issued for %s: got %d, want 1", leaf.Cert.Subject.SerialNumber, got)
		}
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	for _, binding := range store.asked {
		if !strings.HasPrefix(binding, "mtls:") {
			t.Errorf("got binding %q asked for, want only mtls: bindings", binding)
		}
	}
	for _, leaf := range []*testpki.Cert{leafA, leafB, leafC} {
		thumb := x5tOf(leaf.Cert.Raw)
		s := store.stores["mtls:"+thumb]
		if s == nil {
			t.Errorf("no store asked for the binding of certificate %s", thumb)
			continue
		}
		tok, _ := s.Load(t.Context())
		var claims struct {
			Cnf map[string]string `json:"cnf"`
			jwt.RegisteredClaims
		}
		if _, _, err := jwt.NewParser().ParseUnverified(tok.Value, &claims); err != nil || claims.Cnf["x5t#S256"] != thumb {
			t.Errorf("the store of certificate %s holds a token bound to %q, want one bound to it", thumb, claims.Cnf["x5t#S256"])
		}
	}
	if tok, _ := store.MemoryStore.Load(t.Context()); tok.Value != "" {
		t.Errorf("the store of unbound tokens holds a token, want none")
	}
}

// TestClientCertForeignBoundToken: a JWT bound (cnf x5t#S256) to another
// certificate than the transport's, as another replica may leave in a
// shared store, is never sent: the stored one is passed over for a refresh,
// a refresh that returns one fails without sending anything, and a
// certificate-bound token is not sent by a transport without a certificate.
func TestClientCertForeignBoundToken(t *testing.T) {
	t.Parallel()
	leaf, other := newClientLeaf(t, testpki.Options{}), newClientLeaf(t, testpki.Options{})
	ours, theirs := x5tOf(leaf.Cert.Raw), x5tOf(other.Cert.Raw)
	for _, tt := range []struct {
		name      string
		refreshed string // the cnf x5t#S256 of what Refresh returns
		withCert  bool
		wantOK    bool
	}{
		{"stored token of another certificate is replaced", ours, true, true},
		{"refresh returning another certificate's token fails", theirs, true, false},
		{"a certificate-bound token is not sent without a certificate", ours, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var received atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				received.Add(1)
				fmt.Fprint(w, "ok")
			})
			cfg := testConfig(t)
			var srv *httptest.Server
			if tt.withCert {
				srv = startMTLSServer(t, h, nil)
				f := newPairFiles(t, leaf)
				cfg.GetClientCertificate = loadTestCert(t, f.cert, f.key).GetClientCertificate
			} else {
				srv = testutil.StartServer(t, sharedPKI(t).serverCert(), h)
			}
			var refreshes atomic.Int64
			cfg.Bearer = &Bearer{Hosts: []string{hostAPI},
				Store: NewMemoryStore(Token{Value: certBoundJWT(t, theirs)}),
				Refresh: func(context.Context) (Token, error) {
					refreshes.Add(1)
					return Token{Value: certBoundJWT(t, tt.refreshed)}, nil
				}}
			status, _, err := fetch(newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/"))
			if !tt.wantOK {
				tokWantRefused(t, err, int(received.Load()))
				return
			}
			if err != nil || status != http.StatusOK {
				t.Fatalf("got status %d and error %v, want 200", status, err)
			}
			if got := refreshes.Load(); got != 1 {
				t.Fatalf("got %d refreshes, want 1", got)
			}
		})
	}
}

// TestClientCertBindingWithDPoP: with both a DPoP key and a client
// certificate, a token may be bound to either or to both, so a BindingStore
// keeps it under both: "dpop:" and the key's thumbprint, "+", "mtls:" and
// the certificate's x5t#S256.
func TestClientCertBindingWithDPoP(t *testing.T) {
	t.Parallel()
	leaf := newClientLeaf(t, testpki.Options{})
	f := newPairFiles(t, leaf)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := &DPoP{Key: key}
	jkt, _ := d.Thumbprint()
	srv := startMTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }), nil)
	store := &bindingStore{MemoryStore: NewMemoryStore(Token{}), stores: map[string]*MemoryStore{}}
	tr := certTransport(t, loadTestCert(t, f.cert, f.key), Config{Bearer: &Bearer{
		Store: store, Refresh: tokStaticT(tokOpaque("bound")), Hosts: []string{hostAPI}, DPoP: d,
	}})
	if status, _, err := fetch(tr, testutil.HostURL(srv, hostAPI, "/")); err != nil || status != http.StatusOK {
		t.Fatalf("got status %d and error %v, want 200", status, err)
	}
	want := "dpop:" + jkt + "+mtls:" + x5tOf(leaf.Cert.Raw)
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.asked) == 0 || slices.ContainsFunc(store.asked, func(b string) bool { return b != want }) {
		t.Fatalf("got bindings %q, want only %q", store.asked, want)
	}
	if tok, _ := store.stores[want].Load(t.Context()); tok.Value == "" {
		t.Errorf("the store of the binding holds no token, want the refreshed one")
	}
}

// TestClientCertCustomFuncKeepsTokensInProcess: a GetClientCertificate of
// the user's own may choose a certificate per server, so no certificate
// names its tokens' binding: a BindingStore is then neither read nor
// written (tokens stay in the process), and a warning says why.
func TestClientCertCustomFuncKeepsTokensInProcess(t *testing.T) {
	t.Parallel()
	crt := testpki.TLSCertificate(newClientLeaf(t, testpki.Options{}))
	srv := startMTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }), nil)
	store := &bindingStore{MemoryStore: NewMemoryStore(Token{}), stores: map[string]*MemoryStore{}}
	refresh, calls := tokCounted(tokStatic(tokOpaque("bound")))
	logger, logs := testutil.NewLogger()
	cfg := testConfig(t)
	cfg.Logger = logger
	cfg.ExpiryWarning = -1 // only the store's warning
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &crt, nil }
	cfg.Bearer = &Bearer{Store: store, Refresh: refresh, Hosts: []string{hostAPI}}
	tr := newTestTransport(t, cfg)
	for i := range 2 {
		if status, _, err := fetch(tr, testutil.HostURL(srv, hostAPI, "/")); err != nil || status != http.StatusOK {
			t.Fatalf("request %d: got status %d and error %v, want 200", i, status, err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("Refresh calls: got %d, want 1 (the token is kept in memory)", got)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.asked) != 0 {
		t.Errorf("got bindings %q asked for, want none", store.asked)
	}
	if tok, _ := store.MemoryStore.Load(t.Context()); tok.Value != "" {
		t.Errorf("the store of unbound tokens holds the token, want nothing")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "GetClientCertificate") {
		t.Errorf("got no warning about the store, want one; log:\n%s", logs)
	}
}

// TestClientCertRotationDuringRefresh: the certificate rotates while
// Refresh runs, which returns a token bound to the old one. That token is
// neither saved, under either certificate's binding, nor sent: the token is
// obtained again for the new certificate, and the request succeeds with it.
func TestClientCertRotationDuringRefresh(t *testing.T) {
	t.Parallel()
	a := newCertBoundAPI(t)
	leafA, leafB := newClientLeaf(t, testpki.Options{}), newClientLeaf(t, testpki.Options{})
	thumbB := x5tOf(leafB.Cert.Raw)
	f := newPairFiles(t, leafA)
	c := loadTestCert(t, f.cert, f.key)
	var calls atomic.Int64
	var issued sync.Map // token -> x5t#S256
	refresh := func(context.Context) (Token, error) {
		thumb := thumbprint(c.pair.Load().hash) // the certificate the token is bound to
		if calls.Add(1) == 1 {
			renameInto(t, f.cert, leafB.CertPEM())
			renameInto(t, f.key, leafB.KeyPEM())
			waitForPair(t, c, leafB)
		}
		tok := certBoundJWT(t, thumb)
		issued.Store(tok, thumb)
		return Token{Value: tok}, nil
	}
	store := &bindingStore{MemoryStore: NewMemoryStore(Token{}), stores: map[string]*MemoryStore{}}
	tr := certTransport(t, c, Config{Bearer: &Bearer{Store: store, Refresh: refresh, Hosts: []string{hostAPI}}})
	if err := a.post(tr); err != nil {
		t.Fatalf("got %v, want 200", err)
	}
	a.mu.Lock()
	refused := a.refused
	a.mu.Unlock()
	if refused != 0 {
		t.Errorf("the API refused %d requests, want 0", refused)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("Refresh calls: got %d, want 2 (one per certificate)", got)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	for binding, s := range store.stores {
		tok, _ := s.Load(t.Context())
		if tok.Value == "" {
			continue
		}
		if bound, _ := issued.Load(tok.Value); "mtls:"+bound.(string) != binding {
			t.Errorf("the store of %q holds a token bound to %q, want one bound to its own certificate", binding, bound)
		}
	}
	if tok, _ := store.stores["mtls:"+thumbB].Load(t.Context()); tok.Value == "" {
		t.Errorf("the store of the new certificate holds no token, want the one obtained for it")
	}
}

// TestClientCertWrappedFuncNamedAtHandshake: a function of the user's that
// returns a ClientCert's pair is known to be one from its first handshake:
// the first token stays in the process, and later ones are kept under the
// certificate's binding.
func TestClientCertWrappedFuncNamedAtHandshake(t *testing.T) {
	t.Parallel()
	leaf := newClientLeaf(t, testpki.Options{})
	f := newPairFiles(t, leaf)
	c := loadTestCert(t, f.cert, f.key)
	srv := startMTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }), nil)
	clk := tokNewClock()
	var calls atomic.Int64
	refresh := func(context.Context) (Token, error) {
		return Token{Value: fmt.Sprintf("tok-%d", calls.Add(1)), Expiry: clk.Now().Add(time.Hour)}, nil
	}
	store := &bindingStore{MemoryStore: NewMemoryStore(Token{}), stores: map[string]*MemoryStore{}}
	cfg := testConfig(t)
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) { return c.GetClientCertificate(cri) }
	cfg.Bearer = &Bearer{Store: store, Refresh: refresh, Hosts: []string{hostAPI}}
	tr := newTestTransport(t, cfg)
	tr.now = clk.Now
	for i := range 2 {
		if status, _, err := fetch(tr, testutil.HostURL(srv, hostAPI, "/")); err != nil || status != http.StatusOK {
			t.Fatalf("request %d: got status %d and error %v, want 200", i, status, err)
		}
		clk.Add(2 * time.Hour) // the token expires
	}
	want := "mtls:" + x5tOf(leaf.Cert.Raw)
	store.mu.Lock()
	defer store.mu.Unlock()
	if !slices.Equal(store.asked, []string{want}) {
		t.Fatalf("got bindings %q, want only %q", store.asked, want)
	}
	if tok, _ := store.stores[want].Load(t.Context()); tok.Value != "tok-2" {
		t.Errorf("the store of the certificate's binding holds %q, want tok-2", tok.Value)
	}
}

// TestClientCertNilIsConfigError: the GetClientCertificate method of a nil
// *ClientCert, as left by a LoadClientCert whose error was ignored, is a
// *ConfigError from NewTransport, not a panic there or at a handshake.
func TestClientCertNilIsConfigError(t *testing.T) {
	t.Parallel()
	var cc *ClientCert
	cfg := testConfig(t)
	cfg.GetClientCertificate = cc.GetClientCertificate
	var tr *transport
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("NewTransport panicked (%v), want a *ConfigError", p)
			}
		}()
		tr, err = newTransport(cfg)
	}()
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "GetClientCertificate" {
		if tr != nil {
			tr.CloseIdleConnections()
		}
		t.Fatalf("got error %v, want a *ConfigError for GetClientCertificate", err)
	}
	if tr != nil {
		t.Errorf("got a Transport with the error, want none")
	}
}
