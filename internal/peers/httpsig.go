package peers

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// HTTPSig peer: the npm package http-message-signatures (RFC 9421), run by
// Node.js from internal/peers/httpsig/server.mjs as a resource server on
// https://127.0.0.1:PORT that verifies signed requests and signs its
// responses.

// HTTPSigNpmCICommand installs the peer's npm dependencies from the lock
// file, run from the module root. CI must run it before the tests (with
// CI=true StartHTTPSig fails instead of installing).
const HTTPSigNpmCICommand = "npm ci --prefix internal/peers/httpsig --ignore-scripts --no-audit --no-fund"

// HTTPSigKey is a key of the peer's, with its RFC 9421 algorithm
// ("ed25519", "ecdsa-p256-sha256", "ecdsa-p384-sha384", "rsa-pss-sha512")
// and keyid.
type HTTPSigKey struct {
	PEM   []byte // SPKI public key (ClientKey) or PKCS #8 private key (ServerKey)
	Alg   string
	KeyID string
}

// HTTPSigConfig configures StartHTTPSig.
type HTTPSigConfig struct {
	// CertPEM is the server chain for 127.0.0.1, leaf first; KeyPEM is its
	// leaf's private key. Required.
	CertPEM, KeyPEM []byte
	// ClientKey verifies requests; ServerKey signs responses. Required.
	ClientKey, ServerKey HTTPSigKey
	// RequestTag, if set, is the tag a request's signature must carry;
	// ResponseTag, if set, the tag of the peer's signatures.
	RequestTag, ResponseTag string
	// MaxAge is how old a request's signature may be; zero means 60 s.
	MaxAge time.Duration
}

// HTTPSigPeer is a running http-message-signatures peer.
type HTTPSigPeer struct {
	*Peer
	// URL is https://127.0.0.1:PORT.
	URL string
}

// StartHTTPSig starts the peer; it is stopped when the test ends. Without
// Node.js it skips the test, or fails it when CI is "true"; when its
// node_modules are missing it fails in CI and runs "npm ci" once locally.
func StartHTTPSig(t testing.TB, cfg HTTPSigConfig) *HTTPSigPeer {
	t.Helper()
	node := requireNode(t)
	dir := npmPeerDir(t, "httpsig")
	ensureNpmModules(t, dir, "http-message-signatures", HTTPSigNpmCICommand)
	if len(cfg.CertPEM) == 0 || len(cfg.KeyPEM) == 0 || len(cfg.ClientKey.PEM) == 0 || len(cfg.ServerKey.PEM) == 0 {
		t.Fatalf("peers: StartHTTPSig needs CertPEM, KeyPEM, ClientKey and ServerKey")
	}
	maxAge := cfg.MaxAge
	if maxAge == 0 {
		maxAge = time.Minute
	}
	tmp := t.TempDir()
	write := func(name string, data []byte) string { return writeFile(t, tmp, name, data) }
	key := func(k HTTPSigKey) map[string]string {
		return map[string]string{"pem": string(k.PEM), "alg": k.Alg, "keyid": k.KeyID}
	}
	conf := map[string]any{
		"certFile":    write("cert.pem", cfg.CertPEM),
		"keyFile":     write("key.pem", cfg.KeyPEM),
		"clientKey":   key(cfg.ClientKey),
		"serverKey":   key(cfg.ServerKey),
		"requestTag":  cfg.RequestTag,
		"responseTag": cfg.ResponseTag,
		"maxAge":      int64(maxAge / time.Second),
	}
	confPath := filepath.Join(tmp, "httpsig.json")
	p := start(t, launchSpec{
		name:    "http-message-signatures",
		bin:     node,
		dir:     tmp,
		scheme:  "https",
		stopSig: syscall.SIGTERM,
		build: func(port int) (launch, error) {
			conf["port"] = port
			return launch{args: []string{filepath.Join(dir, "server.mjs"), confPath}}, writeJSON(confPath, conf)
		},
		wait: waitNode,
	})
	return &HTTPSigPeer{Peer: p, URL: p.URL("")}
}
