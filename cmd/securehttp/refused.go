package main

// Flags that curl users reach for and that securehttp refuses, each with
// the way to do what they wanted, rather than the flag package's "flag
// provided but not defined".

import "fmt"

// refusedFlags records the refused flags given.
type refusedFlags struct {
	insecure bool
	secret   bool // --client-secret, whose value is never kept or printed
}

// addInsecure registers -k and --insecure.
func (f *refusedFlags) addInsecure(o *options) {
	o.boolean(&f.insecure, "k", "insecure", "refused: verification is never turned off. Trust a private CA with\n"+
		"--cacert FILE, and pin its key with --pin (\"securehttp pins\" prints the pins)")
}

// addClientSecret registers --client-secret, which would put the secret
// in ps's output and the shell's history.
func (f *refusedFlags) addClientSecret(o *options) {
	o.fn("", "client-secret", "SECRET", "refused: a secret on the command line shows in ps and in the shell's\n"+
		"history; use --client-secret-file", func(string) error {
		f.secret = true
		return nil
	})
}

// check reports the first refused flag given, in one line, and returns
// exitUsage; or it returns false when none was given.
func (f *refusedFlags) check(o *options) (int, bool) {
	var why string
	switch {
	case f.insecure:
		why = "-k/--insecure is refused: verification is never turned off; trust a private CA with --cacert FILE and pin its key with --pin"
	case f.secret:
		why = "--client-secret is refused: the secret would show in ps and in the shell's history; put it in a file only you can read and use --client-secret-file FILE (- reads stdin)"
	default:
		return exitOK, false
	}
	fmt.Fprintf(o.stderr, "securehttp %s: %s\n", o.name, why)
	return exitUsage, true
}
