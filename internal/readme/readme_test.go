// Package readme checks that the programs in README.md compile, so the
// first code a newcomer copies always works.
package readme

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

func TestQuickStartCompiles(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := goBlock.FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatalf("README.md has no go code block, want the quick start")
	}
	// Build inside the module so that the module's own go.mod resolves the
	// import of the library, offline. Every complete program is checked:
	// the quick start and the OpenTelemetry example.
	programs := 0
	for _, b := range blocks {
		if !bytes.HasPrefix(b[1], []byte("package main\n")) {
			continue
		}
		programs++
		dir, err := os.MkdirTemp(".", "quickstart-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, "main.go"), b[1], 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("go", "vet", "./"+dir).CombinedOutput()
		if err != nil {
			t.Fatalf("a README program does not compile: %v\n%s\n%s", err, out, b[1])
		}
	}
	if programs < 2 {
		t.Errorf("got %d complete programs in README.md, want 2: the quick start and the OpenTelemetry example", programs)
	}
}
