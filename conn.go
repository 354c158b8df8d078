package securehttp

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
)

// The connections under every attempt: the http.Transport that dials them
// (through the egress policy), the TLS configuration that verifies them,
// and one pool per client identity.

const (
	defaultDialTimeout         = 30 * time.Second
	defaultTLSHandshakeTimeout = 10 * time.Second
	defaultIdleConnTimeout     = 90 * time.Second
	defaultMaxIdleConnsPerHost = 64
	sessionCacheSize           = 256
	// maxRetiredPools bounds how many connection pools of earlier client
	// identities are kept so that CloseIdleConnections can close them.
	maxRetiredPools = 8
)

// checkConnConfig checks the Config entries that shape connections.
func checkConnConfig(cfg Config) error {
	if cfg.MaxIdleConnsPerHost < 0 {
		return &ConfigError{Field: "MaxIdleConnsPerHost", Err: errors.New("must not be negative")}
	}
	if cfg.GetClientCertificate != nil {
		if _, err := clientCertOf(cfg.GetClientCertificate); err != nil {
			return &ConfigError{Field: "GetClientCertificate", Err: err}
		}
	}
	return nil
}

// connections holds the pools. Connections and TLS sessions belong to one
// client identity: each identity has its own pool (an http.Transport with
// its own session cache), so that after a rotation no request goes out on a
// connection, or resumes a session, made with the old certificate. A server
// such as nginx takes the client's identity from a resumed session, not
// from a certificate sent again.
type connections struct {
	base *http.Transport // the pool without a client certificate, and the template of the others

	// Set only with Config.GetClientCertificate.
	t      *transport                                                  // told of each certificate presented and of a new identity
	get    func(*tls.CertificateRequestInfo) (*tls.Certificate, error) // Config's
	logger *slog.Logger                                                // Config's, for a ClientCert's reloads; may be nil
	owner  atomic.Pointer[ClientCert]                                  // known at the first handshake with one, or earlier
	ident  atomic.Pointer[identity]

	mu      sync.Mutex // held to change identity
	retired []*http.Transport
}

// identity is a client identity and the pool of connections made with it.
type identity struct {
	leaf [sha256.Size]byte // zero until the first handshake
	pool *http.Transport
}

// newConnections makes t's base pool from cfg: dials through t's egress
// policy, TLS 1.2 or later verified against cfg.RootCAs and then by t's
// verifyConnection, and, with cfg.GetClientCertificate, a pool per client
// identity.
func newConnections(cfg Config, t *transport) *connections {
	egress := t.egress
	dial := egress.dialFunc(cfg.DialContext, &net.Dialer{
		Timeout:   orDefault(cfg.DialTimeout, defaultDialTimeout),
		KeepAlive: 30 * time.Second,
	})
	proxy := cfg.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	perHost := cfg.MaxIdleConnsPerHost
	if perHost == 0 {
		perHost = defaultMaxIdleConnsPerHost
	}
	c := &connections{base: &http.Transport{
		Proxy:       egress.proxyFunc(proxy),
		DialContext: dial,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			RootCAs:            cfg.RootCAs,
			ClientSessionCache: tls.NewLRUClientSessionCache(sessionCacheSize),
			// VerifyConnection runs after Go's own chain verification, on
			// full and resumed handshakes alike.
			VerifyConnection: t.verifyConnection,
		},
		// A custom TLS config turns HTTP/2 off unless it is forced back on.
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0, // no overall limit: the per-host limit governs
		MaxIdleConnsPerHost:   perHost,
		IdleConnTimeout:       orDefault(cfg.IdleConnTimeout, defaultIdleConnTimeout),
		TLSHandshakeTimeout:   orDefault(cfg.TLSHandshakeTimeout, defaultTLSHandshakeTimeout),
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}}
	if cfg.GetClientCertificate != nil {
		c.t, c.get, c.logger = t, cfg.GetClientCertificate, t.logger
		c.ident.Store(&identity{pool: c.base})
		if owner, _ := clientCertOf(c.get); owner != nil { // checked by checkConnConfig
			c.owner.Store(owner)
		}
		c.base.TLSClientConfig.GetClientCertificate = c.getClientCertificate
	}
	return c
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

// certificate reports whether a client certificate is configured and, when
// it can be named, its RFC 8705 x5t#S256: from the start when
// Config.GetClientCertificate is a ClientCert's method, else from the first
// handshake that shows a ClientCert's pair. A function of the user's may
// choose a certificate per server, so no one certificate names it.
func (c *connections) certificate() (x5t string, named bool) {
	o := c.owner.Load()
	if o == nil {
		return "", false
	}
	return thumbprint(o.pair.Load().hash), true
}

// pool returns the connection pool for the client identity in use: the base
// pool without a client certificate. It costs two atomic loads.
func (c *connections) pool() *http.Transport {
	if c.get == nil {
		return c.base
	}
	id := c.ident.Load()
	if o := c.owner.Load(); o != nil {
		if p := o.pair.Load(); p.hash != id.leaf {
			id = c.rotate(id, p.hash)
		}
	}
	return id.pool
}

// getClientCertificate is the tls.Config hook: it asks Config's function,
// learns whether the certificate comes from a ClientCert, notices a change
// of that ClientCert's pair, and has the certificate checked as servers'
// are (an expiring one is warned of).
//
// Only a ClientCert's rotations are followed. Another function may well
// choose a certificate per server (by cri.AcceptableCAs): a change of
// certificate between two handshakes is then no change of identity.
func (c *connections) getClientCertificate(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	crt, err := c.get(cri)
	if err != nil || crt == nil || len(crt.Certificate) == 0 {
		return crt, err
	}
	leaf := crt.Leaf
	if k, ok := crt.PrivateKey.(*clientKey); ok {
		c.owner.CompareAndSwap(nil, k.owner)
		if k.owner == c.owner.Load() {
			k.owner.useLogger(c.logger)
			if id := c.ident.Load(); id.leaf != k.pair.hash {
				c.rotate(id, k.pair.hash)
			}
		}
		leaf = k.pair.chain[0]
	}
	if leaf == nil {
		leaf, _ = x509.ParseCertificate(crt.Certificate[0])
	}
	if leaf != nil {
		c.t.warnExpiring([][]*x509.Certificate{{leaf}})
	}
	return crt, nil
}

// rotate moves from identity from to the certificate whose leaf hashes to
// leaf, unless another goroutine already moved, and returns the identity now
// in use. The first identity seen keeps the base pool.
func (c *connections) rotate(from *identity, leaf [sha256.Size]byte) *identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.ident.Load()
	if cur != from {
		return cur
	}
	if cur.leaf == ([sha256.Size]byte{}) {
		id := &identity{leaf: leaf, pool: cur.pool}
		c.ident.Store(id)
		return id
	}
	pool := c.base.Clone()
	pool.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(sessionCacheSize)
	id := &identity{leaf: leaf, pool: pool}
	c.ident.Store(id)

	// Requests in flight finish on the old pool; its connections close as
	// they fall idle, at the latest at the next rotation or
	// CloseIdleConnections.
	for _, p := range c.retired {
		p.CloseIdleConnections()
	}
	cur.pool.CloseIdleConnections()
	if len(c.retired) == maxRetiredPools {
		c.retired = c.retired[1:]
	}
	c.retired = append(c.retired, cur.pool)

	c.t.logger.Info("securehttp: client certificate changed; new connections and TLS sessions use it")
	if b := c.t.bearer; b != nil {
		b.invalidateBound(thumbprint(leaf))
	}
	return id
}

// closeIdle closes the idle connections of every pool.
func (c *connections) closeIdle() {
	c.base.CloseIdleConnections()
	if c.get == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.retired {
		p.CloseIdleConnections()
	}
	if p := c.ident.Load().pool; p != c.base {
		p.CloseIdleConnections()
	}
}
