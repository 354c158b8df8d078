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
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/securehttp/securehttp/internal/pemkey"
)

const (
	// defaultReloadInterval is how often LoadClientCert's watcher looks at
	// the files: the bound on the delay between a change and its use.
	defaultReloadInterval = time.Second
)

// ClientCert is a client certificate and its key, loaded from PEM files and
// reloaded when they change: a rewrite, an atomic rename or a Kubernetes
// "..data" swap, noticed within a second. A new pair is checked as the
// first was and replaces it whole; files that fail to load leave the last
// good pair in use, with one warning. A client follows the rotations: new
// connections and TLS sessions, and tokens bound to the new certificate. A
// ClientCert is safe for concurrent use, and may serve several clients.
type ClientCert struct {
	certFile, keyFile string
	interval          time.Duration
	now               func() time.Time

	pair   atomic.Pointer[certPair]
	logger atomic.Pointer[slog.Logger] // set by the first client with a Logger

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

// LoadClientCert loads a certificate chain (PEM, leaf first) and its
// unencrypted private key (PKCS #8, PKCS #1 or SEC 1) and watches the files.
// It refuses a key that does not match, a certificate that is not valid now
// or not for client authentication, and weak keys. Errors match
// ErrClientCert.
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

// GetClientCertificate returns the pair in use: use it as
// Config.GetClientCertificate. It fails only for a nil *ClientCert.
func (c *ClientCert) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c == nil {
		return nil, errNilClientCert
	}
	return &c.pair.Load().cert, nil
}

// NotAfter is when the certificate in use expires.
func (c *ClientCert) NotAfter() time.Time { return c.pair.Load().chain[0].NotAfter }

// Close stops watching the files; the last pair stays in use. It returns nil.
func (c *ClientCert) Close() error {
	c.closeOnce.Do(func() { close(c.stop) })
	<-c.done
	return nil
}

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
	key, err := pemkey.Signer(keyPEM)
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
	data, _, err := readBoundedFile(path, maxCertFileSize, errCertFileUnfit)
	return data, err
}

// readBoundedFile reads a regular file of at most limit bytes, following
// symbolic links and without blocking on a FIFO, and returns what fstat
// said of the file it read. What is not such a file is refused with unfit.
func readBoundedFile(path string, limit int64, unfit error) ([]byte, fs.FileInfo, error) {
	f, err := openCertFile(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%w: not a regular file (%s)", unfit, info.Mode().Type())
	}
	if info.Size() > limit {
		return nil, nil, fmt.Errorf("%w: %d bytes, more than %d", unfit, info.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(data)) > limit {
		return nil, nil, fmt.Errorf("%w: more than %d bytes", unfit, limit)
	}
	return data, info, nil
}

var (
	errCertFileUnfit = errors.New("not a certificate or key file")
	errKeyMismatch   = errors.New("the private key does not match the certificate")
	errEncryptedKey  = pemkey.ErrEncrypted
	errNoCertificate = errors.New("no CERTIFICATE block")
	errTruncatedPEM  = pemkey.ErrTruncated
	errNoKey         = pemkey.ErrNoKey
	errKeyType       = pemkey.ErrKeyType
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
// and lets a client that gets the certificate find the ClientCert it came
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
