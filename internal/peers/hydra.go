package peers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Hydra peer: Ory Hydra v2.3.0 (serve all, in-memory database), public API
// over TLS on https://127.0.0.1:PORT, admin API over plain HTTP on another
// loopback port, for the tests only.

// HydraConfig configures StartHydra.
type HydraConfig struct {
	// CertPEM is the server chain for 127.0.0.1, leaf first; KeyPEM is the
	// leaf's private key. Required.
	CertPEM, KeyPEM []byte
	// AccessTokenTTL is the access tokens' lifetime; zero means 10 minutes.
	AccessTokenTTL time.Duration
}

// HydraPeer is a running Hydra. Access tokens are JWTs signed by a key of
// JWKSURI.
type HydraPeer struct {
	*Peer
	Issuer        string // https://127.0.0.1:PORT
	TokenEndpoint string // Issuer + "/oauth2/token"
	JWKSURI       string // Issuer + "/.well-known/jwks.json"
	AdminURL      string // http://127.0.0.1:PORT2, the admin API
}

// hydraReadyTimeout bounds Hydra's start: migrations of the in-memory
// database take a few seconds on a loaded machine.
const hydraReadyTimeout = 30 * time.Second

// StartHydra builds Hydra if needed (see GoPeer.Build), starts it on free
// ports of 127.0.0.1, waits until it is ready and registers Stop with
// t.Cleanup.
func StartHydra(t testing.TB, cfg HydraConfig) *HydraPeer {
	t.Helper()
	bin := requireGoPeer(t, Hydra)
	if len(cfg.CertPEM) == 0 || len(cfg.KeyPEM) == 0 {
		t.Fatalf("peers: StartHydra needs CertPEM and KeyPEM")
	}
	ttl := cfg.AccessTokenTTL
	if ttl == 0 {
		ttl = 10 * time.Minute
	}
	tmp := t.TempDir()
	certFile, keyFile := filepath.Join(tmp, "cert.pem"), filepath.Join(tmp, "key.pem")
	if err := os.WriteFile(certFile, cfg.CertPEM, 0o600); err != nil {
		t.Fatalf("peers: %v", err)
	}
	if err := os.WriteFile(keyFile, cfg.KeyPEM, 0o600); err != nil {
		t.Fatalf("peers: %v", err)
	}
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	spec := launchSpec{name: "hydra", bin: bin, dir: tmp, scheme: "https", stopSig: syscall.SIGTERM}
	for attempt := 1; ; attempt++ {
		port, adminPort := FreePort(t), FreePort(t)
		issuer := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		admin := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(adminPort))
		vars := map[string]string{
			"DSN":                        "memory",
			"SECRETS_SYSTEM":             hex.EncodeToString(secret),
			"URLS_SELF_ISSUER":           issuer,
			"SERVE_PUBLIC_HOST":          "127.0.0.1",
			"SERVE_PUBLIC_PORT":          strconv.Itoa(port),
			"SERVE_PUBLIC_TLS_ENABLED":   "true",
			"SERVE_PUBLIC_TLS_CERT_PATH": certFile,
			"SERVE_PUBLIC_TLS_KEY_PATH":  keyFile,
			"SERVE_ADMIN_HOST":           "127.0.0.1",
			"SERVE_ADMIN_PORT":           strconv.Itoa(adminPort),
			"SERVE_ADMIN_TLS_ENABLED":    "false",
			"STRATEGIES_ACCESS_TOKEN":    "jwt",
			"TTL_ACCESS_TOKEN":           ttl.String(),
			"LOG_LEVEL":                  "warn",
			"LOG_LEAK_SENSITIVE_VALUES":  "false",
		}
		spec.env = spec.env[:0]
		for k, v := range vars {
			spec.env = append(spec.env, k+"="+v)
		}
		p, err := spawn(spec, port, []string{"serve", "all", "--dev", "--sqa-opt-out"}, "")
		if err != nil {
			t.Fatalf("peers: start hydra (%s): %v", bin, err)
		}
		err = p.waitHTTPReady(admin+"/health/ready", hydraReadyTimeout, nil)
		if err == nil {
			// Hydra makes its signing keys (RSA 4096) at the first request
			// that needs them, which takes seconds on a loaded machine:
			// long enough for the first token of a short TTL to be issued
			// already expired. Asking for its public keys makes them now.
			err = p.waitHTTPReady(issuer+"/.well-known/jwks.json", hydraReadyTimeout, cfg.CertPEM)
		}
		if err == nil {
			t.Cleanup(func() {
				p.Stop()
				if t.Failed() {
					t.Logf("peers: hydra on %s after the failed test:\n%s", p.Addr, p.diagnostics())
				}
			})
			return &HydraPeer{Peer: p, Issuer: issuer, TokenEndpoint: issuer + "/oauth2/token",
				JWKSURI: issuer + "/.well-known/jwks.json", AdminURL: admin}
		}
		p.Stop()
		if attempt < startAttempts && strings.Contains(p.Output(), "address already in use") {
			t.Logf("peers: hydra: a port was taken, retrying with others (attempt %d of %d)", attempt+1, startAttempts)
			continue
		}
		t.Fatalf("peers: hydra did not become ready: %v\n%s", err, p.diagnostics())
		return nil
	}
}

// Admin sends body as JSON to the admin API at path with method, and
// decodes the answer into out (when not nil). A status other than want
// fails the test.
func (h *HydraPeer) Admin(t testing.TB, method, path string, body any, want int, out any) {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatalf("peers: hydra admin %s: %v", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.AdminURL+path, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("peers: hydra admin %s: %v", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("peers: hydra admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		t.Fatalf("peers: hydra admin %s %s: got status %d, want %d: %s", method, path, resp.StatusCode, want, got)
	}
	if out != nil {
		if err := json.Unmarshal(got, out); err != nil {
			t.Fatalf("peers: hydra admin %s: %v", path, err)
		}
	}
}

// waitHTTPReady polls url until it answers 200, for at most timeout. An
// https URL's server is trusted when it presents a certificate of
// chainPEM.
func (p *Peer) waitHTTPReady(url string, timeout time.Duration, chainPEM []byte) error {
	deadline := time.Now().Add(timeout)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(chainPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for {
		if p.exited() {
			return fmt.Errorf("exited early: %v", p.waitErr)
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v%s", errNotReady, timeout, procState(p.cmd.Process.Pid))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
