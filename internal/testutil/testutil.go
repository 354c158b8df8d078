// Package testutil holds what the tests of securehttp, redisstore,
// otelsecurehttp and the securehttp command share: TLS test servers on
// 127.0.0.1, a dialer that sends every test host name there, a CONNECT
// proxy, log capture and a settable clock.
//
// It imports nothing of securehttp's own, so that the root package's tests
// can use it without an import cycle. Everything here is for tests.
package testutil

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// StartServer starts an HTTP/2-capable TLS server on 127.0.0.1 serving
// cert, closed when the test ends. Its own log lines (handshake errors that
// tests provoke on purpose) are discarded.
func StartServer(t testing.TB, cert tls.Certificate, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = QuietLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// LoopbackDial sends every dial, whatever its host name, to the same port
// on 127.0.0.1, so that tests can use several host names on one server
// while TLS still verifies the name in the URL.
func LoopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
}

// HostURL returns srv's URL with host in place of 127.0.0.1, followed by
// path.
func HostURL(srv *httptest.Server, host, path string) string {
	return strings.Replace(srv.URL, "127.0.0.1", host, 1) + path
}

// QuietLog returns a logger that discards everything, for test servers'
// ErrorLog.
func QuietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// LogBuffer collects log output for assertions. It is safe for concurrent
// use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// NewLogger returns a Debug-level text logger writing to a new LogBuffer.
func NewLogger() (*slog.Logger, *LogBuffer) {
	lb := &LogBuffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// CountingListener counts the connections it accepts in N.
type CountingListener struct {
	net.Listener
	N atomic.Int64
}

func (l *CountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.N.Add(1)
	}
	return c, err
}

// ConnectProxy starts an HTTP CONNECT proxy on 127.0.0.1, stopped when the
// test ends. It tunnels to the port of the requested target on 127.0.0.1,
// as LoopbackDial does, and counts the tunnels it opens.
func ConnectProxy(t testing.TB) (*url.URL, *atomic.Int64) {
	t.Helper()
	var tunnels atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					io.WriteString(conn, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
					return
				}
				target, err := LoopbackDial(context.Background(), "tcp", req.Host)
				if err != nil {
					io.WriteString(conn, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer target.Close()
				tunnels.Add(1)
				io.WriteString(conn, "HTTP/1.1 200 Connection Established\r\n\r\n")
				done := make(chan struct{}, 2)
				go func() { io.Copy(target, br); target.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(conn, target); conn.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			})
		}
	})
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}, &tunnels
}

// Clock is a settable clock for the now fields of the code under test. It
// is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock set to now.
func NewClock(now time.Time) *Clock { return &Clock{now: now} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set sets the clock to now.
func (c *Clock) Set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}
