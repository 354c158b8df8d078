//go:build unix

// Package readme checks that README.md runs as written: its quick start is
// the program in examples/quickstart and succeeds against `securehttp demo
// --serve`, and every command of its sh blocks runs, or, for the two that
// cannot run inside a test, is what CI runs.
package readme

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// root is the repository, where README's commands run.
var root = filepath.Join("..", "..")

var (
	goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")
	shBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")
)

const (
	serveCmd      = "go run ./cmd/securehttp demo --serve"
	quickStartCmd = "go run ./examples/quickstart"
	testCmd       = "go test -race -count=1 ./... ./redisstore/... ./otelsecurehttp/..."
	benchCmd      = "cd bench && ./run.sh"
)

func readme(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQuickStartIsTheExample: the code README shows is the program that
// TestReadmeCommands runs, byte for byte.
func TestQuickStartIsTheExample(t *testing.T) {
	t.Parallel()
	blocks := goBlock.FindAllSubmatch(readme(t), -1)
	if len(blocks) == 0 {
		t.Fatal("README.md has no go code block, want the quick start")
	}
	want, err := os.ReadFile(filepath.Join(root, "examples", "quickstart", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(blocks[0][1], want) {
		t.Errorf("README's first go block differs from examples/quickstart/main.go:\n%s", blocks[0][1])
	}
}

// commands returns the command lines of README's sh blocks, in order.
func commands(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, b := range shBlock.FindAllSubmatch(readme(t), -1) {
		for line := range strings.SplitSeq(string(b[1]), "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				out = append(out, line)
			}
		}
	}
	return out
}

// TestReadmeCommands runs README's commands as a newcomer would: the demo
// server in one terminal, every other command in another with the lines it
// printed pasted, each required to succeed.
func TestReadmeCommands(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	cmds := commands(t)
	for _, must := range []string{serveCmd, quickStartCmd, "go run ./cmd/securehttp demo", testCmd} {
		if !contains(cmds, must) {
			t.Errorf("README has no %q command", must)
		}
	}

	// The two that cannot run here: the test command would run this test
	// again, and the benchmarks take minutes and rewrite their results.
	ci, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	if !contains(strings.Split(string(ci), "\n"), testCmd) {
		t.Errorf(".ci/run does not run README's test command %q", testCmd)
	}
	if contains(cmds, benchCmd) {
		info, err := os.Stat(filepath.Join(root, "bench", "run.sh"))
		if err != nil || info.Mode()&0o111 == 0 {
			t.Errorf("README runs %q, but bench/run.sh is not an executable file (%v)", benchCmd, err)
		}
	}

	env, stop := startServe(t, ctx)
	ran := 0
	for _, c := range cmds {
		if c == serveCmd || c == testCmd || c == benchCmd {
			continue
		}
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", c)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("README command failed: %s\n%v\n%s", c, err, out)
			continue
		}
		ran++
		t.Logf("ran: %s", c)
		if c == quickStartCmd && !bytes.HasPrefix(out, []byte(quickStartOutput(t))) {
			t.Errorf("the quick start printed %q, want what README says: %q", out, quickStartOutput(t))
		}
	}
	if ran == 0 {
		t.Error("no README command ran")
	}
	if out := stop(); !strings.Contains(out, "servers stopped") {
		t.Errorf("demo --serve did not stop cleanly on an interrupt; its output:\n%s", out)
	}
}

// startServe starts README's demo server as its own process group and
// returns the export lines it printed, as NAME=value, and a function that
// interrupts it, as Ctrl-C does, and returns all it printed.
func startServe(t *testing.T, ctx context.Context) (env []string, stop func() string) {
	t.Helper()
	args := strings.Fields(serveCmd)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// `go run` and the program it builds share the group: interrupt both.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	pr, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		all    strings.Builder
		ready  = make(chan struct{})
		copied = make(chan struct{})
	)
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			all.WriteString(line + "\n")
			if kv, ok := strings.CutPrefix(line, "export "); ok {
				k, v, _ := strings.Cut(kv, "=")
				env = append(env, k+"="+strings.Trim(v, "'"))
			}
			mu.Unlock()
			if line == quickStartCmd && !signalled {
				signalled = true
				close(ready)
			}
		}
		io.Copy(io.Discard, pr)
		if !signalled {
			close(ready)
		}
	}()
	stopped := false
	stop = func() string {
		if !stopped {
			stopped = true
			syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			<-copied
			cmd.Wait()
		}
		mu.Lock()
		defer mu.Unlock()
		return all.String()
	}
	t.Cleanup(func() { stop() })
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatalf("demo --serve printed no quick start within the test's deadline")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(env) == 0 {
		t.Fatalf("demo --serve printed no export lines; stdout:\n%s\nstderr:\n%s", all.String(), stderr.String())
	}
	return append([]string(nil), env...), stop
}

// quickStartOutput is what README says the quick start prints.
func quickStartOutput(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile("It prints `([^`]*)` and the API's answer, `([^`]*)`").FindSubmatch(readme(t))
	if m == nil {
		t.Fatal("README does not say what the quick start prints")
	}
	return string(m[1]) + "\n" + string(m[2])
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if strings.TrimSpace(l) == s {
			return true
		}
	}
	return false
}

// TestOTelExampleIsTheProgram: README's OpenTelemetry program is
// examples/otel, byte for byte, which `go vet ./...` compiles.
func TestOTelExampleIsTheProgram(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile(filepath.Join(root, "examples", "otel", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range goBlock.FindAllSubmatch(readme(t), -1) {
		if bytes.Contains(b[1], []byte(`"github.com/securehttp/securehttp/otelsecurehttp"`)) {
			if !bytes.Equal(b[1], want) {
				t.Errorf("README's OpenTelemetry program differs from examples/otel/main.go:\n%s", b[1])
			}
			return
		}
	}
	t.Error("README.md has no go block importing otelsecurehttp, want the OpenTelemetry program")
}
