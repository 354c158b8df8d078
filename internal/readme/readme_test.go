//go:build unix

// Package readme checks that README.md and the guides under docs/ are true
// as written: README's first example is part of examples/firstexample and
// its quick start is examples/quickstart, both compiled by `go vet ./...`;
// the quick start succeeds against `securehttp demo --serve`; every command
// of an sh block runs, or, for those that cannot run inside a test, names
// what this repository holds or is what CI runs; and every relative link
// leads to a file.
package readme

import (
	"bufio"
	"bytes"
	"context"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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

// root is the repository, where the commands run.
var root = filepath.Join("..", "..")

var (
	goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")
	shBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")
	// mdLink is a Markdown link or image; its target is the second group.
	mdLink = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)\)`)
	// exitComment ends a command that must fail with the exit status it
	// names, such as a refused request of the command's.
	exitComment = regexp.MustCompile(`\s#\s*exit status (\d+)\s*$`)
)

const (
	modulePath    = "github.com/securehttp/securehttp"
	serveCmd      = "go run ./cmd/securehttp demo --serve"
	quickStartCmd = "go run ./examples/quickstart"
	testCmd       = "go run ./internal/testall"
	benchCmd      = "cd bench && ./run.sh"
)

// readmeMust are the commands a newcomer needs, which README must show.
var readmeMust = []string{
	"go get " + modulePath + "@latest",
	"go install " + modulePath + "/cmd/securehttp@latest",
	"go get " + modulePath + "/redisstore@latest",
	"go get " + modulePath + "/otelsecurehttp@latest",
	"go run ./cmd/securehttp demo",
	testCmd,
	serveCmd,
	quickStartCmd,
}

func read(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pages returns README.md and the guides under docs/, as paths relative to
// root.
func pages(t *testing.T) []string {
	t.Helper()
	guides, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"README.md"}
	for _, g := range guides {
		rel, err := filepath.Rel(root, g)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rel)
	}
	return out
}

// TestReadmeGoBlocks: README has two go blocks, the first example and the
// quick start, and each is the code of a program that `go vet ./...`
// compiles: the first example, indented as a function body, in
// examples/firstexample, and the quick start, byte for byte,
// examples/quickstart.
func TestReadmeGoBlocks(t *testing.T) {
	t.Parallel()
	blocks := goBlock.FindAllSubmatch(read(t, "README.md"), -1)
	if len(blocks) != 2 {
		t.Fatalf("README.md has %d go blocks, want 2: the first example and the quick start", len(blocks))
	}
	first, program := blocks[0][1], read(t, filepath.Join("examples", "firstexample", "main.go"))
	if !bytes.Contains(program, indent(first)) {
		t.Errorf("README's first go block is not in examples/firstexample/main.go:\n%s", first)
	}
	if want := read(t, filepath.Join("examples", "quickstart", "main.go")); !bytes.Equal(blocks[1][1], want) {
		t.Errorf("README's second go block differs from examples/quickstart/main.go:\n%s", blocks[1][1])
	}
}

// indent indents every line of b that is not empty by one tab, as the body
// of a function.
func indent(b []byte) []byte {
	var out bytes.Buffer
	for line := range bytes.Lines(b) {
		if len(bytes.TrimSpace(line)) > 0 {
			out.WriteByte('\t')
		}
		out.Write(line)
	}
	return out.Bytes()
}

// command is one line of an sh block and the page it is on.
type command struct {
	page, line string
}

// commands returns the command lines of the sh blocks of README.md and of
// the guides, in order.
func commands(t *testing.T) []command {
	t.Helper()
	var out []command
	for _, p := range pages(t) {
		for _, b := range shBlock.FindAllSubmatch(read(t, p), -1) {
			for line := range strings.SplitSeq(string(b[1]), "\n") {
				line = strings.TrimSpace(line)
				if line != "" && !strings.HasPrefix(line, "#") {
					out = append(out, command{p, line})
				}
			}
		}
	}
	return out
}

// installs reports whether c fetches a module (go get or go install of
// @latest): it needs the network and a published module, so it is checked
// by TestInstallCommands instead of run.
func installs(c string) bool {
	return (strings.HasPrefix(c, "go get ") || strings.HasPrefix(c, "go install ")) && strings.HasSuffix(c, "@latest")
}

// TestInstallCommands: README has the install lines, and each go get or go
// install names what this repository holds: go get a module of one of its
// go.mod files, go install a main package of the root module.
func TestInstallCommands(t *testing.T) {
	t.Parallel()
	var readme []string
	for _, c := range commands(t) {
		if c.page == "README.md" {
			readme = append(readme, c.line)
		}
	}
	for _, must := range readmeMust {
		if !slices.Contains(readme, must) {
			t.Errorf("README has no %q command", must)
		}
	}
	modules := repoModules(t)
	checked := 0
	for _, c := range commands(t) {
		if !installs(c.line) {
			continue
		}
		checked++
		// "go get M@latest" or "go install P@latest".
		verb, target, _ := strings.Cut(strings.TrimPrefix(c.line, "go "), " ")
		target = strings.TrimSuffix(target, "@latest")
		switch verb {
		case "get":
			if !slices.Contains(modules, target) {
				t.Errorf("%s: %q gets %s, want one of this repository's modules %v", c.page, c.line, target, modules)
			}
		default:
			rel, ok := strings.CutPrefix(target, modulePath+"/")
			if !ok || !isMainPackage(t, rel) {
				t.Errorf("%s: %q installs %s, want a main package of %s", c.page, c.line, target, modulePath)
			}
		}
	}
	if checked == 0 {
		t.Error("no install command checked")
	}
}

// repoModules returns the module paths of the go.mod files of the
// repository.
func repoModules(t *testing.T) []string {
	t.Helper()
	var mods []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		if d.Name() != "go.mod" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if m, ok := strings.CutPrefix(line, "module "); ok {
				mods = append(mods, strings.TrimSpace(m))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mods
}

// isMainPackage reports whether the directory rel of the root module holds
// a main package.
func isMainPackage(t *testing.T, rel string) bool {
	t.Helper()
	dir := filepath.Join(root, filepath.FromSlash(rel))
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		return false // another module's
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly)
		if err == nil && file.Name.Name == "main" {
			return true
		}
	}
	return false
}

// TestReadmeCommands runs the commands of README and the guides as a
// newcomer would: the demo server in one terminal, every other command in
// another with the lines it printed pasted, each required to succeed, or,
// when it ends with a comment "# exit status N", to exit with N.
func TestReadmeCommands(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	cmds := commands(t)

	// The ones that cannot run here: the test command would run this test
	// again, and the benchmarks take minutes and rewrite their results.
	ci := read(t, filepath.Join(".ci", "run"))
	if !contains(strings.Split(string(ci), "\n"), testCmd) {
		t.Errorf(".ci/run does not run README's test command %q", testCmd)
	}
	for _, c := range cmds {
		if c.line != benchCmd {
			continue
		}
		info, err := os.Stat(filepath.Join(root, "bench", "run.sh"))
		if err != nil || info.Mode()&0o111 == 0 {
			t.Errorf("%s runs %q, but bench/run.sh is not an executable file (%v)", c.page, benchCmd, err)
		}
	}

	env, stop := startServe(t, ctx)
	ran := 0
	for _, c := range cmds {
		if c.line == serveCmd || c.line == testCmd || c.line == benchCmd || installs(c.line) {
			continue
		}
		want := 0
		if m := exitComment.FindStringSubmatch(c.line); m != nil {
			want, _ = strconv.Atoi(m[1])
		}
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", c.line)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if got := cmd.ProcessState.ExitCode(); err != nil && got != want || err == nil && want != 0 {
			t.Errorf("%s: %s\ngot exit status %d (%v), want %d; output:\n%s", c.page, c.line, got, err, want, out)
			continue
		}
		ran++
		t.Logf("ran (%s): %s", c.page, c.line)
		if c.line == quickStartCmd && !bytes.HasPrefix(out, []byte(quickStartOutput(t))) {
			t.Errorf("the quick start printed %q, want what README says: %q", out, quickStartOutput(t))
		}
	}
	if ran == 0 {
		t.Error("no command ran")
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
	got := append([]string(nil), env...)
	mu.Unlock()
	if len(got) == 0 {
		out := stop() // waits for the command, so that stderr is whole
		t.Fatalf("demo --serve printed no export lines; stdout:\n%s\nstderr:\n%s", out, stderr.String())
	}
	return got, stop
}

// quickStartOutput is what README says the quick start prints.
func quickStartOutput(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile("It prints `([^`]*)` and the API's answer, `([^`]*)`").FindSubmatch(read(t, "README.md"))
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

// TestOTelExampleIsTheProgram: the OpenTelemetry program of the telemetry
// guide is examples/otel, byte for byte, which CI vets as a module of its
// own.
func TestOTelExampleIsTheProgram(t *testing.T) {
	t.Parallel()
	want := read(t, filepath.Join("examples", "otel", "main.go"))
	guide := filepath.Join("docs", "telemetry.md")
	for _, b := range goBlock.FindAllSubmatch(read(t, guide), -1) {
		if bytes.HasPrefix(b[1], []byte("package main\n")) {
			if !bytes.Equal(b[1], want) {
				t.Errorf("the program in %s differs from examples/otel/main.go:\n%s", guide, b[1])
			}
			return
		}
	}
	t.Errorf("%s has no go block holding a program, want examples/otel/main.go", guide)
}

// TestLinks: every relative link of README.md and the guides leads to a
// file or directory of the repository, so that the table of contents and
// the links between guides work.
func TestLinks(t *testing.T) {
	t.Parallel()
	checked := 0
	for _, p := range pages(t) {
		for _, m := range mdLink.FindAllSubmatch(read(t, p), -1) {
			target := string(m[1])
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			path := filepath.Join(root, filepath.Dir(p), filepath.FromSlash(target))
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist: %v", p, m[1], err)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Error("no link checked")
	}
}
