package testutil

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// ExampleT stands in for the *testing.T of a test in an Example function,
// which has none, so that an example reads as the test a user writes. It
// prints a failure to standard output, where the example's output check
// sees it; Fatal and Fatalf then panic, which fails the run. Done runs the
// cleanups, last registered first. Its log is discarded: examples print
// only what their Output comment shows. It is safe for concurrent use.
type ExampleT struct {
	// TB is never set: a method not defined below is not for examples, and
	// calling it panics.
	testing.TB

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// NewExampleT returns an ExampleT; defer its Done.
func NewExampleT() *ExampleT { return &ExampleT{} }

// Done runs the cleanups, last registered first.
func (t *ExampleT) Done() {
	t.mu.Lock()
	cleanups := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

func (t *ExampleT) Helper()             {}
func (t *ExampleT) Name() string        { return "Example" }
func (t *ExampleT) Log(...any)          {}
func (t *ExampleT) Logf(string, ...any) {}

func (t *ExampleT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *ExampleT) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *ExampleT) Error(args ...any) { t.fail(fmt.Sprint(args...)) }

func (t *ExampleT) Errorf(format string, args ...any) { t.fail(fmt.Sprintf(format, args...)) }

func (t *ExampleT) Fatal(args ...any) {
	t.fail(fmt.Sprint(args...))
	panic("example failed")
}

func (t *ExampleT) Fatalf(format string, args ...any) {
	t.fail(fmt.Sprintf(format, args...))
	panic("example failed")
}

func (t *ExampleT) fail(msg string) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	fmt.Println("FAIL:", msg)
}

// TempDir returns a new directory, removed by Done.
func (t *ExampleT) TempDir() string {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
