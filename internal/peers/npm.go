package peers

// The Node peers' packages: each peer's directory under internal/peers
// holds a package.json and a committed package-lock.json, installed with
// "npm ci".

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// npmPeerDir returns internal/peers/NAME, beside this source file or found
// from the working directory.
func npmPeerDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := peerDir(name, "server.mjs")
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	return dir
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
