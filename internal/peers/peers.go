// Package peers starts real third-party network peers (nginx, openssl
// s_server, tinyproxy, redis-server, oidc-provider, Ory Hydra and
// zitadel/oidc) on the loopback interface for tests, and stops them when
// the test finishes.
//
// Every peer listens on 127.0.0.1 only, on a free port picked at start, and
// keeps all of its files (configuration, certificates, logs, pid file and
// temporary directories) under t.TempDir(), so it runs as root or as an
// ordinary user without touching /etc, /var or /run. Peers are started with
// exec.Command (no shell) in their own process group, with stdin connected to
// /dev/null and stdout/stderr captured into a bounded buffer; Stop (also
// registered with t.Cleanup) signals the whole group, waits a bounded time and
// then kills it.
//
// The binaries come from Debian packages: nginx-light (or nginx), openssl,
// tinyproxy and redis-server. When one is missing the test is skipped,
// unless the environment variable CI is "true", in which case the test
// fails: a missing peer in CI is an installation bug. See Require.
//
// The package is for tests only and works on Unix (Linux is what CI runs).
package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long a peer may take to listen.
	readyTimeout = 5 * time.Second
	// stopTimeout bounds how long Stop waits after the polite signal before
	// it sends SIGKILL to the process group.
	stopTimeout = 3 * time.Second
	// startAttempts is how often a start is tried when the chosen port turns
	// out to be taken by someone else.
	startAttempts = 3
	// outputLimit bounds the captured stdout+stderr of a peer.
	outputLimit = 64 << 10
	// diagLimit bounds each log excerpt quoted in a failure message.
	diagLimit = 8 << 10
)

// LegacyCiphers is an OpenSSL cipher string that lets TLS 1.0 and TLS 1.1
// handshakes succeed with OpenSSL 3. At OpenSSL 3's default security level 1
// the SHA-1 based signatures of TLS < 1.2 are forbidden, so a TLS 1.0/1.1
// handshake fails ("no suitable signature algorithm" in the server log, an
// internal_error alert at the client) although the server starts fine; a
// TLS 1.0/1.1 peer needs security level 0.
//
// StartNginx uses it automatically when NginxConfig.Protocols enables TLSv1
// or TLSv1.1 and NginxConfig.Ciphers is empty; StartOpenSSL appends
// "-cipher LegacyCiphers" when Args contain -tls1 or -tls1_1 and no -cipher.
// An openssl s_client used to talk to such a peer needs
// "-cipher DEFAULT:@SECLEVEL=0" as well.
const LegacyCiphers = "DEFAULT:@SECLEVEL=0"

// Peer is a running third-party peer.
type Peer struct {
	// Name is the peer kind: "nginx", "openssl", "tinyproxy" or "redis".
	Name string
	// Addr is the listening address, "127.0.0.1:port".
	Addr string
	// Port is the listening port.
	Port int

	scheme  string // "https" for the TLS servers, "http" for tinyproxy
	dir     string // the peer's temporary directory
	logPath string // the peer's own log file, "" when it logs to stdout
	proxy   *url.URL

	cmd     *exec.Cmd
	out     *tailBuffer
	done    chan struct{} // closed once the process has been reaped
	waitErr error         // valid after done is closed
	stopSig syscall.Signal

	stopOnce sync.Once

	// restart starts the same peer again on the same port; nil for peers
	// that do not support Restart.
	restart func(t testing.TB) *Peer
}

// URL returns scheme://127.0.0.1:port followed by path. The scheme is https
// for nginx and openssl s_server, http for tinyproxy and redis for redis-server.
func (p *Peer) URL(path string) string {
	return p.scheme + "://" + p.Addr + path
}

// ProxyURL returns the URL to use with http.ProxyURL for a tinyproxy peer:
// http://127.0.0.1:port, with user:password when basic authentication is
// configured. It returns nil for peers that are not proxies.
func (p *Peer) ProxyURL() *url.URL {
	if p.proxy == nil {
		return nil
	}
	u := *p.proxy
	if p.proxy.User != nil {
		pass, _ := p.proxy.User.Password()
		u.User = url.UserPassword(p.proxy.User.Username(), pass)
	}
	return &u
}

// Log returns the peer's log: the nginx error log (level info, so TLS
// handshake failures are in it), the tinyproxy log (level Info, one
// "Request (file descriptor N): CONNECT host:port HTTP/1.1" line per CONNECT)
// or the captured stdout and stderr of openssl s_server.
func (p *Peer) Log() string {
	if p.logPath == "" {
		return p.out.String()
	}
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	return string(b)
}

// Output returns the peer's captured stdout and stderr (at most the last
// 64 KiB).
func (p *Peer) Output() string { return p.out.String() }

// Dir returns the peer's temporary directory, which holds its configuration,
// certificates and logs (nginx also writes access.log there).
func (p *Peer) Dir() string { return p.dir }

// Pid returns the process id of the peer, which is also its process group id.
func (p *Peer) Pid() int { return p.cmd.Process.Pid }

// ConnectCount returns how many CONNECT requests a tinyproxy peer has logged
// so far.
func (p *Peer) ConnectCount() int {
	return len(connectLine.FindAllStringIndex(p.Log(), -1))
}

var connectLine = regexp.MustCompile(`(?m)\): CONNECT \S+ HTTP/`)

// Stop stops the peer: it sends the polite stop signal (SIGTERM) to the
// peer's process group, waits up to 3 s for it to exit, then sends SIGKILL.
// When Stop returns the process has been reaped. Stop is idempotent and safe
// to call from several goroutines; it is registered with t.Cleanup.
func (p *Peer) Stop() {
	p.stopOnce.Do(func() {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, p.stopSig)
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-p.done:
		case <-timer.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(stopTimeout):
				// Wait is stuck; nothing more can be done from here.
			}
		}
		// Sweep any child the peer may have left in its group.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
}

// exited reports whether the process has exited (and been reaped).
func (p *Peer) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// diagnostics returns the peer's state, log and output, bounded, for failure
// messages.
func (p *Peer) diagnostics() string {
	var b strings.Builder
	if p.exited() {
		fmt.Fprintf(&b, "process exited: %v\n", p.waitErr)
	} else {
		b.WriteString("process still running\n")
	}
	fmt.Fprintf(&b, "command: %s\n", strings.Join(p.cmd.Args, " "))
	if p.logPath != "" {
		fmt.Fprintf(&b, "--- %s ---\n%s\n", p.logPath, tail(p.Log(), diagLimit))
	}
	fmt.Fprintf(&b, "--- stdout/stderr ---\n%s", tail(p.out.String(), diagLimit))
	return b.String()
}

// Require returns the path of binary, looking in PATH and then in the usual
// system directories (/usr/sbin for nginx, /usr/bin and /usr/sbin for
// tinyproxy, which are not always in a test's PATH). When the binary is
// missing it fails the test with t.Fatalf if the environment variable CI is
// "true", and skips it with t.Skipf naming the Debian package otherwise.
func Require(t testing.TB, binary string) string {
	t.Helper()
	if path, ok := lookup(binary); ok {
		return path
	}
	pkg := debianPackage(binary)
	dirs := strings.Join(searchDirs(binary), ", ")
	if os.Getenv("CI") == "true" {
		t.Fatalf("peers: %s not found in PATH or %s, and CI=true: a missing peer in CI is a failure; install it with: apt-get install -y %s", binary, dirs, pkg)
		return ""
	}
	t.Skipf("peers: %s not found in PATH or %s; install the Debian package %s (apt-get install -y %s)", binary, dirs, pkg, pkg)
	return ""
}

func debianPackage(binary string) string {
	switch filepath.Base(binary) {
	case "nginx":
		return "nginx-light" // "nginx" works as well
	case "tinyproxy":
		return "tinyproxy"
	case "openssl":
		return "openssl"
	}
	return filepath.Base(binary)
}

func searchDirs(binary string) []string {
	switch filepath.Base(binary) {
	case "nginx":
		return []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/sbin"}
	case "tinyproxy":
		return []string{"/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"}
	}
	return []string{"/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"}
}

func lookup(binary string) (string, bool) {
	if strings.ContainsRune(binary, '/') {
		return binary, isExecutable(binary)
	}
	if path, err := exec.LookPath(binary); err == nil {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		return path, true
	}
	for _, dir := range searchDirs(binary) {
		path := filepath.Join(dir, binary)
		if isExecutable(path) {
			return path, true
		}
	}
	return "", false
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it
// listens on 127.0.0.1:0 and closes the listener. Another process may take
// the port before the caller binds it; the Start functions retry in that case.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("peers: pick a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("peers: close probe listener: %v", err)
	}
	return port
}

// launchSpec describes how to start one kind of peer.
type launchSpec struct {
	name    string
	bin     string
	dir     string
	scheme  string
	stopSig syscall.Signal
	proxy   *url.URL // user info for a proxy peer; Host is filled in
	// build writes the configuration for port and says how to run the
	// peer.
	build func(port int) (launch, error)
	// ready reports whether the peer itself says it has bound its socket
	// (a marker in its log); it keeps a dial to a port that someone else
	// grabbed from counting as ready.
	ready func(p *Peer) bool
	// wait, when set, waits for the peer in place of ready and
	// readyTimeout: nil once it serves.
	wait func(p *Peer) error
	// pickPort picks the port for an attempt; FreePort unless a test
	// overrides it.
	pickPort func(t testing.TB) int
}

// launch is how one attempt runs a peer.
type launch struct {
	args    []string
	logPath string   // the peer's own log file, "" if it logs to stdout
	env     []string // added to the peer's environment, as "KEY=value"
}

var (
	errAddrInUse = errors.New("port already in use")
	errNotReady  = errors.New("not listening")
)

// start launches the peer, waits until it is ready and registers Stop with
// t.Cleanup. It retries with a new port when the port was taken, and once
// when the peer was still not ready in time.
func start(t testing.TB, spec launchSpec) *Peer {
	t.Helper()
	pick := spec.pickPort
	if pick == nil {
		pick = FreePort
	}
	timedOut := false
	for attempt := 1; ; attempt++ {
		port := pick(t)
		run, err := spec.build(port)
		if err != nil {
			t.Fatalf("peers: prepare %s: %v", spec.name, err)
		}
		if run.logPath != "" {
			if err := os.Remove(run.logPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("peers: remove old %s log: %v", spec.name, err)
			}
		}
		p, err := spawn(spec, port, run)
		if err != nil {
			t.Fatalf("peers: start %s (%s): %v", spec.name, spec.bin, err)
		}
		if spec.wait != nil {
			err = spec.wait(p)
		} else {
			err = p.waitReady(spec.ready, readyTimeout)
		}
		if err == nil {
			t.Cleanup(func() {
				p.Stop()
				if t.Failed() {
					t.Logf("peers: %s on %s after the failed test:\n%s", p.Name, p.Addr, p.diagnostics())
				}
			})
			return p
		}
		p.Stop()
		if attempt < startAttempts && (errors.Is(err, errAddrInUse) || addrInUse(p)) {
			t.Logf("peers: %s: port %d taken, retrying with another port (attempt %d of %d)", spec.name, port, attempt+1, startAttempts)
			continue
		}
		if attempt < startAttempts && errors.Is(err, errNotReady) && !timedOut {
			// Seen once on a heavily loaded 2-core machine: a peer that
			// printed nothing for 5 s. Give it one more chance.
			timedOut = true
			t.Logf("peers: %s on port %d: %v; retrying once (attempt %d of %d)\n%s", spec.name, port, err, attempt+1, startAttempts, p.diagnostics())
			continue
		}
		t.Fatalf("peers: %s did not become ready on 127.0.0.1:%d: %v\n%s", spec.name, port, err, p.diagnostics())
		return nil
	}
}

// peerDir finds internal/peers/NAME, the directory that holds marker: next
// to this source file, or found from the working directory up.
func peerDir(name, marker string) (string, error) {
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), name))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dir := filepath.Join(d, "internal", "peers", name)
			if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
				candidates = append(candidates, dir)
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, dir := range candidates {
		if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("cannot find internal/peers/%s/%s (looked in %v): %w", name, marker, candidates, fs.ErrNotExist)
}

// writeFile writes data to name in dir, readable by its owner only, and
// returns the file's path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("peers: write %s: %v", name, err)
	}
	return path
}

// writeJSON writes v as JSON to path, readable by its owner only.
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return os.WriteFile(path, data, 0o600)
}

// loopbackURL is scheme://127.0.0.1:port.
func loopbackURL(scheme string, port int) string {
	return scheme + "://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// spawn starts the process in its own process group.
func spawn(spec launchSpec, port int, run launch) (*Peer, error) {
	p := &Peer{
		Name:    spec.name,
		Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Port:    port,
		scheme:  spec.scheme,
		dir:     spec.dir,
		logPath: run.logPath,
		out:     &tailBuffer{limit: outputLimit},
		done:    make(chan struct{}),
		stopSig: spec.stopSig,
	}
	if spec.proxy != nil {
		u := *spec.proxy
		u.Host = p.Addr
		p.proxy = &u
	}
	cmd := exec.Command(spec.bin, run.args...)
	cmd.Dir = spec.dir
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	cmd.Env = append(peerEnv(), run.env...)
	cmd.SysProcAttr = sysProcAttr()
	// Do not let a grandchild holding stdout keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	p.cmd = cmd

	// The process is started from, and waited for on, one goroutine that
	// stays locked to its OS thread: on Linux the child gets SIGKILL when
	// the thread that forked it exits (Pdeathsig), so the thread must live
	// as long as the child. If the test binary dies, so do its peers.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// peerEnv is the environment for peers: the test's environment without
// variables that would make OpenSSL read another configuration.
func peerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OPENSSL_CONF=") || strings.HasPrefix(kv, "SSLKEYLOGFILE=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitReady polls until the peer's ready marker is present and a TCP dial to
// its address succeeds, for at most timeout.
func (p *Peer) waitReady(ready func(*Peer) bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			if addrInUse(p) {
				return fmt.Errorf("%w: exited early: %v", errAddrInUse, p.waitErr)
			}
			return fmt.Errorf("exited early: %v", p.waitErr)
		}
		if ready(p) {
			c, err := net.DialTimeout("tcp", p.Addr, 250*time.Millisecond)
			if err == nil {
				_ = c.Close()
				if !p.exited() {
					return nil
				}
				continue
			}
		}
		if addrInUse(p) {
			// nginx keeps retrying bind() for a few seconds; give up now.
			return errAddrInUse
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v%s", errNotReady, timeout, procState(p.cmd.Process.Pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procState describes a running process from /proc (Linux): its state
// letter (R running, S sleeping, D disk wait, T stopped, Z zombie) and wchan,
// for failure messages. It returns "" where /proc is not available.
func procState(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	state := "?"
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
		if f := strings.Fields(string(stat[i+1:])); len(f) > 0 {
			state = f[0]
		}
	}
	s := " (process state " + state
	if wchan, err := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid)); err == nil && len(wchan) > 0 {
		s += ", wchan " + string(wchan)
	}
	return s + ")"
}

// addrInUse reports whether the peer complained that its port is taken.
func addrInUse(p *Peer) bool {
	s := p.out.String()
	if p.logPath != "" {
		s += p.Log()
	}
	for _, m := range addrInUseMessages {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// addrInUseMessages are what the peers say when their port is taken.
var addrInUseMessages = []string{
	"Address already in use", // nginx, openssl s_server
	"address already in use",
	// tinyproxy 1.11 prints only this to stderr and exits with status 71.
	"Could not create listening sockets",
}

// ---------------------------------------------------------------- nginx

// NginxConfig configures StartNginx.
type NginxConfig struct {
	// CertPEM is the server chain, leaf first; KeyPEM is the leaf's private
	// key. Both are written to files in the peer's temporary directory.
	// For OCSP stapling the chain must include the leaf's issuer, or nginx
	// ignores ssl_stapling ("issuer certificate not found").
	CertPEM, KeyPEM []byte
	// Protocols is the ssl_protocols value; "" means "TLSv1.2 TLSv1.3".
	Protocols string
	// Ciphers is the optional ssl_ciphers value (TLS <= 1.2 suites only).
	// When it is empty and Protocols enables TLSv1 or TLSv1.1,
	// LegacyCiphers is used so that those protocols actually work with
	// OpenSSL 3. An explicit value for TLS 1.0/1.1 needs ":@SECLEVEL=0".
	Ciphers string
	// HTTP2 enables HTTP/2 (ALPN h2): "http2 on;" on nginx >= 1.25.1,
	// "listen ... ssl http2" before.
	HTTP2 bool
	// StapleFile is an optional DER OCSP response, stapled with
	// "ssl_stapling on; ssl_stapling_file ...;".
	StapleFile []byte
	// ClientCAPEM, when set, makes nginx require a client certificate
	// issued by one of these CA certificates ("ssl_verify_client on" with
	// "ssl_client_certificate"): a request without one gets 400.
	ClientCAPEM []byte
	// ExtraServer holds extra directives placed inside the server block,
	// before the built-in locations (so it must not redefine
	// "location /", "location /proto", "location /echo-ssl" or
	// "location /echo-client").
	ExtraServer string
}

// StartNginx starts nginx in the foreground (daemon off, master_process
// off: a single process) listening on 127.0.0.1:<port> ssl with the
// locations
//
//	/          -> 200 "ok\n"
//	/proto     -> 200 "$server_protocol\n"   (HTTP/1.1 or HTTP/2.0)
//	/echo-ssl  -> 200 "$ssl_protocol $ssl_cipher\n"
//	/echo-client -> 200 "$ssl_client_serial $ssl_session_reused\n"
//	              (the client certificate's serial in upper-case hex, empty
//	              without one; "r" for a resumed TLS session, "." otherwise)
//
// and registers Stop with t.Cleanup. It skips or fails the test as Require
// does when nginx is not installed.
func StartNginx(t testing.TB, cfg NginxConfig) *Peer {
	t.Helper()
	return startNginx(t, cfg, nil)
}

func startNginx(t testing.TB, cfg NginxConfig, pick func(testing.TB) int) *Peer {
	t.Helper()
	bin := Require(t, "nginx")
	if len(cfg.CertPEM) == 0 || len(cfg.KeyPEM) == 0 {
		t.Fatalf("peers: StartNginx needs CertPEM and KeyPEM")
	}
	dir := t.TempDir()
	ver, err := nginxVersion(bin)
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	files := map[string][]byte{"cert.pem": cfg.CertPEM, "key.pem": cfg.KeyPEM}
	if len(cfg.StapleFile) > 0 {
		files["ocsp.der"] = cfg.StapleFile
	}
	if len(cfg.ClientCAPEM) > 0 {
		files["client-ca.pem"] = cfg.ClientCAPEM
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatalf("peers: write %s: %v", name, err)
		}
	}
	for _, sub := range nginxTempDirs {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatalf("peers: create %s: %v", sub, err)
		}
	}
	confPath := filepath.Join(dir, "nginx.conf")
	errorLog := filepath.Join(dir, "error.log")
	return start(t, launchSpec{
		name:     "nginx",
		bin:      bin,
		dir:      dir,
		scheme:   "https",
		stopSig:  syscall.SIGTERM, // fast shutdown; SIGQUIT would wait for idle connections
		pickPort: pick,
		build: func(port int) (launch, error) {
			conf := nginxConf(dir, port, cfg, ver)
			if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
				return launch{}, err
			}
			args := []string{"-p", dir + "/", "-c", confPath}
			if !ver.less(1, 19, 5) {
				// -e also moves the startup error log, which would
				// otherwise go to the compiled-in path before the
				// configuration is read.
				args = append(args, "-e", errorLog)
			}
			return launch{args: args, logPath: errorLog}, nil
		},
		ready: func(p *Peer) bool {
			// nginx logs its version at notice level after it has
			// opened its listening sockets.
			return nginxStarted.MatchString(p.Log())
		},
	})
}

var nginxStarted = regexp.MustCompile(`\[notice\] \d+#\d+: nginx/\d`)

var nginxTempDirs = []string{"client_body_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp", "scgi_temp"}

func nginxConf(dir string, port int, cfg NginxConfig, ver version) string {
	q := func(name string) string { return nginxQuote(filepath.Join(dir, name)) }
	protocols := strings.TrimSpace(cfg.Protocols)
	if protocols == "" {
		protocols = "TLSv1.2 TLSv1.3"
	}
	ciphers := cfg.Ciphers
	if ciphers == "" && legacyProtocols(protocols) {
		ciphers = LegacyCiphers
	}
	var b strings.Builder
	b.WriteString("# generated by internal/peers\n")
	b.WriteString("daemon off;\nmaster_process off;\nworker_processes 1;\n")
	fmt.Fprintf(&b, "pid %s;\nlock_file %s;\nerror_log %s info;\n", q("nginx.pid"), q("nginx.lock"), q("error.log"))
	b.WriteString("events { worker_connections 256; }\n")
	b.WriteString("http {\n")
	b.WriteString("    default_type text/plain;\n")
	fmt.Fprintf(&b, "    access_log %s;\n", q("access.log"))
	fmt.Fprintf(&b, "    client_body_temp_path %s;\n", q("client_body_temp"))
	fmt.Fprintf(&b, "    proxy_temp_path %s;\n", q("proxy_temp"))
	fmt.Fprintf(&b, "    fastcgi_temp_path %s;\n", q("fastcgi_temp"))
	fmt.Fprintf(&b, "    uwsgi_temp_path %s;\n", q("uwsgi_temp"))
	fmt.Fprintf(&b, "    scgi_temp_path %s;\n", q("scgi_temp"))
	b.WriteString("    server {\n")
	listen := fmt.Sprintf("127.0.0.1:%d ssl", port)
	http2On := false
	if cfg.HTTP2 {
		if ver.less(1, 25, 1) {
			listen += " http2"
		} else {
			http2On = true
		}
	}
	fmt.Fprintf(&b, "        listen %s;\n", listen)
	if http2On {
		b.WriteString("        http2 on;\n")
	}
	b.WriteString("        server_name localhost;\n")
	fmt.Fprintf(&b, "        ssl_certificate %s;\n", q("cert.pem"))
	fmt.Fprintf(&b, "        ssl_certificate_key %s;\n", q("key.pem"))
	fmt.Fprintf(&b, "        ssl_protocols %s;\n", protocols)
	if ciphers != "" {
		fmt.Fprintf(&b, "        ssl_ciphers %s;\n", nginxQuote(ciphers))
	}
	if len(cfg.StapleFile) > 0 {
		fmt.Fprintf(&b, "        ssl_stapling on;\n        ssl_stapling_file %s;\n", q("ocsp.der"))
	}
	if len(cfg.ClientCAPEM) > 0 {
		fmt.Fprintf(&b, "        ssl_client_certificate %s;\n        ssl_verify_client on;\n", q("client-ca.pem"))
	}
	if cfg.ExtraServer != "" {
		b.WriteString("        # ExtraServer\n")
		b.WriteString(cfg.ExtraServer)
		b.WriteString("\n")
	}
	b.WriteString("        location / { return 200 \"ok\\n\"; }\n")
	b.WriteString("        location /proto { return 200 \"$server_protocol\\n\"; }\n")
	b.WriteString("        location /echo-ssl { return 200 \"$ssl_protocol $ssl_cipher\\n\"; }\n")
	b.WriteString("        location /echo-client { return 200 \"$ssl_client_serial $ssl_session_reused\\n\"; }\n")
	b.WriteString("    }\n}\n")
	return b.String()
}

// legacyProtocols reports whether an ssl_protocols value enables a protocol
// older than TLS 1.2.
func legacyProtocols(protocols string) bool {
	for _, f := range strings.Fields(protocols) {
		switch f {
		case "SSLv2", "SSLv3", "TLSv1", "TLSv1.1":
			return true
		}
	}
	return false
}

func nginxQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

type version [3]int

func (v version) less(major, minor, patch int) bool {
	w := version{major, minor, patch}
	for i := range v {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return false
}

func (v version) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

var (
	nginxVersions sync.Map // binary path -> version
	nginxVerRE    = regexp.MustCompile(`nginx/(\d+)\.(\d+)\.(\d+)`)
)

// nginxVersion runs "nginx -v" once per binary.
func nginxVersion(bin string) (version, error) {
	if v, ok := nginxVersions.Load(bin); ok {
		return v.(version), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-v").CombinedOutput()
	if err != nil {
		return version{}, fmt.Errorf("%s -v: %v: %s", bin, err, out)
	}
	m := nginxVerRE.FindSubmatch(out)
	if m == nil {
		return version{}, fmt.Errorf("%s -v: no version in %q", bin, out)
	}
	var v version
	for i := range v {
		v[i], _ = strconv.Atoi(string(m[i+1]))
	}
	nginxVersions.Store(bin, v)
	return v, nil
}

// NginxVersion returns the version of the nginx that StartNginx would run,
// such as "1.22.1". It skips or fails the test as Require does.
func NginxVersion(t testing.TB) string {
	t.Helper()
	v, err := nginxVersion(Require(t, "nginx"))
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	return v.String()
}

// ------------------------------------------------------------- tinyproxy

// TinyproxyConfig configures StartTinyproxy.
type TinyproxyConfig struct {
	// BasicAuthUser and BasicAuthPass, when set, make tinyproxy require
	// proxy basic authentication (a client without them gets 407). They
	// must not contain white space or quotes.
	BasicAuthUser, BasicAuthPass string
}

// StartTinyproxy starts tinyproxy in the foreground (-d) listening on
// 127.0.0.1:<port>, allowing clients from 127.0.0.1 and CONNECT to every
// port, logging at level Info to a file (see Log and ConnectCount), and
// registers Stop with t.Cleanup. Use ProxyURL with http.ProxyURL.
//
// The configuration has no ConnectPort line on purpose: without one,
// tinyproxy allows CONNECT to every port, while "ConnectPort 0" disables
// CONNECT altogether (and the Debian default file restricts it to 443/563).
func StartTinyproxy(t testing.TB, cfg TinyproxyConfig) *Peer {
	t.Helper()
	return startTinyproxy(t, cfg, nil)
}

func startTinyproxy(t testing.TB, cfg TinyproxyConfig, pick func(testing.TB) int) *Peer {
	t.Helper()
	bin := Require(t, "tinyproxy")
	if (cfg.BasicAuthUser == "") != (cfg.BasicAuthPass == "") {
		t.Fatalf("peers: TinyproxyConfig needs both BasicAuthUser and BasicAuthPass, or neither")
	}
	for _, s := range []string{cfg.BasicAuthUser, cfg.BasicAuthPass} {
		if strings.ContainsAny(s, " \t\r\n\"'#") {
			t.Fatalf("peers: tinyproxy basic auth credentials must not contain white space, quotes or '#': %q", s)
		}
	}
	dir := t.TempDir()
	if strings.ContainsAny(dir, "\"\n") {
		t.Fatalf("peers: temporary directory %q cannot be quoted in tinyproxy.conf", dir)
	}
	confPath := filepath.Join(dir, "tinyproxy.conf")
	logPath := filepath.Join(dir, "tinyproxy.log")
	proxy := &url.URL{Scheme: "http"}
	if cfg.BasicAuthUser != "" {
		proxy.User = url.UserPassword(cfg.BasicAuthUser, cfg.BasicAuthPass)
	}
	return start(t, launchSpec{
		name:     "tinyproxy",
		bin:      bin,
		dir:      dir,
		scheme:   "http",
		stopSig:  syscall.SIGTERM,
		proxy:    proxy,
		pickPort: pick,
		build: func(port int) (launch, error) {
			var b strings.Builder
			b.WriteString("# generated by internal/peers\n")
			fmt.Fprintf(&b, "Port %d\nListen 127.0.0.1\n", port)
			b.WriteString("Timeout 60\nMaxClients 16\n")
			fmt.Fprintf(&b, "LogFile \"%s\"\nLogLevel Info\nPidFile \"%s\"\n", logPath, filepath.Join(dir, "tinyproxy.pid"))
			b.WriteString("Allow 127.0.0.1\n")
			if cfg.BasicAuthUser != "" {
				fmt.Fprintf(&b, "BasicAuth %s %s\n", cfg.BasicAuthUser, cfg.BasicAuthPass)
			}
			b.WriteString("# No ConnectPort line: CONNECT is allowed to every port.\n")
			if err := os.WriteFile(confPath, []byte(b.String()), 0o600); err != nil {
				return launch{}, err
			}
			return launch{args: []string{"-d", "-c", confPath}, logPath: logPath}, nil
		},
		ready: func(p *Peer) bool {
			l := p.Log()
			return strings.Contains(l, "Accepting connections") || strings.Contains(l, "listening on fd")
		},
	})
}

// ------------------------------------------------------------ tailBuffer

// tailBuffer is an io.Writer that keeps the last limit bytes written.
type tailBuffer struct {
	mu      sync.Mutex
	buf     []byte
	limit   int
	dropped int64
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.limit; over > 0 && len(b.buf) > 2*b.limit {
		b.dropped += int64(over)
		b.buf = append([]byte(nil), b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	buf, dropped := b.buf, b.dropped
	if over := len(buf) - b.limit; over > 0 {
		buf = buf[over:]
		dropped += int64(over)
	}
	if dropped > 0 {
		return fmt.Sprintf("[... %d bytes dropped ...]\n%s", dropped, buf)
	}
	return string(buf)
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("[... %d bytes ...]\n%s", len(s)-n, s[len(s)-n:])
}
