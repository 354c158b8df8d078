//go:build unix

package readme

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestTestingGuideRuns: each test function that docs/testing.md shows is,
// byte for byte, the body of an Example of securehttptest, which go test
// runs and whose output it checks; and each such Example is shown. So the
// guide's tests run as written.
func TestTestingGuideRuns(t *testing.T) {
	t.Parallel()
	examples := read(t, filepath.Join("securehttptest", "example_test.go"))
	const start = "\tt := testutil.NewExampleT() // in a test, the test's t\n\tdefer t.Done()\n\n"
	shown := 0
	for _, b := range goBlock.FindAllSubmatch(read(t, filepath.Join("docs", "testing.md")), -1) {
		header, rest, _ := bytes.Cut(b[1], []byte("\n"))
		if !bytes.HasPrefix(header, []byte("func Test")) {
			continue
		}
		body, ok := bytes.CutSuffix(rest, []byte("}\n"))
		if !ok || len(bytes.TrimSpace(body)) == 0 {
			t.Errorf("docs/testing.md: %s is not a function with a body", header)
			continue
		}
		// The whole body of an example, which prints after a blank line.
		if !bytes.Contains(examples, append(append([]byte(start), body...), '\n')) {
			t.Errorf("docs/testing.md: the body of %s is not the body of an Example of securehttptest/example_test.go:\n%s", header, body)
		}
		shown++
	}
	if n := bytes.Count(examples, []byte(start)); shown != n {
		t.Errorf("docs/testing.md shows %d tests, want one for each of the %d Examples of securehttptest", shown, n)
	}
}
