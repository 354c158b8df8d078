// Command securehttp is the companion tool of package securehttp.
//
// Usage:
//
//	securehttp demo [--serve] [--for DURATION]
//	securehttp pins [--cacert FILE] [--json] https://host[:port]/
//	securehttp get [options] URL
//	securehttp version
//	securehttp help [COMMAND]
//
// demo runs the library's guarantees end to end, offline: a TLS API server
// with a freshly generated CA and a JWT issuer, both in this process on
// 127.0.0.1, and a client that is refused plain HTTP and a wrong pin, gets
// and refreshes its token, recovers from a revoked token and keeps the token
// from a redirect to another host. It prints one line per step. With
// --serve it keeps an API server and an authorization server up on
// 127.0.0.1 and prints what a client needs to call them (URL, root CA
// file, pins, issuer, client credentials) until interrupted, for README's
// quick start and get's examples: a POST echo, redirects to the same host
// and to another, RFC 8414 metadata, and a DPoP-protected endpoint.
//
// pins connects with full validation and prints every certificate of the
// verified chain with its SPKI pin and SHA-256 fingerprint, then a
// paste-ready securehttp.PinSet in Go and in JSON; with --json, the JSON
// alone. It takes the server as an https URL or as host[:port].
//
// get is a curl-like request through securehttp.NewClient, with curl's
// flags: -H, -X, -d, --data-binary, -i, -L, -m/--max-time, --connect-to,
// -f/--fail, --fail-with-body, -o, -s, -S and -w. --cacert replaces the
// system roots, as with curl, and -k is refused; --pin (repeatable) pins
// the URL's host; --token-file sends the token kept in that file, which
// must have mode 0600, to the URL's host and port only; --client-id with
// --issuer or --token-url obtains one with the client credentials grant,
// authenticated by --client-secret-file or --client-key, bound to a key of
// the run with --dpop. No token or secret is ever printed. "securehttp help
// get" lists every option.
//
// Exit codes, curl's where curl has one:
//
//	0    success, whatever the status of the answer without --fail
//	1    any other failure: a network error without a code of its own, a file, -o, a demo step
//	2    usage: a bad command, flag, argument, or file named by a flag; -k
//	6    the host name did not resolve
//	7    the connection was refused
//	22   with --fail or --fail-with-body, a status of 400 or more
//	28   timed out: --max-time ran out, or connecting did
//	35   the TLS handshake failed
//	60   the certificate did not verify (securehttp.ErrWeakKey included)
//	90   pin mismatch (securehttp.ErrPinMismatch)
//	91   the stapled OCSP response says revoked, or is invalid
//	110  plain HTTP refused (securehttp.ErrInsecureScheme)
//	111  no token: the token endpoint failed or refused the client
//	112  refused by --allow-host or --block-private
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/net/idna"
)

const usageText = `usage:
  securehttp demo [--serve] [--for DURATION]
  securehttp pins [--cacert FILE] [--json] https://host[:port]/
  securehttp get [options] URL
  securehttp version
  securehttp help [COMMAND]

Run "securehttp help COMMAND" for the options of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal cancels ctx, which ends a transfer cleanly. Reading
	// stdin (-d @-) does not watch ctx, so the next signal ends the
	// process, as it would in a program that handles none.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand: its runner and its options, for help.
type command struct {
	run  func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
	opts func(stdout, stderr io.Writer) *options
}

func lookup(name string) (command, bool) {
	switch name {
	case "demo":
		return command{runDemo, demoOptions}, true
	case "pins":
		return command{runPins, func(stdout, stderr io.Writer) *options { return pinsOptions(new(pinsFlags), stdout, stderr) }}, true
	case "get":
		return command{runGet, func(stdout, stderr io.Writer) *options { return getOptions(new(getFlags), stdout, stderr) }}, true
	case "version":
		return command{runVersion, versionOptions}, true
	}
	return command{}, false
}

// run is the whole command, minus the process: tests call it in process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		return runHelp(rest, stdout, stderr)
	case "--version", "-version":
		cmd = "version"
	}
	c, ok := lookup(cmd)
	if !ok {
		fmt.Fprintf(stderr, "securehttp: unknown command %q\n%s", cmd, usageText)
		return exitUsage
	}
	return c.run(ctx, rest, stdin, stdout, stderr)
}

// runHelp prints the general usage, or one command's help, to stdout.
func runHelp(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		fmt.Fprint(stdout, usageText)
		return exitOK
	case 1:
		c, ok := lookup(args[0])
		if !ok {
			fmt.Fprintf(stderr, "securehttp help: unknown command %q\n%s", args[0], usageText)
			return exitUsage
		}
		c.opts(stdout, stderr).help()
		return exitOK
	}
	fmt.Fprintf(stderr, "securehttp help: unexpected argument %q: help takes at most one command name\n", args[1])
	return exitUsage
}

func versionOptions(stdout, stderr io.Writer) *options {
	return newOptions("version", "version", "Prints the version of this build: module version, commit and Go release.", stdout, stderr)
}

// runVersion prints what the build recorded about itself.
func runVersion(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	o := versionOptions(stdout, stderr)
	positional, code, ok := o.parse(args)
	if !ok {
		return code
	}
	if len(positional) > 0 {
		return o.refuse(positional[0], "version takes no arguments")
	}
	fmt.Fprintln(stdout, versionLine())
	return exitOK
}

// versionLine reads the module version and the VCS stamp of the binary.
func versionLine() string {
	version, commit, modified := "(devel)", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" {
			version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	line := "securehttp " + version
	if commit != "" {
		line += " commit " + commit[:min(len(commit), 12)]
		if modified {
			line += " (modified)"
		}
	}
	return line + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}

// options is a command's flag set, where a flag may have a curl-style short
// name ("-o") and a long one ("--output"). Its help, on stdout, spells each
// flag as the usage line does.
type options struct {
	fs      *flag.FlagSet
	name    string // "get"
	usage   string // "get [options] URL"
	about   string
	entries []optEntry
	footer  func(io.Writer) // prints what follows the options, if set
	stdout  io.Writer
	stderr  io.Writer
}

type optEntry struct {
	short, long, arg, help string
}

func newOptions(name, usage, about string, stdout, stderr io.Writer) *options {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by parse, help by help
	fs.Usage = func() {}
	return &options{fs: fs, name: name, usage: usage, about: about, stdout: stdout, stderr: stderr}
}

// add registers fn under the short and long names (either may be empty);
// arg is the value's placeholder, empty for a switch.
func (o *options) add(short, long, arg, help string, value flag.Value) {
	for _, n := range []string{short, long} {
		if n != "" {
			o.fs.Var(value, n, help)
		}
	}
	o.entries = append(o.entries, optEntry{short, long, arg, help})
}

func (o *options) str(p *string, short, long, arg, help string) {
	o.add(short, long, arg, help, (*stringValue)(p))
}

func (o *options) boolean(p *bool, short, long, help string) {
	o.add(short, long, "", help, (*boolValue)(p))
}

func (o *options) fn(short, long, arg, help string, f func(string) error) {
	o.add(short, long, arg, help, funcValue(f))
}

// help prints the usage line, what the command does and its options.
func (o *options) help() {
	w := o.stdout
	fmt.Fprintf(w, "usage: securehttp %s\n\n%s\n", o.usage, o.about)
	if o.footer != nil {
		defer o.footer(w)
	}
	if len(o.entries) == 0 {
		return
	}
	fmt.Fprint(w, "\noptions:\n")
	for _, e := range o.entries {
		var names []string
		if e.short != "" {
			names = append(names, "-"+e.short)
		}
		if e.long != "" {
			names = append(names, "--"+e.long)
		}
		spec := strings.Join(names, ", ")
		if e.arg != "" {
			spec += " " + e.arg
		}
		fmt.Fprintf(w, "  %s\n", spec)
		for line := range strings.SplitSeq(e.help, "\n") {
			fmt.Fprintf(w, "        %s\n", line)
		}
	}
}

// parse reads flags placed before or after the positional arguments. It
// returns the positional arguments, or the exit code when the command
// should stop: 0 after -h, which prints the help on stdout, 2 after a bad
// flag, reported on stderr.
func (o *options) parse(args []string) (positional []string, code int, ok bool) {
	positional, err := parseInterspersed(o.fs, expandShortFlags(o.fs, args))
	switch {
	case errors.Is(err, flag.ErrHelp):
		o.help()
		return nil, exitOK, false
	case err != nil:
		fmt.Fprintf(o.stderr, "securehttp %s: %v\nRun \"securehttp help %s\" for its options.\n", o.name, err, o.name)
		return nil, exitUsage, false
	}
	return positional, exitOK, true
}

// refuse reports an unexpected argument and why it is refused.
func (o *options) refuse(arg, why string) int {
	fmt.Fprintf(o.stderr, "securehttp %s: unexpected argument %q: %s\nusage: securehttp %s\n", o.name, arg, why, o.usage)
	return exitUsage
}

// stringValue, boolValue and funcValue are flag.Values shared by a short
// and a long name.
type stringValue string

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string {
	if s == nil {
		return ""
	}
	return string(*s)
}

type boolValue bool

func (b *boolValue) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true or false")
	}
	*b = boolValue(x)
	return nil
}
func (b *boolValue) String() string   { return strconv.FormatBool(b != nil && bool(*b)) }
func (b *boolValue) IsBoolFlag() bool { return true }

type funcValue func(string) error

func (f funcValue) Set(v string) error { return f(v) }
func (f funcValue) String() string     { return "" }

// parseInterspersed parses flags placed before or after the positional
// arguments, as curl users expect ("get URL -o file"); the flag package
// alone stops at the first positional argument. Everything after "--" is
// positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// loadRoots reads the PEM certificates of a --cacert file into a new pool.
// An empty path means nil: the system roots.
func loadRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--cacert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--cacert: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// parseAbsoluteURL checks that raw is an absolute URL with a host. The
// scheme is left to the library, which refuses anything but https with
// ErrInsecureScheme; a missing scheme is a usage error, not a guess.
func parseAbsoluteURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute URL: write https://host[:port]/path", redactRaw(raw))
	}
	if err := asciiHost(u); err != nil {
		return nil, err
	}
	return u, nil
}

// asciiHost rewrites u's host in the IDNA ASCII form that net/http dials,
// so that pins, the token's host and redirect hops compare with what is
// dialled. Given a Unicode host, net/http's HTTP/2 pool (go1.26) redials
// in a loop until the request's deadline.
func asciiHost(u *url.URL) error {
	if isASCII(u.Host) {
		return nil
	}
	ascii, err := idna.Lookup.ToASCII(u.Hostname())
	if err != nil {
		return fmt.Errorf("%q is not a valid host name: %w", u.Hostname(), err)
	}
	if port := u.Port(); port != "" {
		ascii = net.JoinHostPort(ascii, port)
	}
	u.Host = ascii
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// redactRaw is a URL as typed, for an error message: cut before its query
// or fragment and without userinfo, which may carry secrets, as redactURL
// renders a parsed one.
func redactRaw(raw string) string {
	s, _, _ := strings.Cut(raw, "?")
	s, _, _ = strings.Cut(s, "#")
	start := 0
	if i := strings.Index(s, "//"); i >= 0 {
		start = i + 2
	}
	end := len(s)
	if j := strings.IndexByte(s[start:], '/'); j >= 0 {
		end = start + j
	}
	if k := strings.LastIndexByte(s[start:end], '@'); k >= 0 {
		s = s[:start] + s[start+k+1:]
	}
	return s
}

// errText returns err's message without the library's "securehttp: "
// prefix and without the *url.Error prefix that net/http adds ("Get \"https://...\": "), which repeats the URL, query
// string included, that the user just typed. Its control characters are
// escaped: an error may quote the server, such as the names in a
// certificate that does not match, and it is printed to a terminal.
func errText(err error) string {
	if uerr, ok := errors.AsType[*url.Error](err); ok {
		err = uerr.Err
	}
	// The command names itself already.
	return escapeControls(strings.TrimPrefix(err.Error(), "securehttp: "))
}
