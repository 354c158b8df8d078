package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/securehttp/securehttp/internal/testpki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testChain is a root, an intermediate and a leaf for 127.0.0.1, generated
// once per test binary.
type testChain struct {
	root, inter, leaf *testpki.Cert
}

var (
	chainOnce sync.Once
	chainVal  *testChain
)

func sharedChain() *testChain {
	chainOnce.Do(func() {
		root := testpki.Must(testpki.NewRoot("cmd test root", testpki.Options{}))
		inter := testpki.Must(root.NewIntermediate("cmd test intermediate", testpki.Options{}))
		leaf := testpki.Must(inter.NewLeaf("127.0.0.1", testpki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}))
		chainVal = &testChain{root: root, inter: inter, leaf: leaf}
	})
	return chainVal
}

// writeFile writes data to a new file in a temporary directory.
func writeFile(t *testing.T, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
	return path
}

// runCmd runs the command in process, with an empty stdin.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCmdIn(t, "", args...)
}

// runCmdIn runs the command in process, with stdin as its standard input.
func runCmdIn(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no command", nil, exitUsage},
		{"unknown command", []string{"fetch"}, exitUsage},
		{"help", []string{"help"}, exitOK},
		{"demo with an argument", []string{"demo", "extra"}, exitUsage},
		{"demo unknown flag", []string{"demo", "--fast"}, exitUsage},
		{"pins without URL", []string{"pins"}, exitUsage},
		{"pins -h", []string{"pins", "-h"}, exitOK},
		{"get -h", []string{"get", "-h"}, exitOK},
		{"get unknown flag", []string{"get", "--no-such-flag", "https://127.0.0.1/"}, exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got, _, _ := runCmd(t, tt.args...); got != tt.want {
				t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.want)
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args           []string
		wantPositional []string
		wantO          string
		wantPins       []string
	}{
		{[]string{"URL"}, []string{"URL"}, "", nil},
		{[]string{"-o", "f", "URL"}, []string{"URL"}, "f", nil},
		{[]string{"URL", "-o", "f"}, []string{"URL"}, "f", nil},
		{[]string{"--pin", "a", "URL", "--pin", "b"}, []string{"URL"}, "", []string{"a", "b"}},
		{[]string{"A", "B"}, []string{"A", "B"}, "", nil},
		{[]string{"-o", "f", "--", "-o", "URL"}, []string{"-o", "URL"}, "f", nil},
		{[]string{"URL", "--", "-x"}, []string{"URL", "-x"}, "", nil},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		o := fs.String("o", "", "")
		var pins []string
		fs.Func("pin", "", func(s string) error { pins = append(pins, s); return nil })
		got, err := parseInterspersed(fs, tt.args)
		if err != nil {
			t.Errorf("parseInterspersed(%q): %v", tt.args, err)
			continue
		}
		if !slices.Equal(got, tt.wantPositional) || *o != tt.wantO || !slices.Equal(pins, tt.wantPins) {
			t.Errorf("parseInterspersed(%q) = %q, -o %q, pins %q; want %q, -o %q, pins %q",
				tt.args, got, *o, pins, tt.wantPositional, tt.wantO, tt.wantPins)
		}
	}
}

// TestHelp: every command's help goes to stdout with exit code 0, however
// it is asked for, and spells its flags as its usage line does; each
// spelling it shows is accepted.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"demo", "pins", "get", "version"} {
		for _, args := range [][]string{{"help", cmd}, {cmd, "-h"}, {cmd, "--help"}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				code, out, errOut := runCmd(t, args...)
				if code != exitOK || errOut != "" || !strings.HasPrefix(out, "usage: securehttp "+cmd) {
					t.Fatalf("got exit code %d, stdout %q, stderr %q; want 0 and the help on stdout", code, out, errOut)
				}
				c, _ := lookup(cmd)
				o := c.opts(io.Discard, io.Discard)
				usage := strings.SplitN(out, "\n", 2)[0]
				shown := helpFlags(out)
				for _, f := range strings.Fields(usage) {
					f = strings.Trim(f, "[]")
					if strings.HasPrefix(f, "-") && !slices.Contains(shown, f) {
						t.Errorf("usage line has %s, but the options list does not: %v", f, shown)
					}
				}
				for _, f := range shown {
					if o.fs.Lookup(strings.TrimLeft(f, "-")) == nil {
						t.Errorf("help shows %s, which the command does not accept", f)
					}
					if long := strings.HasPrefix(f, "--"); long == (len(strings.TrimLeft(f, "-")) == 1) {
						t.Errorf("help spells %s: want -x for one letter and --name otherwise", f)
					}
				}
				if cmd == "get" {
					for _, want := range []string{"-H", "--header", "-X", "-d", "--data-binary", "-i", "-L", "--max-time", "--connect-to", "--fail", "--fail-with-body", "-o", "--pin", "--cacert", "--token-file"} {
						if !slices.Contains(shown, want) {
							t.Errorf("get's help lacks %s", want)
						}
					}
				}
			})
		}
	}
	t.Run("help alone", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runCmd(t, "help")
		if code != exitOK || errOut != "" || !strings.Contains(out, "securehttp get [options] URL") {
			t.Errorf("got %d, %q, %q; want the usage on stdout", code, out, errOut)
		}
	})
	t.Run("help of an unknown command", func(t *testing.T) {
		t.Parallel()
		if code, out, _ := runCmd(t, "help", "fetch"); code != exitUsage || out != "" {
			t.Errorf("got exit code %d and stdout %q, want %d and nothing", code, out, exitUsage)
		}
	})
}

// helpFlags returns the flag spellings of a help text's options list.
func helpFlags(help string) []string {
	var out []string
	_, opts, _ := strings.Cut(help, "\noptions:\n")
	for line := range strings.SplitSeq(opts, "\n") {
		if !strings.HasPrefix(line, "  -") {
			continue
		}
		for f := range strings.SplitSeq(strings.TrimSpace(line), ", ") {
			out = append(out, strings.Fields(f)[0])
		}
	}
	return out
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := runCmd(t, args...)
		if code != exitOK || !strings.HasPrefix(out, "securehttp ") || !strings.Contains(out, runtime.Version()) || errOut != "" {
			t.Errorf("%q: got %d, %q, %q; want 0 and a version line naming %s", args, code, out, errOut, runtime.Version())
		}
	}
}

// TestExtraArguments: a refused argument is named, with the reason.
func TestExtraArguments(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		why  string
	}{
		{[]string{"get", "https://127.0.0.1:1/a", "https://127.0.0.1:1/b"}, `unexpected argument "https://127.0.0.1:1/b": get takes one URL`},
		{[]string{"pins", "https://127.0.0.1:1/", "extra"}, `unexpected argument "extra": pins takes one URL`},
		{[]string{"demo", "fast"}, `unexpected argument "fast": demo takes no arguments`},
		{[]string{"version", "2"}, `unexpected argument "2": version takes no arguments`},
		{[]string{"help", "get", "pins"}, `unexpected argument "pins"`},
		{[]string{"get"}, "missing the URL"},
		{[]string{"pins"}, "missing the URL"},
		{[]string{"get", "--no-such-flag", "https://127.0.0.1:1/"}, "flag provided but not defined"},
	} {
		code, out, errOut := runCmd(t, tt.args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tt.why) {
			t.Errorf("%q: got exit code %d, stdout %q, stderr %q; want %d and %q", tt.args, code, out, errOut, exitUsage, tt.why)
		}
	}
}

// TestInterruptAgainEndsTheCommand: the first interrupt cancels the
// command's context, which ends a transfer cleanly; a wait that does not
// watch it (get -d @- reading a pipe that stays open, as a terminal does)
// ends at the next interrupt, as in a program that handles no signal. It
// runs main in a child process, interrupted until it ends.
func TestInterruptAgainEndsTheCommand(t *testing.T) {
	if os.Getenv("SECUREHTTP_MAIN_CHILD") != "" {
		os.Args = []string{"securehttp", "get", "-d", "@-", "https://127.0.0.1:1/"}
		fmt.Fprintln(os.Stderr, "ready")
		main()
		return
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestInterruptAgainEndsTheCommand$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SECUREHTTP_MAIN_CHILD=1")
	stdin, err := cmd.StdinPipe() // held open: the child waits for it
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stderr).ReadString('\n'); err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("got %q, %v from the child, want ready", line, err)
	}
	go io.Copy(io.Discard, stderr)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	interrupts := 0
	for {
		select {
		case <-done:
			if interrupts == 0 {
				t.Fatal("the child ended before any interrupt")
			}
			return
		case <-tick.C:
			cmd.Process.Signal(os.Interrupt)
			interrupts++
		case <-ctx.Done():
			cmd.Process.Kill()
			<-done
			t.Fatalf("the child still waited for stdin after %d interrupts, want it ended by the second", interrupts)
		}
	}
}
