package main

// get's token flags: a token kept in a file, or one that get obtains itself
// with the OAuth 2.0 client credentials grant, as a program using the
// library would, through securehttp.Bearer.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"syscall"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/pemkey"
)

// tokenFlags are get's client credentials flags.
type tokenFlags struct {
	clientID, secretFile, keyFile, keyID, issuer, tokenURL string
	scopes, resources                                      []string
	dpop                                                   bool
}

// maxSecretFile bounds what get reads of a secret or key file.
const maxSecretFile = 1 << 20

func addTokenOptions(o *options, f *tokenFlags) {
	o.str(&f.clientID, "", "client-id", "ID", "obtain a token with the OAuth 2.0 client credentials grant, as this client, and\n"+
		"send it to the URL's host and port only; needs --issuer or --token-url")
	o.str(&f.secretFile, "", "client-secret-file", "FILE", "authenticate with the client secret kept in FILE (client_secret_basic), readable\n"+
		"by you only; - reads it from stdin. The secret is never printed")
	o.str(&f.keyFile, "", "client-key", "FILE", "authenticate with a client assertion signed by the private key in FILE\n"+
		"(private_key_jwt; PEM, not encrypted, readable by you only)")
	o.str(&f.keyID, "", "client-key-id", "KID", "the kid of --client-key, when the authorization server needs one")
	o.str(&f.issuer, "", "issuer", "URL", "find the token endpoint in this issuer's metadata (RFC 8414, then OpenID Connect\n"+
		"Discovery)")
	o.str(&f.tokenURL, "", "token-url", "URL", "the token endpoint itself, without discovery")
	o.fn("", "scope", "SCOPE", "ask for this scope; repeat it, or separate scopes with spaces", func(v string) error {
		f.scopes = append(f.scopes, strings.Fields(v)...)
		return nil
	})
	o.fn("", "resource", "URI", "ask for a token for this resource (RFC 8707); repeatable", func(v string) error {
		f.resources = append(f.resources, v)
		return nil
	})
	o.boolean(&f.dpop, "", "dpop", "bind the token to a key made for this run (DPoP, RFC 9449): it is useless to anyone\n"+
		"who copies it")
}

// given returns the client credentials flags given, --client-id aside.
func (f *tokenFlags) given() []string {
	var names []string
	for _, g := range []struct {
		name string
		set  bool
	}{
		{"--client-secret-file", f.secretFile != ""}, {"--client-key", f.keyFile != ""}, {"--client-key-id", f.keyID != ""},
		{"--issuer", f.issuer != ""}, {"--token-url", f.tokenURL != ""}, {"--scope", len(f.scopes) > 0},
		{"--resource", len(f.resources) > 0}, {"--dpop", f.dpop},
	} {
		if g.set {
			names = append(names, g.name)
		}
	}
	return names
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// check refuses the combinations of flags that cannot work, before any
// file is read. tokenFile is --token-file, clientCert whether --cert was
// given, stdinTaken whether -d or --data-binary reads stdin.
func (f *tokenFlags) check(tokenFile string, clientCert, stdinTaken bool) error {
	given := f.given()
	if f.clientID == "" && len(given) > 0 {
		return usagef("%s: for a token obtained with --client-id, which is missing", strings.Join(given, ", "))
	}
	if f.clientID == "" {
		return nil
	}
	switch {
	case tokenFile != "":
		return usagef("--token-file and --client-id contradict each other: send the token of the file, or obtain one")
	case f.issuer == "" && f.tokenURL == "":
		return usagef("--client-id needs the authorization server: --issuer URL (its metadata names the token endpoint) or --token-url URL")
	case f.secretFile != "" && f.keyFile != "":
		return usagef("--client-secret-file and --client-key are two ways to authenticate: choose one")
	case f.secretFile == "" && f.keyFile == "" && !clientCert:
		return usagef("--client-id needs a way to authenticate: --client-secret-file FILE, --client-key FILE, or a client certificate with --cert")
	case f.keyID != "" && f.keyFile == "":
		return usagef("--client-key-id names the key of --client-key: add it")
	case f.secretFile == "-" && stdinTaken:
		return usagef("--client-secret-file - and -d @- both read stdin: keep the secret in a file")
	}
	for _, u := range []struct{ flag, value string }{{"--issuer", f.issuer}, {"--token-url", f.tokenURL}} {
		if u.value == "" {
			continue
		}
		if p, err := url.Parse(u.value); err != nil || p.Scheme != "https" || p.Host == "" || p.User != nil {
			return usagef("%s %q: want an https URL, such as https://auth.example.com", u.flag, redactRaw(u.value))
		}
	}
	if p, _ := url.Parse(f.issuer); p != nil && (p.RawQuery != "" || p.ForceQuery || p.Fragment != "") {
		return usagef("--issuer %q: an issuer has no query or fragment (RFC 8414)", redactRaw(f.issuer))
	}
	return nil
}

// explain rewords a configuration error of the library about a client
// credentials field as a mistake in the flag that set it, or returns
// false. It goes by the error's Field, never its text.
func (f *tokenFlags) explain(err error) (string, bool) {
	ce, ok := errors.AsType[*securehttp.ConfigError](err)
	if !ok {
		return "", false
	}
	for _, m := range []struct{ field, flag string }{
		{"Bearer.ClientCredentials.Scopes", "--scope"},
		{"Bearer.ClientCredentials.Resource", "--resource"},
		{"Bearer.ClientCredentials.Key", "--client-key"},
		{"Bearer.ClientCredentials.ClientID", "--client-id"},
		{"Bearer.DPoP", "--dpop"},
	} {
		if strings.HasPrefix(ce.Field, m.field) {
			if ce.Value != "" {
				return fmt.Sprintf("%s %q: %s", m.flag, ce.Value, errText(ce.Err)), true
			}
			return fmt.Sprintf("%s: %s", m.flag, errText(ce.Err)), true
		}
	}
	return "", false
}

// bearer returns the Bearer for the URL u: the token of --token-file, or
// one obtained with the client credentials flags; nil when neither was
// given. Hosts is the URL's host and port only: with -L, a redirect to
// another port of the host, which may be another service, gets no token.
// A *usageError is a mistake on the command line.
func (f *tokenFlags) bearer(ctx context.Context, u *url.URL, tokenFile string, stdin io.Reader) (*securehttp.Bearer, error) {
	port := u.Port()
	if port == "" {
		port = "443"
	}
	hosts := []string{net.JoinHostPort(u.Hostname(), port)}
	if tokenFile != "" {
		store, err := securehttp.NewFileStore(tokenFile)
		if err != nil {
			return nil, usagef("--token-file: %v", err)
		}
		// Read the file once up front, so that a missing, empty or
		// unreadable token file (one that others can read, say) is
		// reported before any connection is made.
		tok, err := store.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		if tok.Value == "" {
			return nil, fmt.Errorf("--token-file: %s holds no token", tokenFile)
		}
		return &securehttp.Bearer{Store: store, Hosts: hosts}, nil
	}
	if f.clientID == "" {
		return nil, nil
	}
	cc := &securehttp.ClientCredentials{
		Issuer:   f.issuer,
		TokenURL: f.tokenURL,
		ClientID: f.clientID,
		KeyID:    f.keyID,
		Scopes:   f.scopes,
		Resource: f.resources,
	}
	if f.secretFile != "" {
		data, err := readPrivateFile("--client-secret-file", f.secretFile, stdin)
		if err != nil {
			return nil, err
		}
		// A file written by echo or an editor ends with a newline, which
		// is no part of the secret.
		cc.ClientSecret = strings.TrimRight(string(data), "\r\n")
		if cc.ClientSecret == "" {
			return nil, usagef("--client-secret-file %s holds no secret", f.secretFile)
		}
	}
	if f.keyFile != "" {
		data, err := readPrivateFile("--client-key", f.keyFile, stdin)
		if err != nil {
			return nil, err
		}
		key, err := pemkey.Signer(data)
		if err != nil {
			return nil, usagef("--client-key %s: %v", f.keyFile, err)
		}
		cc.Key = key
	}
	b := &securehttp.Bearer{ClientCredentials: cc, Hosts: hosts}
	if f.dpop {
		b.DPoP = &securehttp.DPoP{} // a key generated for this run
	}
	return b, nil
}

// readPrivateFile reads a secret or a key from path, or from stdin for "-".
func readPrivateFile(flagName, path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return readPrivate(flagName, path, stdin, false)
	}
	return readPrivatePath(flagName, path)
}

// readPrivatePath reads a secret or a key from the file path. A regular
// file that its group or others may access is refused, as ssh refuses
// such a key: the secret is no longer the client's alone. A FIFO (a named
// one, or a shell's <(command)) is opened without blocking, so that one no
// process writes to is an error rather than a wait that neither
// --max-time nor Ctrl-C ends, as -o's FIFO with no reader is.
func readPrivatePath(flagName, path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, usagef("%s: %v", flagName, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, usagef("%s: %v", flagName, err)
	}
	if perm := info.Mode().Perm(); info.Mode().IsRegular() && perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, usagef("%s %s can be read by others (mode %#o): chmod 600 %s", flagName, path, perm, path)
	}
	return readPrivate(flagName, path, f, info.Mode()&fs.ModeNamedPipe != 0)
}

// readPrivate reads at most maxSecretFile bytes of r, which path names.
func readPrivate(flagName, path string, r io.Reader, fifo bool) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSecretFile+1))
	if err != nil {
		return nil, usagef("%s %s: %v", flagName, path, err)
	}
	if len(data) > maxSecretFile {
		return nil, usagef("%s %s: more than %d bytes", flagName, path, maxSecretFile)
	}
	if fifo && len(data) == 0 {
		// Opened without blocking, a FIFO that no process has open for
		// writing reads as empty at once.
		return nil, usagef("%s %s is a FIFO with nothing in it and no process writing to it", flagName, path)
	}
	return data, nil
}
