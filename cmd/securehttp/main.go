// Command securehttp is the companion tool of package securehttp.
//
// Usage:
//
//	securehttp demo
//	securehttp pins [--cacert FILE] https://host[:port]/
//	securehttp get [--cacert FILE] [--pin P]... [--token-file F] [-o FILE] [-v] URL
//
// demo runs the library's guarantees end to end, offline: a TLS API server
// with a freshly generated CA and a JWT issuer, both in this process on
// 127.0.0.1, and a client that is refused plain HTTP and a wrong pin, gets
// and refreshes its token, recovers from a revoked token and keeps the token
// from a redirect to another host. It prints one line per step.
//
// pins connects with full validation and prints every certificate of the
// verified chain with its SPKI pin and SHA-256 fingerprint, then a
// paste-ready securehttp.PinSet in Go and in JSON.
//
// get is a curl-like GET through securehttp.NewClient. --cacert replaces the
// system roots, as with curl; --pin (repeatable) pins the URL's host;
// --token-file sends the token kept in that file, which must have mode 0600,
// to the URL's host only; -o writes the body to a file, with a progress bar
// when stderr is a terminal. No token is ever printed.
//
// Exit codes:
//
//	0  success
//	1  any other failure: network, token, file or demo step
//	2  usage: bad command, flag, argument, --cacert file or pin
//	3  plain HTTP refused (securehttp.ErrInsecureScheme)
//	4  TLS failure: the chain, host name, key size, OCSP staple or handshake
//	5  pin mismatch (securehttp.ErrPinMismatch)
//	6  HTTP error: the server answered with a status of 400 or more
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"

	"github.com/securehttp/securehttp"
)

const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitInsecure = 3
	exitTLS      = 4
	exitPin      = 5
	exitHTTP     = 6
)

const usageText = `usage:
  securehttp demo
  securehttp pins [--cacert FILE] https://host[:port]/
  securehttp get [--cacert FILE] [--pin P]... [--token-file F] [-o FILE] [-v] URL

Run "securehttp COMMAND -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command, minus the process: tests call it in process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "pins":
		return runPins(ctx, rest, stdout, stderr)
	case "get":
		return runGet(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "securehttp: unknown command %q\n%s", cmd, usageText)
		return exitUsage
	}
}

// newFlagSet returns a flag set that reports errors to stderr and lets the
// caller choose the exit code.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: securehttp %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

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

// flagExit maps a flag parsing error to an exit code: -h is not a failure.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
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
		return nil, fmt.Errorf("%q is not an absolute URL: write https://host[:port]/path", raw)
	}
	return u, nil
}

// exitCode classifies a request error. It looks only at error values and
// types, never at messages. A pin mismatch is tested before TLS failures
// because it is one too: the handshake is aborted.
func exitCode(err error) int {
	switch {
	case errors.Is(err, securehttp.ErrInsecureScheme):
		return exitInsecure
	case errors.Is(err, securehttp.ErrPinMismatch):
		return exitPin
	case isTLSFailure(err):
		return exitTLS
	}
	return exitError
}

// isTLSFailure reports whether err is a failed handshake or a refused
// certificate.
func isTLSFailure(err error) bool {
	if errors.Is(err, securehttp.ErrWeakKey) || errors.Is(err, securehttp.ErrRevoked) ||
		errors.Is(err, securehttp.ErrOCSPStaple) || errors.Is(err, http.ErrSchemeMismatch) {
		return true
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return true // the server does not speak TLS
	}
	if _, ok := errors.AsType[tls.AlertError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.SystemRootsError](err); ok {
		return true
	}
	// An alert from the server (handshake_failure, protocol_version, ...)
	// reaches the client as a *net.OpError whose error type crypto/tls does
	// not export; crypto/tls marks it with this Op, a field rather than a
	// message.
	if opErr, ok := errors.AsType[*net.OpError](err); ok && opErr.Op == "remote error" {
		return true
	}
	return false
}

// errText returns err's message without the *url.Error prefix that
// net/http adds ("Get \"https://...\": "), which repeats the URL, query
// string included, that the user just typed.
func errText(err error) string {
	if uerr, ok := errors.AsType[*url.Error](err); ok {
		return uerr.Err.Error()
	}
	return err.Error()
}
