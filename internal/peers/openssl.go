package peers

import (
	"encoding/pem"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// OpenSSLConfig configures StartOpenSSL.
type OpenSSLConfig struct {
	// CertPEM is the server chain, leaf first: the leaf goes to -cert and
	// the certificates after it to -cert_chain. KeyPEM is the leaf's key.
	CertPEM, KeyPEM []byte
	// Args are extra s_server flags, e.g. "-tls1_3", or "-tls1_2",
	// "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256". They must not contain
	// -accept, -port, -www, -cert, -key or -cert_chain. When they contain
	// -tls1 or -tls1_1 and no -cipher, "-cipher" LegacyCiphers is added.
	Args []string
}

// StartOpenSSL starts "openssl s_server -accept 127.0.0.1:<port> -www" and
// registers Stop with t.Cleanup.
//
// With -www, s_server answers every "GET " request, whatever the path, with
// "HTTP/1.0 200 ok", "Content-type: text/html" and an HTML status page (the
// negotiated protocol and cipher, the session cache statistics), with no
// Content-Length, and then closes the connection; net/http accepts that.
// s_server serves one connection at a time. Its stdin is /dev/null, which it
// does not read in -www mode, so it keeps running. Session resumption
// (tickets for TLS 1.2 and TLS 1.3) is on by default.
//
// Log returns s_server's captured stdout and stderr.
func StartOpenSSL(t testing.TB, cfg OpenSSLConfig) *Peer {
	t.Helper()
	return startOpenSSL(t, cfg, nil)
}

func startOpenSSL(t testing.TB, cfg OpenSSLConfig, pick func(testing.TB) int) *Peer {
	t.Helper()
	bin := Require(t, "openssl")
	if len(cfg.CertPEM) == 0 || len(cfg.KeyPEM) == 0 {
		t.Fatalf("peers: StartOpenSSL needs CertPEM and KeyPEM")
	}
	for _, a := range cfg.Args {
		switch a {
		case "-accept", "-port", "-www", "-WWW", "-HTTP", "-cert", "-key", "-cert_chain":
			t.Fatalf("peers: OpenSSLConfig.Args must not contain %s; StartOpenSSL sets it", a)
		}
	}
	certs := pemCerts(cfg.CertPEM)
	if len(certs) == 0 {
		t.Fatalf("peers: OpenSSLConfig.CertPEM holds no CERTIFICATE block")
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string { return writeFile(t, dir, name, data) }
	base := []string{"s_server", "-www",
		"-cert", write("cert.pem", certs[0]),
		"-key", write("key.pem", cfg.KeyPEM),
	}
	if len(certs) > 1 {
		var chain []byte
		for _, c := range certs[1:] {
			chain = append(chain, c...)
		}
		base = append(base, "-cert_chain", write("chain.pem", chain))
	}
	extra := append([]string(nil), cfg.Args...)
	if wantsLegacy(extra) {
		extra = append(extra, "-cipher", LegacyCiphers)
	}
	return start(t, launchSpec{
		name:     "openssl",
		bin:      bin,
		dir:      dir,
		scheme:   "https",
		stopSig:  syscall.SIGTERM,
		pickPort: pick,
		build: func(port int) (launch, error) {
			args := append([]string(nil), base...)
			args = append(args, "-accept", "127.0.0.1:"+strconv.Itoa(port))
			return launch{args: append(args, extra...)}, nil
		},
		ready: func(p *Peer) bool {
			// s_server prints ACCEPT once it listens.
			return strings.Contains(p.out.String(), "ACCEPT")
		},
	})
}

// wantsLegacy reports whether s_server args select TLS 1.0 or 1.1 without
// choosing ciphers.
func wantsLegacy(args []string) bool {
	legacy := false
	for _, a := range args {
		switch a {
		case "-cipher":
			return false
		case "-tls1", "-tls1_1":
			legacy = true
		}
	}
	return legacy
}

// pemCerts returns the CERTIFICATE blocks of data, each PEM-encoded, in order.
func pemCerts(data []byte) [][]byte {
	var certs [][]byte
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return certs
		}
		if block.Type == "CERTIFICATE" {
			certs = append(certs, pem.EncodeToMemory(block))
		}
	}
}
