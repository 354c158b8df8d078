package main

// demo --serve: the demo's API and token endpoint kept up on 127.0.0.1 for
// README's quick start, with what a client needs printed as shell lines.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testpki"
)

const (
	// serveClientID is the quick start's client at the demo token endpoint.
	serveClientID = "quickstart"
	// serveLifetime is how long --serve's tokens live: long enough for a
	// newcomer's session, short enough to show a refresh now and then.
	serveLifetime = 10 * time.Minute
)

// serveDemo runs the demo's servers until ctx ends, or for dur when it is
// not zero.
func serveDemo(ctx context.Context, dur time.Duration, stdout, stderr io.Writer) int {
	stdout = &lockedWriter{w: stdout} // the servers log each request
	if dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dur)
		defer cancel()
	}
	s, err := startServe(stdout)
	if err != nil {
		fmt.Fprintf(stderr, "securehttp demo: %v\n", err)
		return exitError
	}
	defer s.close()
	s.print(stdout)
	<-ctx.Done()
	fmt.Fprintln(stdout, "securehttp demo: servers stopped.")
	return exitOK
}

// served is the running --serve scenery.
type served struct {
	dir        string // holds the files below
	rootFile   string // the root CA, for --cacert
	secretFile string // the client secret, for --client-secret-file
	keyFile    string // the client's private key, for --client-key
	pins       []string
	secret     string
	base       string // https://127.0.0.1:PORT, also the issuer
	tokens     *issuer
	srv        *http.Server
	done       chan struct{}
}

func startServe(logTo io.Writer) (_ *served, err error) {
	s := &served{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	root, err := testpki.NewRoot("securehttp demo root", testpki.Options{})
	if err != nil {
		return nil, err
	}
	inter, err := root.NewIntermediate("securehttp demo intermediate", testpki.Options{})
	if err != nil {
		return nil, err
	}
	// The leaf names the address, localhost, where /v1/redirect/other-host
	// leads, and hostAPI, which no resolver knows: the --connect-to example
	// of docs/command.md reaches it by that name. Valid for longer than a
	// client's expiry warning (14 days), so that the demo's clients have
	// nothing to warn of.
	leaf, err := inter.NewLeaf("127.0.0.1", testpki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{hostAPI, "localhost"},
		NotAfter: time.Now().Add(demoLeafLifetime)})
	if err != nil {
		return nil, err
	}
	spare, err := sparePin()
	if err != nil {
		return nil, err
	}
	s.pins = []string{securehttp.SPKIPin(inter.Cert), spare}
	if s.dir, err = os.MkdirTemp("", "securehttp-demo-"); err != nil {
		return nil, err
	}
	s.rootFile = filepath.Join(s.dir, "root.pem")
	if err := os.WriteFile(s.rootFile, root.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	s.secret = hex.EncodeToString(secret)
	// The secret file ends with a newline, as one written by echo does.
	s.secretFile = filepath.Join(s.dir, "client-secret")
	if err := os.WriteFile(s.secretFile, []byte(s.secret+"\n"), 0o600); err != nil {
		return nil, err
	}
	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(clientKey)
	if err != nil {
		return nil, err
	}
	s.keyFile = filepath.Join(s.dir, "client-key.pem")
	if err := os.WriteFile(s.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if s.tokens, err = newIssuer(serveLifetime); err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.base = "https://" + ln.Addr().String()
	dpop := newDPoPChecker()
	auth := &authServer{
		issuer:    s.base,
		tokenURL:  s.base + "/token",
		clientID:  serveClientID,
		secret:    s.secret,
		clientKey: &clientKey.PublicKey,
		tokens:    s.tokens,
		dpop:      dpop,
		seen:      newOnceCache(time.Now),
		now:       time.Now,
	}
	mux := http.NewServeMux()
	(&api{base: s.base, names: []string{"127.0.0.1", "localhost", hostAPI}, tokens: s.tokens, dpop: dpop}).routes(mux)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", auth.metadata)
	mux.HandleFunc("POST /token", auth.token)
	s.srv = &http.Server{
		Handler:           logRequests(logTo, mux),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{testpki.TLSCertificate(leaf, inter)}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		s.srv.ServeTLS(ln, "", "") // returns http.ErrServerClosed on close
	}()
	return s, nil
}

// close stops the server and removes the files; it may be called more
// than once.
func (s *served) close() {
	if s.srv != nil {
		s.srv.Close()
		<-s.done
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// print writes what a client needs, first for a reader, then as shell
// lines to paste.
func (s *served) print(w io.Writer) {
	fmt.Fprintf(w, "securehttp demo: an API and an authorization server on 127.0.0.1, until interrupted (Ctrl-C).\n")
	fmt.Fprintf(w, "  API:      %s/v1/me (needs a token), %s/v1/hello (needs none),\n", s.base, s.base)
	fmt.Fprintf(w, "            %s/v1/dpop (needs a DPoP-bound token), %s/v1/echo (any method: what it got),\n", s.base, s.base)
	fmt.Fprintf(w, "            %s/v1/redirect/same-host and /v1/redirect/other-host (to localhost)\n", s.base)
	fmt.Fprintf(w, "  issuer:   %s (RFC 8414 metadata), token endpoint %s/token: client credentials with\n", s.base, s.base)
	fmt.Fprintf(w, "            client_secret_basic or private_key_jwt; DPoP-bound tokens for a DPoP proof\n")
	fmt.Fprintf(w, "  root CA:  %s\n", s.rootFile)
	fmt.Fprintf(w, "  pins:     %s (the intermediate CA's key), %s (a spare key: the backup)\n", s.pins[0], s.pins[1])
	fmt.Fprintf(w, "\nIn another terminal, in this repository, paste:\n\n")
	for _, kv := range s.env() {
		fmt.Fprintf(w, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	fmt.Fprintf(w, "go run ./examples/quickstart\n")
	fmt.Fprintf(w, "\nor call the API with the command, which gets its own token:\n\n")
	fmt.Fprintf(w, "go run ./cmd/securehttp get %s \"$SECUREHTTP_URL\"\n\n", serveGetFlags)
}

// serveGetFlags are the flags of get that call the demo API with a token,
// as print shows them.
const serveGetFlags = `--cacert "$SECUREHTTP_CACERT" --pin "$SECUREHTTP_PINS" --client-id "$SECUREHTTP_CLIENT_ID" ` +
	`--client-secret-file "$SECUREHTTP_CLIENT_SECRET_FILE" --issuer "$SECUREHTTP_ISSUER"`

// env is what the quick start and get's examples read, in order.
func (s *served) env() [][2]string {
	return [][2]string{
		{"SECUREHTTP_BASE", s.base},
		{"SECUREHTTP_URL", s.base + "/v1/me"},
		{"SECUREHTTP_CACERT", s.rootFile},
		{"SECUREHTTP_PINS", strings.Join(s.pins, ",")},
		{"SECUREHTTP_TOKEN_URL", s.base + "/token"},
		{"SECUREHTTP_CLIENT_ID", serveClientID},
		{"SECUREHTTP_CLIENT_SECRET", s.secret},
		{"SECUREHTTP_ISSUER", s.base},
		{"SECUREHTTP_CLIENT_SECRET_FILE", s.secretFile},
		{"SECUREHTTP_CLIENT_KEY", s.keyFile},
	}
}

// shellQuote quotes v for a POSIX shell.
func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// logRequests prints one line per request: method, path and status, never
// a header or a query string. The path, which the client chose and
// percent-decoding may fill with control characters, is escaped.
func logRequests(w io.Writer, h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: rw, log: func(status int) {
			fmt.Fprintf(w, "  %s %s %s → %d\n", time.Now().Format(time.TimeOnly), r.Method, escapeControls(r.URL.Path), status)
		}}
		h.ServeHTTP(sw, r)
		sw.logOnce(http.StatusOK)
	})
}
