package main

import (
	"flag"
	"strings"
)

// expandShortFlags splits one-letter switches run together, as curl users
// type them ("-fsSL"), into one argument each, which the flag package
// alone reads as a flag named "fsSL". An argument is split only if every
// letter names a switch; the value of a flag and everything after "--" are
// left as they are.
func expandShortFlags(fs *flag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		if a == "--" {
			return append(out, args[i+1:]...)
		}
		if len(a) < 2 || a[0] != '-' || strings.Contains(a, "=") {
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if f := fs.Lookup(name); f != nil {
			if !isSwitch(f) && i+1 < len(args) {
				// The next argument is this flag's value.
				i++
				out = append(out, args[i])
			}
			continue
		}
		if strings.HasPrefix(a, "--") || !allSwitches(fs, name) {
			continue // left to the parser, which reports it
		}
		out = out[:len(out)-1]
		for _, c := range name {
			out = append(out, "-"+string(c))
		}
	}
	return out
}

// isSwitch reports whether f takes no value.
func isSwitch(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// allSwitches reports whether every letter of s is a one-letter switch.
func allSwitches(fs *flag.FlagSet, s string) bool {
	for _, c := range s {
		f := fs.Lookup(string(c))
		if f == nil || !isSwitch(f) {
			return false
		}
	}
	return true
}
