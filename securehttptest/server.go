package securehttptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/securehttp/securehttp"
)

// Server is an HTTPS server on 127.0.0.1, serving HTTP/1.1 and HTTP/2 with
// a certificate from its CA, which asks clients for a certificate and
// verifies any they give. It records every request it receives, and stops
// when the test ends. A Server is safe for concurrent use.
type Server struct {
	// URL is "https://" and Host, without a trailing slash.
	URL string

	// Host is the first host of the server's certificate (127.0.0.1
	// without Hosts) and its port, as Bearer.Hosts takes it to send a
	// token to this server only.
	Host string

	s *server
}

// server is the running state behind a Server.
type server struct {
	ca      *CA
	hosts   []string    // the hosts of its certificate, the first in its URL
	base    *tls.Config // what every certificate is served with
	srv     *httptest.Server
	handler http.Handler

	cert atomic.Pointer[Cert]
	conf atomic.Pointer[tls.Config] // base, serving cert

	mu       sync.Mutex
	requests []recorded
}

// recorded is a request as the server received it.
type recorded struct {
	req  *http.Request // without its body
	body []byte
}

// maxRecordedBody bounds the part of a request body that is recorded; the
// handler reads the whole body.
const maxRecordedBody = 1 << 20

// NewServer starts a server whose handler is h; a nil h answers 200 with
// an empty body. It accepts the options that describe its certificate
// (Hosts, Key, WeakKey, Validity, Expired, NotYetValid, WrongHost,
// MustStaple, MisIssued, StapleOCSP, StapleRevoked, StapleStale), and
// RequireClientCert and WithCA. The error each failure option makes the
// client return is in its comment.
func NewServer(t testing.TB, h http.Handler, opts ...Option) *Server {
	t.Helper()
	s := apply(t, toServer, "NewServer", opts)
	return startServer(t, "NewServer", s, func(*Server) http.Handler { return h })
}

// startServer starts a server made as s says, whose handler handler
// returns once the server's URL is known.
func startServer(t testing.TB, what string, s settings, handler func(*Server) http.Handler) *Server {
	t.Helper()
	ca := serversCA(t, s)
	hosts := s.cert.hosts
	if len(hosts) == 0 {
		hosts = []string{loopback}
	}
	if strings.Contains(hosts[0], "*") {
		t.Fatalf("securehttptest: %s: the first of Hosts names the server's URL, and cannot be a wildcard (%q)", what, hosts[0])
	}
	st := &server{ca: ca, hosts: hosts}
	st.base = &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  ca.Pool(),
	}
	if s.requireClientCert {
		st.base.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if err := st.rotate(s.cert); err != nil {
		t.Fatalf("securehttptest: %s: %v", what, err)
	}

	st.srv = httptest.NewUnstartedServer(st)
	st.srv.EnableHTTP2 = true
	st.srv.TLS = st.base.Clone()
	st.srv.TLS.Certificates = []tls.Certificate{st.cert.Load().TLSCertificate()}
	// Every handshake gets the certificate in use, so that Rotate takes
	// effect at the next connection.
	st.srv.TLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return st.conf.Load(), nil }
	st.srv.Config.ErrorLog = log.New(logWriter{t}, "", 0)

	_, port, err := net.SplitHostPort(st.srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("securehttptest: %s: %v", what, err)
	}
	host := net.JoinHostPort(hosts[0], port)
	srv := &Server{URL: "https://" + host, Host: host, s: st}
	st.handler = handler(srv)
	if st.handler == nil {
		st.handler = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	}
	st.srv.StartTLS()
	t.Cleanup(st.srv.Close)
	return srv
}

// rotate issues a certificate as cs says, for the server's hosts unless
// cs.wrongHost, and serves it from the next handshake on. New session
// ticket keys make clients resume no session of the last certificate.
func (st *server) rotate(cs certSettings) error {
	hosts := st.hosts
	if cs.wrongHost {
		hosts = []string{"wrong-host.invalid"}
	}
	c, err := st.ca.issue(hosts[0], hosts, cs)
	if err != nil {
		return err
	}
	conf := st.base.Clone()
	conf.Certificates = []tls.Certificate{c.TLSCertificate()}
	var key [32]byte
	_, _ = rand.Read(key[:]) // never fails
	conf.SetSessionTicketKeys([][32]byte{key})
	st.cert.Store(c)
	st.conf.Store(conf)
	return nil
}

// stamp marks one request the server received, in its context and in the
// copies Requests returns, so that VerifyRequest knows them for the same
// request.
type stamp struct{ _ byte }

type stampKey struct{}

// ServeHTTP records r, then hands it to the server's handler.
func (st *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(context.WithValue(r.Context(), stampKey{}, new(stamp)))
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRecordedBody))
	rec := r.Clone(context.WithoutCancel(r.Context()))
	rec.Body = nil
	st.mu.Lock()
	st.requests = append(st.requests, recorded{rec, body})
	st.mu.Unlock()
	rest := r.Body
	if err != nil {
		rest = io.NopCloser(errReader{err})
	}
	r.Body = readCloser{io.MultiReader(bytes.NewReader(body), rest), r.Body}
	st.handler.ServeHTTP(w, r)
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// Config returns a client configuration that trusts the server and every
// other server of its CA: the CA's root as RootCAs; a PinSet with the CA's
// Pins for each host of the server's certificate and for 127.0.0.1, where
// every server of the kit listens; a DialContext that connects every host
// name to 127.0.0.1, at the port of the URL, and so to the kit's servers
// only, while TLS verifies the name as always; and no proxy. Set Bearer
// and the rest as in production.
func (s *Server) Config() securehttp.Config {
	pins := s.s.ca.Pins()
	var sets []securehttp.PinSet
	for _, h := range append(slices.Clone(s.s.hosts), loopback) {
		if !slices.ContainsFunc(sets, func(p securehttp.PinSet) bool { return p.Host == h }) {
			sets = append(sets, securehttp.PinSet{Host: h, Pins: slices.Clone(pins)})
		}
	}
	return securehttp.Config{
		RootCAs:     s.s.ca.Pool(),
		Pins:        sets,
		DialContext: dialLoopback,
		Proxy:       noProxy,
	}
}

// dialLoopback connects to 127.0.0.1 for any host name, at the port of
// addr; an IP address is dialled as it is.
func dialLoopback(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) == nil {
		host = loopback
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort(host, port))
}

func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// CA returns the server's CA, which issued its certificate and issues the
// client certificates it accepts.
func (s *Server) CA() *CA { return s.s.ca }

// Certificate returns the certificate the server presents: the last
// Rotate's, or the first.
func (s *Server) Certificate() *Cert { return s.s.cert.Load() }

// Requests returns copies of the requests the server received so far, in
// the order they arrived: method, URL, headers, TLS state and the first
// MiB of the body, which each copy reads anew.
func (s *Server) Requests() []*http.Request {
	s.s.mu.Lock()
	recs := slices.Clone(s.s.requests)
	s.s.mu.Unlock()
	out := make([]*http.Request, len(recs))
	for i, rec := range recs {
		r := rec.req.Clone(rec.req.Context())
		r.Body = io.NopCloser(bytes.NewReader(rec.body))
		out[i] = r
	}
	return out
}

// Rotate makes the server present a new certificate, with a new key, from
// its next handshake on; connections already open keep the last one, and
// no TLS session of it resumes. It accepts the options that describe a
// certificate, except Hosts: Rotate(t, Expired()) makes the next
// connection fail.
func (s *Server) Rotate(t testing.TB, opts ...Option) {
	t.Helper()
	set := apply(t, toRotate, "Server.Rotate", opts)
	if err := s.s.rotate(set.cert); err != nil {
		t.Fatalf("securehttptest: Server.Rotate: %v", err)
	}
}

// Close stops the server before the test ends, as it does then: a client
// finds the port closed.
func (s *Server) Close() { s.s.srv.Close() }

// logWriter sends the log of the server (handshakes that failed, which a
// test may well provoke) to the test's log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("securehttptest: server: %s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}
