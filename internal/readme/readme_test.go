// Package readme checks that the quick start in README.md compiles, so the
// first code a newcomer copies always works.
package readme

import (
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
	// import of the library, offline.
	dir, err := os.MkdirTemp(".", "quickstart-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), blocks[0][1], 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "vet", "./"+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("the README quick start does not compile: %v\n%s\n%s", err, out, blocks[0][1])
	}
}
