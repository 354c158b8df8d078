package securehttp

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// defaultReloadInterval is how often LoadClientCert's watcher looks at
	// the files: the bound on the delay between a change and its use.
	defaultReloadInterval = time.Second
	// maxRetiredPools bounds how many connection pools of earlier client
	// identities are kept so that CloseIdleConnections can close them.
	maxRetiredPools = 8
)

// ErrClientCert is matched, with errors.Is, by every error LoadClientCert
// returns: the files cannot be read, hold no certificate or no key, the key
// is encrypted or does not match the certificate, the certificate is expired
// or not yet valid, or a key is weaker than the key policy allows (the error
// then also matches ErrWeakKey).
var ErrClientCert = errors.New("securehttp: unusable client certificate")

// ClientCert is a client certificate and its key loaded from PEM files, and
// reloaded when the files change. Use its GetClientCertificate method as
// Config.GetClientCertificate.
//
// LoadClientCert starts a goroutine that looks at the files once a second:
// their size, modification time and inode, and where their symbolic links
// point. It therefore notices a rewrite in place, an atomic rename and a
// Kubernetes-style swap of a "..data" symbolic link alike. A change is loaded
// and checked as LoadClientCert checks the first pair; the new pair then
// replaces the old one atomically, so that a handshake uses one pair or the
// other, never a mix. Files that fail to load leave the last good pair in
// use. If they still fail at the next look (they were not merely caught half
// written), one warning is logged for that change, to the Config.Logger of
// the first Transport that made a handshake with the certificate.
//
// A Transport learns that its Config.GetClientCertificate is a
// ClientCert's when it is made, when it is the GetClientCertificate method
// itself, or else at its first handshake, and from then on follows its
// rotations: before each request it checks which pair is current, and
// after a change it sends requests on new connections with a new TLS
// session cache, so that no connection or resumed session keeps the old
// identity, and it drops a bearer token bound to the old certificate
// (RFC 8705) before the next request. Its tokens are kept under the
// certificate's binding in a BindingStore (see there).
//
// Close stops the watcher; the last pair stays in use. A Transport's
// CloseIdleConnections does not stop it, as a ClientCert may be shared by
// several Transports. A ClientCert is safe for concurrent use.
type ClientCert struct {
	certFile, keyFile string
	interval          time.Duration
	now               func() time.Time

	pair   atomic.Pointer[certPair]
	logger atomic.Pointer[slog.Logger] // set by the first Transport with a Logger

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// certPair is one loaded certificate chain and key. It is never modified
// once stored.
type certPair struct {
	cert  tls.Certificate // PrivateKey is a *clientKey
	chain []*x509.Certificate
	hash  [sha256.Size]byte // of the leaf, the x5t#S256 of RFC 8705
}

// LoadClientCert loads a certificate chain (PEM, leaf first) and its private
// key (PEM: PKCS #8, PKCS #1 or SEC 1, not encrypted) and watches the files
// for changes. It refuses a pair that does not match, a certificate that is
// expired, not yet valid or not for client authentication, and keys under
// the key policy (RSA under 2048 bits, EC under 256). Errors match
// ErrClientCert. Call Close to stop watching the files.
func LoadClientCert(certFile, keyFile string) (*ClientCert, error) {
	return loadClientCert(certFile, keyFile, defaultReloadInterval, time.Now)
}

func loadClientCert(certFile, keyFile string, interval time.Duration, now func() time.Time) (*ClientCert, error) {
	c := &ClientCert{
		certFile: certFile,
		keyFile:  keyFile,
		interval: interval,
		now:      now,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	seen := statPair(certFile, keyFile)
	p, err := c.load()
	if err != nil {
		return nil, err
	}
	c.pair.Store(p)
	go c.watch(seen)
	return c, nil
}

// GetClientCertificate returns the pair in use, for tls.Config and
// Config.GetClientCertificate. It fails only for a nil *ClientCert, such as
// one left by a LoadClientCert whose error was ignored: the pair was checked
// when it was loaded.
func (c *ClientCert) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c == nil {
		return nil, errNilClientCert
	}
	return &c.pair.Load().cert, nil
}

// NotAfter is when the certificate in use expires.
func (c *ClientCert) NotAfter() time.Time { return c.pair.Load().chain[0].NotAfter }

// Close stops watching the files and waits for the watcher to end. The last
// pair stays in use. Close always returns nil.
func (c *ClientCert) Close() error {
	c.closeOnce.Do(func() { close(c.stop) })
	<-c.done
	return nil
}

// String describes the certificate in use, never its key.
func (c *ClientCert) String() string {
	leaf := c.pair.Load().chain[0]
	return fmt.Sprintf("securehttp.ClientCert{Subject: %q, Serial: %s, NotAfter: %s}",
		leaf.Subject.String(), leaf.SerialNumber.Text(16), leaf.NotAfter.UTC().Format(time.RFC3339))
}

// GoString is String.
func (c *ClientCert) GoString() string { return c.String() }

// LogValue keeps the key out of structured logs.
func (c *ClientCert) LogValue() slog.Value { return slog.StringValue(c.String()) }

// useLogger makes l the destination of reload messages, unless one is set.
func (c *ClientCert) useLogger(l *slog.Logger) {
	if l != nil {
		c.logger.CompareAndSwap(nil, l)
	}
}

func (c *ClientCert) log() *slog.Logger {
	if l := c.logger.Load(); l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// watch polls the files until Close. A change that fails to load is tried
// again at the next poll and logged only if it still fails then, so that a
// pair caught half written, or with one file written and not the other,
// causes no warning.
func (c *ClientCert) watch(seen pairState) {
	defer close(c.done)
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	pending := false // the files changed and did not load yet
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		st := statPair(c.certFile, c.keyFile)
		changed := !st.equal(seen)
		if !changed && !pending {
			continue
		}
		seen = st
		p, err := c.load()
		if err != nil {
			if !changed {
				// Settled and still broken: say so once.
				pending = false
				c.log().Warn("securehttp: client certificate files changed but cannot be loaded; the previous certificate stays in use",
					"cert_file", c.certFile, "key_file", c.keyFile, "error", err)
			} else {
				pending = true
			}
			continue
		}
		pending = false
		old := c.pair.Load()
		if old.hash == p.hash {
			continue
		}
		c.pair.Store(p)
		leaf := p.chain[0]
		c.log().Info("securehttp: client certificate reloaded", "subject", leaf.Subject.String(),
			"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
	}
}

// load reads and checks the pair.
func (c *ClientCert) load() (*certPair, error) {
	fail := func(file string, err error) error { return &clientCertError{file: file, err: err} }
	certPEM, err := readCertFile(c.certFile)
	if err != nil {
		return nil, fail(c.certFile, err)
	}
	keyPEM, err := readCertFile(c.keyFile)
	if err != nil {
		return nil, fail(c.keyFile, err)
	}
	chain, err := parseChain(certPEM)
	if err != nil {
		return nil, fail(c.certFile, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fail(c.keyFile, err)
	}
	leaf := chain[0]
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fail(c.keyFile, errKeyMismatch)
	}
	now := c.now()
	for _, crt := range chain {
		if now.Before(crt.NotBefore) || now.After(crt.NotAfter) {
			return nil, fail(c.certFile, x509.CertificateInvalidError{Cert: crt, Reason: x509.Expired,
				Detail: fmt.Sprintf("%q is valid from %s to %s", crt.Subject.CommonName,
					crt.NotBefore.UTC().Format(time.RFC3339), crt.NotAfter.UTC().Format(time.RFC3339))})
		}
	}
	if err := checkKeys(chain); err != nil {
		return nil, fail(c.certFile, err)
	}
	if !clientAuthUsage(leaf) {
		return nil, fail(c.certFile, errNotClientAuth)
	}
	p := &certPair{chain: chain, hash: sha256.Sum256(leaf.Raw)}
	for _, crt := range chain {
		p.cert.Certificate = append(p.cert.Certificate, crt.Raw)
	}
	p.cert.Leaf = leaf
	p.cert.PrivateKey = &clientKey{Signer: key, owner: c, pair: p}
	return p, nil
}

// maxCertFileSize bounds a certificate or key file: a chain of a few
// certificates is some kilobytes.
const maxCertFileSize = 1 << 20

// readCertFile reads a certificate or key file, following symbolic links
// (as a mounted Kubernetes Secret has them), without blocking on a FIFO and
// without reading more than maxCertFileSize: a FIFO, a device such as
// /dev/zero or an oversized file planted at the path is refused at once,
// and the watcher, and Close, never hang on it.
func readCertFile(path string) ([]byte, error) {
	f, err := openCertFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file (%s)", errCertFileUnfit, info.Mode().Type())
	}
	if info.Size() > maxCertFileSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", errCertFileUnfit, info.Size(), maxCertFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCertFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCertFileSize {
		return nil, fmt.Errorf("%w: more than %d bytes", errCertFileUnfit, maxCertFileSize)
	}
	return data, nil
}

var (
	errCertFileUnfit = errors.New("not a certificate or key file")
	errKeyMismatch   = errors.New("the private key does not match the certificate")
	errEncryptedKey  = errors.New("the private key is encrypted; store it decrypted, readable only by this process (openssl pkey -in KEY -out KEY)")
	errNoCertificate = errors.New("no CERTIFICATE block")
	errTruncatedPEM  = errors.New("a PEM block is incomplete (file being written?)")
	errNoKey         = errors.New("no PRIVATE KEY block")
	errKeyType       = errors.New("not an RSA, ECDSA or Ed25519 signing key")
	errNotClientAuth = errors.New("the certificate's extended key usage does not allow client authentication")
	errNilClientCert = fmt.Errorf("%w: the method of a nil *ClientCert (did LoadClientCert fail?)", ErrClientCert)
)

// clientCertError is a LoadClientCert failure: which file, and why. It
// never holds key material.
type clientCertError struct {
	file string
	err  error
}

func (e *clientCertError) Error() string {
	return "securehttp: unusable client certificate " + e.file + ": " + causeText(e.err)
}
func (e *clientCertError) Unwrap() error        { return e.err }
func (e *clientCertError) Is(target error) bool { return target == ErrClientCert }

// parseChain reads every CERTIFICATE block, leaf first.
func parseChain(data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			if bytes.Contains(data, []byte("-----BEGIN")) {
				return nil, errTruncatedPEM
			}
			break
		}
		data = rest
		if block.Type != "CERTIFICATE" {
			continue
		}
		crt, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, wrap("parsing a certificate", err)
		}
		chain = append(chain, crt)
	}
	if len(chain) == 0 {
		return nil, errNoCertificate
	}
	return chain, nil
}

// parseKey reads the first private key block: PKCS #8, PKCS #1 (RSA) or
// SEC 1 (EC). Its errors never quote the key.
func parseKey(data []byte) (crypto.Signer, error) {
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			if bytes.Contains(data, []byte("-----BEGIN")) {
				return nil, errTruncatedPEM
			}
			return nil, errNoKey
		}
		data = rest
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue
		}
		// PKCS #8 encryption, or the legacy OpenSSL kind with a DEK-Info header.
		if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["DEK-Info"] != "" {
			return nil, errEncryptedKey
		}
		var key any
		var err error
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		}
		if err != nil {
			return nil, fmt.Errorf("the %s block does not parse", block.Type)
		}
		// An X25519 key (*ecdh.PrivateKey) cannot sign, and is refused here.
		if k, ok := key.(crypto.Signer); ok {
			return k, nil
		}
		return nil, errKeyType
	}
}

// clientAuthUsage reports whether leaf may authenticate a TLS client.
func clientAuthUsage(leaf *x509.Certificate) bool {
	if len(leaf.ExtKeyUsage) == 0 && len(leaf.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range leaf.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// clientKey is the private key of a loaded pair. It signs as the key does,
// and lets a Transport that gets the certificate find the ClientCert it came
// from, so that it can follow its rotations: a Config holds only the
// GetClientCertificate method value, whose receiver cannot be recovered
// otherwise. It prints no key material.
type clientKey struct {
	crypto.Signer
	owner *ClientCert
	pair  *certPair
}

func (k *clientKey) String() string       { return "securehttp: client private key" }
func (k *clientKey) GoString() string     { return k.String() }
func (k *clientKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// fileState is what the watcher compares between two polls of one file.
type fileState struct {
	target string // the path with its symbolic links resolved
	info   os.FileInfo
	err    bool
}

type pairState [2]fileState

func statPair(certFile, keyFile string) pairState {
	return pairState{statFile(certFile), statFile(keyFile)}
}

func statFile(path string) fileState {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fileState{err: true}
	}
	fi, err := os.Stat(target)
	if err != nil {
		return fileState{err: true}
	}
	return fileState{target: target, info: fi}
}

func (s pairState) equal(o pairState) bool {
	for i := range s {
		a, b := s[i], o[i]
		if a.err || b.err {
			if a.err != b.err {
				return false
			}
			continue
		}
		if a.target != b.target || !os.SameFile(a.info, b.info) ||
			a.info.Size() != b.info.Size() || !a.info.ModTime().Equal(b.info.ModTime()) {
			return false
		}
	}
	return true
}

// thumbprint is the RFC 8705 x5t#S256 of a leaf hash.
func thumbprint(hash [sha256.Size]byte) string {
	return base64.RawURLEncoding.EncodeToString(hash[:])
}

// ---------------------------------------------------------------- Transport

// certState is a Transport's view of its client certificate. Connections
// and TLS sessions belong to one client identity: each identity has its own
// pool (an http.Transport with its own session cache), so that after a
// rotation no request goes out on a connection, or resumes a session, made
// with the old certificate. A server such as nginx takes the client's
// identity from a resumed session, not from a certificate sent again.
type certState struct {
	get    func(*tls.CertificateRequestInfo) (*tls.Certificate, error) // Config's
	base   *http.Transport                                             // the first pool, and the template of the others
	logger *slog.Logger                                                // Config's, for a ClientCert's reloads; may be nil
	owner  atomic.Pointer[ClientCert]                                  // known after the first handshake with one
	ident  atomic.Pointer[identity]

	mu      sync.Mutex // held to change identity
	retired []*http.Transport
}

// identity is a client identity and the pool of connections made with it.
type identity struct {
	leaf [sha256.Size]byte // zero until the first handshake
	pool *http.Transport
}

func newCertState(get func(*tls.CertificateRequestInfo) (*tls.Certificate, error), base *http.Transport, logger *slog.Logger) (*certState, error) {
	s := &certState{get: get, base: base, logger: logger}
	s.ident.Store(&identity{pool: base})
	c, err := clientCertOf(get)
	if err != nil {
		return nil, err
	}
	if c != nil {
		s.owner.Store(c)
	}
	return s, nil
}

// clientCertOf returns the ClientCert whose GetClientCertificate method get
// is, or nil. A method value's code pointer is the same whatever its
// receiver, so a ClientCert's method is told from any other function
// without calling it; only then is get called, to find the receiver, and a
// ClientCert's never blocks or looks at its argument, and fails only for a
// nil receiver, which is an error. A function of the user's is never
// called here: it may block, or choose by server.
func clientCertOf(get func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) (*ClientCert, error) {
	var c *ClientCert
	if reflect.ValueOf(get).Pointer() != reflect.ValueOf(c.GetClientCertificate).Pointer() {
		return nil, nil
	}
	crt, err := get(&tls.CertificateRequestInfo{})
	if err != nil || crt == nil {
		return nil, err
	}
	if k, ok := crt.PrivateKey.(*clientKey); ok {
		return k.owner, nil
	}
	return nil, nil
}

// thumbprint names the certificate the next handshake presents, by its
// RFC 8705 x5t#S256, when it is a ClientCert's: from NewTransport when
// Config.GetClientCertificate is a ClientCert's method, else from the first
// handshake that shows a ClientCert's pair. It reports false for a function
// of the user's, which may choose a certificate per server, so that no one
// certificate names the binding of the tokens.
func (s *certState) thumbprint() (string, bool) {
	c := s.owner.Load()
	if c == nil {
		return "", false
	}
	return thumbprint(c.pair.Load().hash), true
}

// pool returns the connection pool for the client identity in use: the base
// pool without a client certificate. It costs two atomic loads.
func (t *Transport) pool() *http.Transport {
	s := t.cert
	if s == nil {
		return t.base
	}
	id := s.ident.Load()
	if c := s.owner.Load(); c != nil {
		if p := c.pair.Load(); p.hash != id.leaf {
			id = t.rotate(id, p.hash)
		}
	}
	return id.pool
}

// getClientCertificate is the tls.Config hook: it asks Config's function,
// learns whether the certificate comes from a ClientCert, notices a change
// of that ClientCert's pair, and warns of an expiring certificate as for
// servers.
//
// Only a ClientCert's rotations are followed. Another function may well
// choose a certificate per server (by cri.AcceptableCAs): a change of
// certificate between two handshakes is then no change of identity.
func (t *Transport) getClientCertificate(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	s := t.cert
	crt, err := s.get(cri)
	if err != nil || crt == nil || len(crt.Certificate) == 0 {
		return crt, err
	}
	leaf := crt.Leaf
	if k, ok := crt.PrivateKey.(*clientKey); ok {
		s.owner.CompareAndSwap(nil, k.owner)
		if k.owner == s.owner.Load() {
			k.owner.useLogger(s.logger)
			if id := s.ident.Load(); id.leaf != k.pair.hash {
				t.rotate(id, k.pair.hash)
			}
		}
		leaf = k.pair.chain[0]
	}
	if leaf == nil {
		leaf, _ = x509.ParseCertificate(crt.Certificate[0])
	}
	if leaf != nil {
		t.warnExpiring([][]*x509.Certificate{{leaf}})
	}
	return crt, nil
}

// rotate moves from identity from to the certificate whose leaf hashes to
// leaf, unless another goroutine already moved, and returns the identity now
// in use. The first identity seen keeps the base pool.
func (t *Transport) rotate(from *identity, leaf [sha256.Size]byte) *identity {
	s := t.cert
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.ident.Load()
	if cur != from {
		return cur
	}
	if cur.leaf == ([sha256.Size]byte{}) {
		id := &identity{leaf: leaf, pool: cur.pool}
		s.ident.Store(id)
		return id
	}
	pool := s.base.Clone()
	pool.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(sessionCacheSize)
	id := &identity{leaf: leaf, pool: pool}
	s.ident.Store(id)

	// Requests in flight finish on the old pool; its connections close as
	// they fall idle, at the latest at the next rotation or
	// CloseIdleConnections.
	for _, p := range s.retired {
		p.CloseIdleConnections()
	}
	cur.pool.CloseIdleConnections()
	if len(s.retired) == maxRetiredPools {
		s.retired = s.retired[1:]
	}
	s.retired = append(s.retired, cur.pool)

	t.logger.Info("securehttp: client certificate changed; new connections and TLS sessions use it")
	if t.bearer != nil {
		t.bearer.invalidateBound(thumbprint(leaf))
	}
	return id
}

// closeIdle closes the idle connections of every pool.
func (s *certState) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.retired {
		p.CloseIdleConnections()
	}
	if p := s.ident.Load().pool; p != s.base {
		p.CloseIdleConnections()
	}
}
