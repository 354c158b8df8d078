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
	"net/http"
	"strconv"
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
	certFile, keyFile := writeFile(t, tmp, "cert.pem", cfg.CertPEM), writeFile(t, tmp, "key.pem", cfg.KeyPEM)
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	adminPort := 0 // of the last attempt
	p := start(t, launchSpec{
		name:    "hydra",
		bin:     bin,
		dir:     tmp,
		scheme:  "https",
		stopSig: syscall.SIGTERM,
		build: func(port int) (launch, error) {
			adminPort = FreePort(t)
			vars := map[string]string{
				"DSN":                        "memory",
				"SECRETS_SYSTEM":             hex.EncodeToString(secret),
				"URLS_SELF_ISSUER":           loopbackURL("https", port),
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
			run := launch{args: []string{"serve", "all", "--dev", "--sqa-opt-out"}}
			for k, v := range vars {
				run.env = append(run.env, k+"="+v)
			}
			return run, nil
		},
		wait: func(p *Peer) error {
			err := p.waitHTTPReady(loopbackURL("http", adminPort)+"/health/ready", hydraReadyTimeout, nil)
			if err == nil {
				// Hydra makes its signing keys (RSA 4096) at the first
				// request that needs them, which takes seconds on a loaded
				// machine: long enough for the first token of a short TTL
				// to be issued already expired. Asking for its public keys
				// makes them now.
				err = p.waitHTTPReady(p.URL("/.well-known/jwks.json"), hydraReadyTimeout, cfg.CertPEM)
			}
			return err
		},
	})
	issuer := p.URL("")
	return &HydraPeer{Peer: p, Issuer: issuer, TokenEndpoint: issuer + "/oauth2/token",
		JWKSURI: issuer + "/.well-known/jwks.json", AdminURL: loopbackURL("http", adminPort)}
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
