package main

import (
	"flag"
	"io"
	"slices"
	"testing"
)

// TestExpandShortFlags: one-letter switches run together, as curl users
// type them (-fsSL), are read as one each; a value is never split, be it
// the value of a flag or a positional argument after "--".
func TestExpandShortFlags(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, n := range []string{"f", "s", "S", "L", "i"} {
		fs.Bool(n, false, "")
	}
	fs.String("o", "", "")
	fs.String("d", "", "")
	fs.String("max-time", "", "")
	tests := []struct {
		args, want []string
	}{
		{[]string{"-fsSL", "URL"}, []string{"-f", "-s", "-S", "-L", "URL"}},
		{[]string{"URL", "-sS"}, []string{"URL", "-s", "-S"}},
		{[]string{"-s", "URL"}, []string{"-s", "URL"}},
		{[]string{"-d", "-fsS", "URL"}, []string{"-d", "-fsS", "URL"}},               // a flag's value
		{[]string{"-o", "-sS", "-sS"}, []string{"-o", "-sS", "-s", "-S"}},            // a value, then switches
		{[]string{"--max-time", "-sS", "URL"}, []string{"--max-time", "-sS", "URL"}}, // a long flag's value
		{[]string{"-o=x", "-sS"}, []string{"-o=x", "-s", "-S"}},                      // a value given with =
		{[]string{"--", "-sS"}, []string{"--", "-sS"}},                               // positional
		{[]string{"-sx", "URL"}, []string{"-sx", "URL"}},                             // -x is no switch: left to the parser
		{[]string{"-so", "file"}, []string{"-so", "file"}},                           // -o takes a value: left whole
		{[]string{"--fail", "-"}, []string{"--fail", "-"}},
	}
	for _, tt := range tests {
		if got := expandShortFlags(fs, tt.args); !slices.Equal(got, tt.want) {
			t.Errorf("expandShortFlags(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}
