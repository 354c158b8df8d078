package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCmd(t, "demo")
	if code != exitOK {
		t.Errorf("demo exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitOK, out, errOut)
	}
	lines := strings.Split(out, "\n")
	for n := 1; n <= 7; n++ {
		prefix := fmt.Sprintf("✔ %d. ", n)
		if !slicesContainsPrefix(lines, prefix) {
			t.Errorf("demo output has no line starting with %q:\n%s", prefix, out)
		}
	}
	if strings.Contains(out, "✘") {
		t.Errorf("demo output marks a step as failed:\n%s", out)
	}
	// Every JWT starts with the base64 of `{"`: the demo names tokens by
	// their jti and never prints one.
	if strings.Contains(out+errOut, "eyJ") {
		t.Errorf("demo output contains a JWT:\n%s%s", out, errOut)
	}
}

func slicesContainsPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}
