package peers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Go peers: authorization servers written in Go by others (Ory Hydra,
// zitadel/oidc), built from the module proxy in modules of their own under
// internal/peers (hydra/, zitadel/), which the root go.mod never requires
// and go.work never uses: their dependency trees are large. They are built
// on demand into a cache directory, keyed by the module's go.mod, go.sum
// and Go files, and by the toolchain; .ci/run builds them before the tests
// (go run ./internal/peers/buildpeers), so that no test pays for it.

// GoPeer describes how to build one Go peer.
type GoPeer struct {
	Name string   // the binary's name, and its directory under internal/peers
	Pkg  string   // the package to build, in that module
	Tags []string // build tags
	CGO  bool     // needs cgo (Hydra's sqlite)
}

var (
	// Hydra is Ory Hydra v2.3.0, a tool of internal/peers/hydra/go.mod,
	// with the in-memory sqlite database.
	Hydra = GoPeer{Name: "hydra", Pkg: "github.com/ory/hydra/v2", Tags: []string{"sqlite"}, CGO: true}
	// Zitadel is internal/peers/zitadel: zitadel/oidc v3.52.0's example
	// provider with the storage the tests need.
	Zitadel = GoPeer{Name: "zitadel", Pkg: "."}
)

// goBuildTimeout bounds a build: Hydra takes about two minutes cold on two
// cores.
const goBuildTimeout = 15 * time.Minute

// CacheDir is where Go peers are built: $SECUREHTTP_PEER_CACHE, or
// securehttp-peers in the user's cache directory.
func CacheDir() (string, error) {
	if d := os.Getenv("SECUREHTTP_PEER_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "securehttp-peers"), nil
}

// Build returns the path of p's binary, building it first when the cache
// has none for the module as it is now. Concurrent builds, from several
// test binaries too, are serialised by a lock file; the binary appears
// under its final name only when complete.
func (p GoPeer) Build(ctx context.Context) (string, error) {
	dir, err := peerDir(p.Name, "go.mod")
	if err != nil {
		return "", err
	}
	key, err := p.key(dir)
	if err != nil {
		return "", err
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, p.Name+"-"+key, p.Name)
	if isExecutable(out) {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cache, p.Name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExecutable(out) { // built by another process while we waited
		return out, nil
	}
	goBin, ok := lookup("go")
	if !ok {
		return "", errors.New("go not found in PATH")
	}
	ctx, cancel := context.WithTimeout(ctx, goBuildTimeout)
	defer cancel()
	tmp := out + ".tmp"
	args := []string{"build", "-mod=readonly", "-trimpath", "-buildvcs=false", "-o", tmp}
	if len(p.Tags) > 0 {
		args = append(args, "-tags", strings.Join(p.Tags, ","))
	}
	cmd := exec.CommandContext(ctx, goBin, append(args, p.Pkg)...)
	cmd.Dir = dir
	cgo := "CGO_ENABLED=0"
	if p.CGO {
		cgo = "CGO_ENABLED=1"
	}
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", cgo)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if data, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", goBuildTimeout)
		}
		return "", fmt.Errorf("building %s in %s: %v\n%s", p.Name, dir, err, tail(string(data), diagLimit))
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}

// key names the build: a hash of the module's files, the tags and the
// toolchain.
func (p GoPeer) key(dir string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s/%s %q %v\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, p.Tags, p.CGO)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	names := []string{}
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && (n == "go.mod" || n == "go.sum" || strings.HasSuffix(n, ".go")) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", n, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// requireGoPeer builds p for a test, or finds it built. Without a Go
// toolchain the test is skipped, or fails when CI is "true"; a build that
// fails fails the test.
func requireGoPeer(t testing.TB, p GoPeer) string {
	t.Helper()
	if _, ok := lookup("go"); !ok {
		missingTool(t, "peers: go not found in PATH: it builds "+p.Name)
		return ""
	}
	start := time.Now()
	bin, err := p.Build(context.Background())
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Logf("peers: %s was built in %v (run go run ./internal/peers/buildpeers beforehand to spare the tests)", p.Name, d.Round(time.Second))
	}
	return bin
}
