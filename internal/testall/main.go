// Command testall runs the tests of every module of the repository, as
// README.md says, and ends by listing every test that was skipped and why:
// a test whose peer (nginx, tinyproxy, redis-server, Node) is missing skips
// outside CI, and `go test` alone prints "ok" for its package all the same.
//
//	go run ./internal/testall              -race -count=1 over every module
//	go run ./internal/testall [flags] PKG  go test's own flags and packages
//
// Its exit status is go test's.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// defaultArgs are README's test command's: every module of the workspace.
var defaultArgs = []string{"-race", "-count=1", "./...", "./redisstore/...", "./otelsecurehttp/..."}

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		args = defaultArgs
	}
	cmd := exec.Command("go", append([]string{"test", "-json"}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testall:", err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testall:", err)
		os.Exit(2)
	}
	r := newReport(os.Stdout)
	if err := r.read(out); err != nil {
		fmt.Fprintln(os.Stderr, "testall:", err)
	}
	err = cmd.Wait()
	r.summary()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.ExitCode())
	case err != nil:
		fmt.Fprintln(os.Stderr, "testall:", err)
		os.Exit(2)
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// skip is a skipped test and what it said.
type skip struct {
	pkg, test, reason string
}

// report prints what go test would, test by test only for failures, and
// keeps the skipped tests for the summary.
type report struct {
	w       io.Writer
	outputs map[string][]string // "pkg test" -> its output so far
	skips   []skip
	failed  int
}

func newReport(w io.Writer) *report {
	return &report{w: w, outputs: make(map[string][]string)}
}

func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not an event: a line of go's own, such as a build error.
			fmt.Fprintln(r.w, sc.Text())
			continue
		}
		r.event(e)
	}
	return sc.Err()
}

func (r *report) event(e event) {
	key := e.Package + " " + e.Test
	switch e.Action {
	case "output", "build-output":
		r.outputs[key] = append(r.outputs[key], e.Output)
		if e.Test == "" && e.Action == "build-output" {
			fmt.Fprint(r.w, e.Output)
		}
	case "skip":
		if e.Test != "" {
			r.skips = append(r.skips, skip{e.Package, e.Test, skipReason(r.outputs[key])})
		}
		delete(r.outputs, key)
	case "pass":
		if e.Test == "" {
			fmt.Fprintf(r.w, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
		}
		delete(r.outputs, key)
	case "fail":
		r.failed++
		for _, line := range r.outputs[key] {
			fmt.Fprint(r.w, line)
		}
		if e.Test == "" {
			fmt.Fprintf(r.w, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
		}
		delete(r.outputs, key)
	}
}

// skipReason is what a skipped test printed after its "--- SKIP" line: the
// message of t.Skip, trimmed of its file:line prefix.
func skipReason(lines []string) string {
	var reason []string
	after := false
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "--- SKIP") {
			after = true
			continue
		}
		if !after || t == "" {
			continue
		}
		if _, msg, ok := strings.Cut(t, ": "); ok && strings.Contains(t[:len(t)-len(msg)], ".go:") {
			t = msg
		}
		reason = append(reason, t)
	}
	if len(reason) == 0 {
		return "(no reason given)"
	}
	return strings.Join(reason, " ")
}

// summary lists the skipped tests, grouped by reason, so that a missing
// peer reads as one line with the tests it cost.
func (r *report) summary() {
	if len(r.skips) == 0 {
		fmt.Fprintln(r.w, "testall: no test was skipped")
		return
	}
	byReason := map[string][]string{}
	for _, s := range r.skips {
		byReason[s.reason] = append(byReason[s.reason], s.pkg+"."+s.test)
	}
	reasons := make([]string, 0, len(byReason))
	for k := range byReason {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	fmt.Fprintf(r.w, "testall: %d tests were skipped and did not run:\n", len(r.skips))
	for _, reason := range reasons {
		tests := byReason[reason]
		sort.Strings(tests)
		fmt.Fprintf(r.w, "  %s\n    %d: %s\n", reason, len(tests), strings.Join(tests, ", "))
	}
}
