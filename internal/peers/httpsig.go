package peers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
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

// httpsigReadyTimeout bounds how long node may take to print READY.
const httpsigReadyTimeout = 15 * time.Second

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
	write := func(name string, data []byte) string {
		path := filepath.Join(tmp, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatalf("peers: write %s: %v", name, err)
		}
		return path
	}
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
	spec := launchSpec{name: "http-message-signatures", bin: node, dir: tmp, scheme: "https", stopSig: syscall.SIGTERM}
	args := []string{filepath.Join(dir, "server.mjs"), confPath}
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		conf["port"] = port
		data, err := json.Marshal(conf)
		if err != nil {
			t.Fatalf("peers: encode the httpsig configuration: %v", err)
		}
		if err := os.WriteFile(confPath, data, 0o600); err != nil {
			t.Fatalf("peers: write the httpsig configuration: %v", err)
		}
		p, err := spawn(spec, port, args, "")
		if err != nil {
			t.Fatalf("peers: start the httpsig peer (%s): %v", node, err)
		}
		if err = p.waitNodeReady(httpsigReadyTimeout); err == nil {
			t.Cleanup(func() {
				p.Stop()
				if t.Failed() {
					t.Logf("peers: httpsig peer on %s after the failed test:\n%s", p.Addr, p.diagnostics())
				}
			})
			return &HTTPSigPeer{Peer: p, URL: "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		}
		p.Stop()
		if attempt < startAttempts && (errors.Is(err, errAddrInUse) || addrInUse(p)) {
			continue
		}
		t.Fatalf("peers: the httpsig peer did not become ready on 127.0.0.1:%d: %v\n%s", port, err, p.diagnostics())
		return nil
	}
}

// waitNodeReady waits for a node peer's "READY <port>" line and a
// successful dial, for at most timeout.
func (p *Peer) waitNodeReady(timeout time.Duration) error {
	marker := fmt.Sprintf("READY %d\n", p.Port)
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			if addrInUse(p) {
				return fmt.Errorf("%w: exited early: %v", errAddrInUse, p.waitErr)
			}
			return fmt.Errorf("exited early: %v", p.waitErr)
		}
		if strings.Contains(p.out.String(), marker) {
			c, err := net.DialTimeout("tcp", p.Addr, 250*time.Millisecond)
			if err == nil {
				_ = c.Close()
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v%s", errNotReady, timeout, procState(p.cmd.Process.Pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// npmPeerDir returns internal/peers/NAME, beside this source file or found
// from the working directory.
func npmPeerDir(t testing.TB, name string) string {
	t.Helper()
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), name))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				candidates = append(candidates, filepath.Join(d, "internal", "peers", name))
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, dir := range candidates {
		if _, err := os.Stat(filepath.Join(dir, "server.mjs")); err == nil {
			return dir
		}
	}
	t.Fatalf("peers: cannot find internal/peers/%s/server.mjs (looked in %v)", name, candidates)
	return ""
}

// npmModulesState reports whether dir/node_modules holds the version of
// pkg that dir/package.json pins; when not, it says what is wrong.
func npmModulesState(dir, pkg string) (ok bool, why string, err error) {
	var manifest struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return false, "", err
	}
	if err := json.Unmarshal(data, &manifest); err != nil {
		return false, "", fmt.Errorf("%s: %v", filepath.Join(dir, "package.json"), err)
	}
	want := manifest.Dependencies[pkg]
	if want == "" {
		return false, "", fmt.Errorf("%s does not depend on %s", filepath.Join(dir, "package.json"), pkg)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		return false, "node_modules is missing or incomplete", nil
	}
	var installed struct {
		Version string `json:"version"`
	}
	data, err = os.ReadFile(filepath.Join(dir, "node_modules", pkg, "package.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, "node_modules/" + pkg + " is missing", nil
	}
	if err != nil {
		return false, "", err
	}
	if err := json.Unmarshal(data, &installed); err != nil {
		return false, "", err
	}
	if installed.Version != want {
		return false, fmt.Sprintf("node_modules has %s %s, package.json pins %s", pkg, installed.Version, want), nil
	}
	return true, "", nil
}

// npmInstalls remembers, per directory, the outcome of the one local
// "npm ci" a test binary runs: "" after success, else why it failed.
var npmInstalls sync.Map // dir -> *npmInstall

type npmInstall struct {
	once   sync.Once
	result string
}

// ensureNpmModules makes sure dir's node_modules are installed: in CI it
// fails the test when they are not; locally it runs "npm ci" once per test
// binary and directory (serialised across processes by a lock file) and
// skips the test when that fails.
func ensureNpmModules(t testing.TB, dir, pkg, command string) {
	t.Helper()
	ok, why, err := npmModulesState(dir, pkg)
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("peers: %s: %s, and CI=true: run %q from the module root before the tests", dir, why, command)
		return
	}
	v, _ := npmInstalls.LoadOrStore(dir, new(npmInstall))
	in := v.(*npmInstall)
	in.once.Do(func() { in.result = npmCI(t, dir, pkg) })
	if in.result != "" {
		t.Skipf("peers: %s: %s, and npm ci failed: %s\nrun %q from the module root", dir, why, in.result, command)
	}
	if ok, why, err := npmModulesState(dir, pkg); err != nil || !ok {
		t.Skipf("peers: %s: still not installed after npm ci (%s%v); run %q from the module root", dir, why, err, command)
	}
}

// npmCI runs "npm ci" in dir, bounded by npmCITimeout, under an exclusive
// lock shared by all test processes, and returns "" on success or why it
// failed.
func npmCI(t testing.TB, dir, pkg string) string {
	npm, ok := lookup("npm")
	if !ok {
		return "npm not found in PATH"
	}
	sum := sha256.Sum256([]byte(dir))
	lockPath := filepath.Join(os.TempDir(), "securehttp-npm-"+hex.EncodeToString(sum[:8])+".lock")
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Sprintf("open lock file: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Sprintf("lock %s: %v", lockPath, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if ok, _, err := npmModulesState(dir, pkg); err == nil && ok {
		return ""
	}
	t.Logf("peers: installing %s: npm ci in %s (at most %v)", pkg, dir, npmCITimeout)
	ctx, cancel := context.WithTimeout(context.Background(), npmCITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Env = peerEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", npmCITimeout)
		}
		return fmt.Sprintf("%v\n%s", err, tail(string(out), diagLimit))
	}
	return ""
}
