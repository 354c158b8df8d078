package main

// The command's exit codes. Where curl has a code for a failure, get exits
// with curl's, so that a script written around curl reads it the same way;
// the failures curl has no code for get codes from 110 up, above curl's.

import (
	"fmt"
	"io"

	"github.com/securehttp/securehttp"
)

const (
	exitOK          = 0
	exitError       = 1   // any other failure
	exitUsage       = 2   // a bad command, flag, argument or file named by one
	exitResolve     = 6   // curl: could not resolve host
	exitConnect     = 7   // curl: failed to connect to host
	exitHTTP        = 22  // curl: HTTP status of 400 or more, with --fail
	exitTimeout     = 28  // curl: operation timed out
	exitHandshake   = 35  // curl: TLS connect error
	exitCertificate = 60  // curl: the peer's certificate cannot be authenticated
	exitPin         = 90  // curl: the pinned public key did not match
	exitCertStatus  = 91  // curl: certificate status (OCSP) verification failed
	exitInsecure    = 110 // plain HTTP refused: https only
	exitToken       = 111 // no token: the token endpoint failed or refused
	exitEgress      = 112 // refused by --allow-host or --block-private
)

// exitCodeDoc is one line of the exit codes' documentation.
type exitCodeDoc struct {
	code    int
	meaning string
}

// exitCodeTable lists every code get exits with, for get --help; the
// package comment and docs/command.md list the same (a test checks).
func exitCodeTable() []exitCodeDoc {
	return []exitCodeDoc{
		{exitOK, "success, whatever the status of the answer without --fail"},
		{exitError, "any other failure: a network error without a code of its own, a file, -o"},
		{exitUsage, "usage: a bad flag, argument, or file named by a flag; -k"},
		{exitResolve, "the host name did not resolve (curl's 6)"},
		{exitConnect, "the connection was refused (curl's 7)"},
		{exitHTTP, "with --fail or --fail-with-body, a status of 400 or more (curl's 22)"},
		{exitTimeout, "timed out: --max-time ran out, or connecting did (curl's 28)"},
		{exitHandshake, "the TLS handshake failed: an alert, no common version, not TLS (curl's 35)"},
		{exitCertificate, "the certificate did not verify: chain, name, dates or key size (curl's 60)"},
		{exitPin, "no --pin matched the verified chain (curl's 90)"},
		{exitCertStatus, "the stapled OCSP response says revoked, or is invalid (curl's 91)"},
		{exitInsecure, "plain HTTP refused: https only, on every hop"},
		{exitToken, "no token: the token endpoint failed, refused the client, or could not be reached"},
		{exitEgress, "refused by --allow-host or --block-private before connecting"},
	}
}

// writeExitCodes prints the table for get --help.
func writeExitCodes(w io.Writer) {
	fmt.Fprint(w, "\nexit codes (curl's where curl has one):\n")
	for _, e := range exitCodeTable() {
		fmt.Fprintf(w, "  %-4d %s\n", e.code, e.meaning)
	}
}

// exitCode maps a request error to the command's exit status by its class,
// as securehttp.ErrorClass names it from the error's type, never its text.
// A failure at the token endpoint keeps its class when the class names the
// connection's security (a pin, a certificate, the handshake), and is a
// token failure otherwise.
func exitCode(err error) int {
	switch securehttp.ErrorClass(err) {
	case "dns":
		return exitResolve
	case "connection_refused":
		return exitConnect
	case "timeout":
		return exitTimeout
	case "tls":
		return exitHandshake
	case "certificate", "weak_key":
		return exitCertificate
	case "pin_mismatch":
		return exitPin
	case "revoked", "ocsp_staple":
		return exitCertStatus
	case "insecure_scheme":
		return exitInsecure
	case "token_unavailable", "oauth_error":
		return exitToken
	case "host_not_allowed", "blocked_address":
		return exitEgress
	}
	return exitError
}
