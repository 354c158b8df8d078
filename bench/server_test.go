package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/securehttptest"
)

// The child process is the test binary itself, started with these variables:
// serverEnv makes TestMain serve instead of running benchmarks, and the other
// two carry the server's certificate chain and key as PEM.
const (
	serverEnv = "SECUREHTTP_BENCH_SERVER"
	chainEnv  = "SECUREHTTP_BENCH_CHAIN"
	keyEnv    = "SECUREHTTP_BENCH_KEY"
)

// Host names of the one server. Every client dials 127.0.0.1 whatever the
// name (see fixture.dial), and the server picks its TLS configuration by the
// name sent in SNI, so that the same server and the same client code give
// HTTP/1.1 or HTTP/2 without touching any client's TLS settings (securehttp
// offers none to touch).
const (
	hostH1   = "h1.bench.test"   // ALPN offers http/1.1 only; session tickets on
	hostH2   = "h2.bench.test"   // ALPN offers h2 and http/1.1
	hostFull = "full.bench.test" // http/1.1, session tickets off: every handshake is a full one
)

// tokenTail is how many of a token's last characters (its signature) GET
// /auth echoes: enough to tell two tokens apart.
const tokenTail = 16

// poolSize is MaxIdleConnsPerHost for every client, enough for 64
// concurrent requests to keep their HTTP/1.1 connections.
const poolSize = 64

// responseBody is what GET /get answers: a small JSON document, the typical
// API reply.
var responseBody = []byte(`{"id":"0123456789abcdef","name":"securehttp benchmark","tags":["a","b","c"],"ok":true,"n":42}` + "\n")

func TestMain(m *testing.M) {
	if os.Getenv(fleetEnv) != "" {
		if err := fleetChild(); err != nil {
			fmt.Fprintln(os.Stderr, "bench fleet replica:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(serverEnv) != "" {
		if err := serveChild(); err != nil {
			fmt.Fprintln(os.Stderr, "bench server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if fix != nil {
		fix.stop()
	}
	os.Exit(code)
}

// fixture is the running server and what clients need to trust it.
type fixture struct {
	addr    string         // 127.0.0.1:port
	roots   *x509.CertPool // the test root only
	rootPEM string         // the same, as PEM
	leafPin string         // "sha256/..." of the leaf's key
	cmd     *exec.Cmd
	stdin   io.WriteCloser // the child exits when this is closed
	stdout  *bufio.Reader
}

// The one server of this test binary, started by the first benchmark that
// needs it and stopped by TestMain.
var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func server(b *testing.B) *fixture {
	b.Helper()
	fixOnce.Do(func() { fix, fixErr = startServer(b) })
	if fixErr != nil {
		b.Fatal(fixErr)
	}
	return fix
}

func startServer(b *testing.B) (*fixture, error) {
	pki, err := newPKI(b)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), serverEnv+"=1", chainEnv+"="+pki.chainPEM, keyEnv+"="+pki.keyPEM)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	f := &fixture{roots: pki.roots, rootPEM: pki.rootPEM, leafPin: pki.leafPin, cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}
	line, err := f.stdout.ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		f.stop()
		return nil, fmt.Errorf("bench server did not start: %q, %v", line, err)
	}
	f.addr = addr
	return f, nil
}

func (f *fixture) stop() {
	f.stdin.Close()
	_ = f.cmd.Wait()
}

// dial sends every connection to the server on 127.0.0.1, whatever host name
// the request carries: the names above exist only in SNI and certificates.
// Every client uses it, so dialling costs the same for all of them.
func (f *fixture) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return d.DialContext(ctx, "tcp4", f.addr)
}

// serverStats are the server's counters: connections accepted, requests
// served, and requests that arrived on a resumed TLS session.
type serverStats struct{ conns, requests, resumed int64 }

// stats asks the server for its counters, through the child's stdin and
// stdout rather than HTTP, so that it touches no client's pool.
func (f *fixture) stats() (serverStats, error) {
	if _, err := io.WriteString(f.stdin, "stats\n"); err != nil {
		return serverStats{}, err
	}
	line, err := f.stdout.ReadString('\n')
	if err != nil {
		return serverStats{}, err
	}
	var s serverStats
	_, err = fmt.Sscanf(line, "%d %d %d", &s.conns, &s.requests, &s.resumed)
	return s, err
}

// serveChild is the server process. It reads the certificate from its
// environment, prints the address it listens on, answers "stats" lines on
// stdin with its counters, and exits when stdin is closed, so that it never
// outlives the benchmark process.
func serveChild() error {
	cert, err := tls.X509KeyPair([]byte(os.Getenv(chainEnv)), []byte(os.Getenv(keyEnv)))
	if err != nil {
		return err
	}
	h1 := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	h2 := h1.Clone()
	h2.NextProtos = []string{"h2", "http/1.1"}
	full := h1.Clone()
	full.SessionTicketsDisabled = true
	byName := map[string]*tls.Config{hostH1: h1, hostH2: h2, hostFull: full}
	base := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if c, ok := byName[hello.ServerName]; ok {
				return c, nil
			}
			return nil, fmt.Errorf("unknown server name %q", hello.ServerName)
		},
	}

	var conns, requests, resumed atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			if r.TLS != nil && r.TLS.DidResume {
				resumed.Add(1)
			}
			serveBench(w, r)
		}),
		TLSConfig: base,
		// One HTTP/2 connection carries a whole 1000-request stampede.
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 2000},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0), // handshake EOFs from closed pools
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", ln.Addr())

	go func() {
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			if in.Text() == "stats" {
				fmt.Printf("%d %d %d\n", conns.Load(), requests.Load(), resumed.Load())
			}
		}
		os.Exit(0) // the parent is gone or done
	}()
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveBench handles the benchmark paths:
//
//	GET /get     a small JSON reply
//	GET /auth    the same, but only with a bearer token (403 without), and
//	             the token's last characters in X-Token-Tail
//	PUT /upload  reads the whole body; 400 unless it is X-Size bytes long
func serveBench(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/get":
		w.Header()["Content-Type"] = []string{"application/json"}
		w.Write(responseBody)
	case "/auth":
		auth := r.Header.Get("Authorization")
		if !strings.HasPrefix(auth, "Bearer ey") {
			http.Error(w, "no bearer token", http.StatusForbidden)
			return
		}
		// Which token the request carried, for the stampede to tell the
		// requests that got the refreshed one.
		w.Header()["X-Token-Tail"] = []string{auth[len(auth)-tokenTail:]}
		w.Header()["Content-Type"] = []string{"application/json"}
		w.Write(responseBody)
	case "/upload":
		n, err := io.Copy(io.Discard, r.Body)
		if want, _ := strconv.ParseInt(r.Header.Get("X-Size"), 10, 64); err != nil || n != want {
			http.Error(w, fmt.Sprintf("got %d bytes (%v), want %d", n, err, want), http.StatusBadRequest)
		}
	default:
		http.NotFound(w, r)
	}
}

// pki is a root, an intermediate and a leaf for the bench host names, all
// ECDSA P-256, from a CA of the test kit made fresh for each run: nothing
// on disk to expire.
type pki struct {
	roots    *x509.CertPool
	rootPEM  string // the root, for client processes
	chainPEM string // leaf then intermediate, as the server sends them
	keyPEM   string
	leafPin  string
}

func newPKI(b *testing.B) (*pki, error) {
	ca := securehttptest.NewCA(b)
	leaf := ca.Issue(b, securehttptest.Hosts(hostH1, hostH2, hostFull))
	certFile, keyFile := leaf.Files(b)
	chainPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	return &pki{
		roots:    ca.Pool(),
		rootPEM:  string(ca.RootPEM()),
		chainPEM: string(chainPEM),
		keyPEM:   string(keyPEM),
		leafPin:  leaf.Pin(),
	}, nil
}
