package redisstore_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testutil"
	"github.com/securehttp/securehttp/redisstore"
	"github.com/securehttp/securehttp/securehttptest"
)

// Environment of a replica process started by TestFleetOneRefreshPerExpiry.
const (
	childEnv    = "REDISSTORE_TEST_REPLICA" // the replica's name; switches TestMain to replica mode
	addrEnv     = "REDISSTORE_TEST_ADDR"
	keyEnv      = "REDISSTORE_TEST_KEY"
	lifetimeEnv = "REDISSTORE_TEST_LIFETIME" // token lifetime, a time.Duration
	windowEnv   = "REDISSTORE_TEST_WINDOW"   // Bearer.RefreshWindow
)

// replicaReport is what a replica process prints when it is done.
type replicaReport struct {
	Name      string
	Refreshes int64
	IssuedAt  []time.Time // when each of its Refresh calls returned
	Requests  int64
	Failures  int64
	FirstErr  string
	Last      string // the last token the replica's server saw
}

// replicaMain runs one replica: it prints "ready", reads the time to stop
// (Unix nanoseconds) from stdin, sends requests from two goroutines until
// then and prints its replicaReport as JSON.
func replicaMain() int {
	name := os.Getenv(childEnv)
	lifetime, err1 := time.ParseDuration(os.Getenv(lifetimeEnv))
	window, err2 := time.ParseDuration(os.Getenv(windowEnv))
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 2
	}
	t := &childT{}
	defer t.cleanup()
	srv := newServer(t)
	is := newIssuer(lifetime)
	is.prefix = name + "-" // tokens from different processes must differ
	r := newReplica(t, name, srv, is, replicaConfig{addr: os.Getenv(addrEnv), key: os.Getenv(keyEnv), window: window})
	fmt.Println("ready")
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica: reading the start line:", err)
		return 2
	}
	end, err := strconv.ParseInt(line[:len(line)-1], 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 2
	}
	var requests, failures atomic.Int64
	var firstErr sync.Once
	rep := replicaReport{Name: name}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for time.Now().UnixNano() < end {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := r.get(ctx)
				cancel()
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.Do(func() { rep.FirstErr = err.Error() })
				}
				time.Sleep(40 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	rep.Refreshes = r.refreshes.Load()
	rep.IssuedAt = is.issueTimes()
	rep.Requests, rep.Failures = requests.Load(), failures.Load()
	rep.Last = srv.lastToken(name)
	out, _ := json.Marshal(rep)
	fmt.Println(string(out))
	return 0
}

// childT is the little of testing.TB that the helpers use, for a replica
// process, which has no *testing.T. Fatalf panics: the process exits with
// the message on stderr, which the parent test prints.
type childT struct {
	testing.TB
	cleanups []func()
}

func (c *childT) Helper()                        {}
func (c *childT) Cleanup(f func())               { c.cleanups = append(c.cleanups, f) }
func (c *childT) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
func (c *childT) cleanup() {
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		c.cleanups[i]()
	}
}

// TestFleetOneRefreshPerExpiry runs 8 replicas as separate processes (this
// test binary, re-executed) sharing one key across two expiries: Refresh
// runs exactly once per expiry in the whole fleet, no request fails, and
// every replica ends on the token the store holds.
func TestFleetOneRefreshPerExpiry(t *testing.T) {
	const (
		replicas = 8
		lifetime = 4 * time.Second
		window   = 2 * time.Second
	)
	p, rdb := startRedis(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("os.Executable: %v", err)
	}
	type child struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		stdout *bufio.Reader
		stderr bytes.Buffer
	}
	children := make([]*child, replicas)
	for i := range children {
		c := &child{cmd: exec.Command(exe, "-test.run=^$")}
		c.cmd.Env = append(os.Environ(),
			childEnv+"="+fmt.Sprintf("r%d", i),
			addrEnv+"="+p.Addr,
			keyEnv+"=fleet",
			lifetimeEnv+"="+lifetime.String(),
			windowEnv+"="+window.String(),
		)
		c.cmd.Stderr = &c.stderr
		c.cmd.WaitDelay = time.Second
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatalf("StdinPipe: %v", err)
		}
		out, err := c.cmd.StdoutPipe()
		if err != nil {
			t.Fatalf("StdoutPipe: %v", err)
		}
		c.stdout = bufio.NewReader(out)
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("start replica %d: %v", i, err)
		}
		t.Cleanup(func() {
			_ = c.cmd.Process.Kill() // by PID; a no-op once it has exited
			_ = c.cmd.Wait()
		})
		children[i] = c
	}
	// readLine reads one line from each child, all at once, bounded.
	readLines := func(what string, timeout time.Duration) []string {
		t.Helper()
		lines := make([]string, replicas)
		errs := make([]error, replicas)
		var wg sync.WaitGroup
		for i, c := range children {
			wg.Go(func() { lines[i], errs[i] = c.stdout.ReadString('\n') })
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(timeout):
			for _, c := range children {
				_ = c.cmd.Process.Kill()
			}
			<-done
			t.Fatalf("replicas did not print %s within %v", what, timeout)
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("replica %d: reading %s: %v; stderr:\n%s", i, what, err, children[i].stderr.String())
			}
		}
		return lines
	}
	for i, l := range readLines("ready", 30*time.Second) {
		if l != "ready\n" {
			t.Fatalf("replica %d: got %q, want \"ready\"", i, l)
		}
	}

	// The first token is due 0.5 s after the start; its successor 2 s
	// later; the replicas stop 1 s after that, 1 s before a third refresh.
	ctx := context.Background()
	store := newStore(t, rdb, "fleet", redisstore.Options{})
	start := time.Now()
	if err := store.Save(ctx, securehttp.Token{Value: "tok-seed", Expiry: start.Add(window + 500*time.Millisecond)}); err != nil {
		t.Fatalf("seed: %v", err)
	}
	end := start.Add(500*time.Millisecond + lifetime - window + time.Second)
	for _, c := range children {
		fmt.Fprintf(c.stdin, "%d\n", end.UnixNano())
	}
	var reports []replicaReport
	for i, l := range readLines("a report", time.Until(end)+30*time.Second) {
		var rep replicaReport
		if err := json.Unmarshal([]byte(l), &rep); err != nil {
			t.Fatalf("replica %d: report %q: %v", i, l, err)
		}
		reports = append(reports, rep)
	}
	stored, err := store.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var refreshes int64
	// The first refresh is due at start+0.5 s, the second 2 s later: split
	// the run halfway between them.
	split := start.Add(1500 * time.Millisecond)
	var perExpiry [2]int
	for _, rep := range reports {
		refreshes += rep.Refreshes
		for _, at := range rep.IssuedAt {
			perExpiry[map[bool]int{true: 0, false: 1}[at.Before(split)]]++
		}
		if rep.Failures != 0 || rep.Requests == 0 {
			t.Errorf("replica %s: got %d failed of %d requests (first: %s), want 0 failed of at least 1", rep.Name, rep.Failures, rep.Requests, rep.FirstErr)
		}
		if rep.Last != stored.Value {
			t.Errorf("replica %s: last token sent %q, want the stored one %q", rep.Name, rep.Last, stored.Value)
		}
	}
	if refreshes != 2 || perExpiry != [2]int{1, 1} {
		t.Errorf("Refresh calls across %d processes over 2 expiries: got %d (%v per expiry), want 2 (1 per expiry); reports: %+v",
			replicas, refreshes, perExpiry, reports)
	}
	if stored.Value == "tok-seed" {
		t.Errorf("stored token: got the seed, want a refreshed one")
	}
}

// runLoad sends requests from every replica every 20 ms until stop is
// closed, and counts failures.
type load struct {
	requests, failures atomic.Int64
	mu                 sync.Mutex
	firstErr           error
	stop               chan struct{}
	wg                 sync.WaitGroup
}

func startLoad(rs []*replica) *load {
	l := &load{stop: make(chan struct{})}
	for _, r := range rs {
		l.wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := r.get(ctx)
				cancel()
				l.requests.Add(1)
				if err != nil {
					l.failures.Add(1)
					l.mu.Lock()
					if l.firstErr == nil {
						l.firstErr = fmt.Errorf("replica %s: %w", r.name, err)
					}
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

func (l *load) finish() {
	close(l.stop)
	l.wg.Wait()
}

// sleepUntil sleeps until at.
func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

// TestRedisDownThenBack kills Redis under load between two expiries: no
// request fails, each replica refreshes alone once while Redis is down,
// and once Redis is back (empty), the fleet is back to one Refresh per
// expiry.
func TestRedisDownThenBack(t *testing.T) {
	const (
		n        = 8
		lifetime = 3 * time.Second
		window   = 1500 * time.Millisecond
		// margin puts each checkpoint halfway between two refreshes.
		margin = (lifetime - window) / 2
	)
	p, _ := startRedis(t)
	srv := newServer(t)
	is := newIssuer(lifetime)
	logger, logs := testutil.NewLogger()
	rs := make([]*replica, n)
	for i := range rs {
		rs[i] = newReplica(t, fmt.Sprintf("r%d", i), srv, is, replicaConfig{addr: p.Addr, key: "down", window: window, logger: logger})
	}
	getAll(t, rs)
	if got := sumRefreshes(rs); got != 1 {
		t.Fatalf("Refresh calls for the first token: got %d, want 1", got)
	}
	// The next refreshes start when the newest token a replica holds is
	// due; checkpoints fall halfway to the one after.
	nextCheckpoint := func() time.Time {
		t.Helper()
		var latest time.Time
		for _, r := range rs {
			at := is.issuedAt(srv.lastToken(r.name))
			if at.IsZero() {
				t.Fatalf("replica %s sent a token the issuer did not issue", r.name)
			}
			if at.After(latest) {
				latest = at
			}
		}
		return latest.Add(lifetime - window + margin)
	}
	checkpoint := nextCheckpoint()
	var upCalls [n]int64
	for i, r := range rs {
		upCalls[i] = r.refreshes.Load()
	}
	l := startLoad(rs)
	defer func() {
		if l != nil {
			l.finish()
		}
	}()

	// Down: every replica is due at about the same time and refreshes on
	// its own.
	time.Sleep(margin / 2)
	p.Stop()
	for i := 0; i < n && time.Now().Before(checkpoint); {
		if rs[i].refreshes.Load() > upCalls[i] {
			i++
			continue
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Back, empty, as soon as every replica has refreshed: go-redis
	// probes a server it failed to reach every second, and the next
	// refreshes are due a whole refresh window later.
	p.Restart(t) // the same port; stopped when the test ends
	sleepUntil(checkpoint)
	for i, r := range rs {
		if got := r.refreshes.Load() - upCalls[i]; got != 1 {
			t.Errorf("replica %s: Refresh calls with Redis down: got %d, want 1 (its own)", r.name, got)
		}
	}

	// One Refresh per expiry again.
	before := sumRefreshes(rs)
	for round := 1; round <= 2; round++ {
		checkpoint = nextCheckpoint()
		sleepUntil(checkpoint)
		if got := sumRefreshes(rs) - before; got != 1 {
			t.Errorf("expiry %d after Redis came back: got %d Refresh calls, want 1", round, got)
		}
		before = sumRefreshes(rs)
	}
	l.finish()
	if f, r := l.failures.Load(), l.requests.Load(); f != 0 || r < n*10 {
		t.Errorf("requests: got %d failed of %d (first: %v), want 0 failed of at least %d", f, r, l.firstErr, n*10)
	}
	l = nil
	last := srv.lastToken(rs[0].name)
	for _, r := range rs {
		if got := srv.lastToken(r.name); got != last {
			t.Errorf("replica %s ends on %q, want %q like replica %s", r.name, got, last, rs[0].name)
		}
	}
	// The store's failures were logged, and no token with them.
	out := logs.String()
	if !strings.Contains(out, "shared token store unavailable") {
		t.Errorf("logs: got none about the store being down, want a warning\n%s", out)
	}
	for i := int64(1); i <= is.n.Load(); i++ {
		if tok := fmt.Sprintf("tok-%d", i); strings.Contains(out, tok+" ") || strings.Contains(out, tok+"\n") || strings.Contains(out, tok+`"`) {
			t.Errorf("logs hold the token %s", tok)
		}
	}
}

// TestSlowRefreshKeepsTheLease: a Refresh three times slower than LeaseTTL
// keeps its lease (it is renewed), so the fleet still makes one Refresh, and
// every replica ends on its token.
func TestSlowRefreshKeepsTheLease(t *testing.T) {
	const n = 4
	p, _ := startRedis(t)
	srv := newServer(t)
	is := newIssuer(time.Hour)
	slow := func(ctx context.Context) {
		select {
		case <-time.After(1500 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	rs := make([]*replica, n)
	for i := range rs {
		rs[i] = newReplica(t, fmt.Sprintf("r%d", i), srv, is, replicaConfig{
			addr: p.Addr, key: "slow", opts: redisstore.Options{LeaseTTL: 500 * time.Millisecond}, hold: slow,
		})
	}
	getAll(t, rs)
	if got := sumRefreshes(rs); got != 1 {
		t.Errorf("Refresh calls: got %d, want 1", got)
	}
	for _, r := range rs {
		if got := srv.lastToken(r.name); got != "tok-1" {
			t.Errorf("replica %s sent %q, want tok-1", r.name, got)
		}
	}
}

// TestExpiredLeaseCannotSaveOutOfOrder: the leader's lease ends during its
// slow Refresh (as when its process is paused past the TTL), another
// replica takes over and saves a newer token; the first one's late save is
// refused, and both end on the newer token.
func TestExpiredLeaseCannotSaveOutOfOrder(t *testing.T) {
	p, rdb := startRedis(t)
	srv := newServer(t)
	is := newIssuer(time.Hour)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hold := func(ctx context.Context) {
		once.Do(func() { close(entered) })
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	a := newReplica(t, "a", srv, is, replicaConfig{addr: p.Addr, key: "fence", hold: hold})
	b := newReplica(t, "b", srv, is, replicaConfig{addr: p.Addr, key: "fence"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errA := make(chan error, 1)
	go func() { errA <- a.get(ctx) }()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("replica a never called Refresh")
	}
	if n := rdb.Del(ctx, "{fence}:lease").Val(); n != 1 {
		t.Fatalf("DEL lease: got %d keys deleted, want 1 (a holds it)", n)
	}
	if err := b.get(ctx); err != nil {
		t.Fatalf("replica b: %v", err)
	}
	close(release)
	if err := <-errA; err != nil {
		t.Fatalf("replica a: %v", err)
	}
	stored, err := b.store.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	// a's Refresh started first (tok-1); b's, after a's lease ended, is
	// newer (tok-2).
	if stored.Value != "tok-2" {
		t.Errorf("stored: got %q, want tok-2", stored.Value)
	}
	for _, r := range []*replica{a, b} {
		if got := srv.lastToken(r.name); got != "tok-2" {
			t.Errorf("replica %s sent %q, want tok-2", r.name, got)
		}
	}
	if got := sumRefreshes([]*replica{a, b}); got != 2 {
		t.Errorf("Refresh calls: got %d, want 2", got)
	}
}

// TestUnauthorizedReadsTheStore: after a 401, a replica reads Redis and
// takes the token another replica refreshed for the same 401.
func TestUnauthorizedReadsTheStore(t *testing.T) {
	t.Parallel()
	p, _ := startRedis(t)
	srv := newServer(t)
	is := newIssuer(time.Hour)
	rs := []*replica{
		newReplica(t, "a", srv, is, replicaConfig{addr: p.Addr, key: "401"}),
		newReplica(t, "b", srv, is, replicaConfig{addr: p.Addr, key: "401"}),
	}
	getAll(t, rs)
	srv.refuseToken("tok-1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range rs {
		if err := r.get(ctx); err != nil {
			t.Fatalf("replica %s after its token was refused: %v", r.name, err)
		}
		if got := srv.lastToken(r.name); got != "tok-2" {
			t.Errorf("replica %s replayed with %q, want tok-2", r.name, got)
		}
	}
	if got := sumRefreshes(rs); got != 2 {
		t.Errorf("Refresh calls: got %d, want 2 (one at start, one for the 401)", got)
	}
}

// TestWarmTokenSendsNoRedisCommand: with a usable token in memory, requests
// cost no Redis command at all.
func TestWarmTokenSendsNoRedisCommand(t *testing.T) {
	t.Parallel()
	p, rdb := startRedis(t)
	srv := newServer(t)
	is := newIssuer(time.Hour)
	rs := []*replica{
		newReplica(t, "a", srv, is, replicaConfig{addr: p.Addr, key: "hot"}),
		newReplica(t, "b", srv, is, replicaConfig{addr: p.Addr, key: "hot"}),
	}
	cold := commandStats(t, rdb)
	getAll(t, rs)
	warm := commandStats(t, rdb)
	// The measure sees the store at work: the first token cost reads and
	// scripts.
	if warm["hmget"]-cold["hmget"] < 2 || warm["evalsha"]+warm["eval"]-cold["evalsha"]-cold["eval"] < 1 {
		t.Fatalf("commands for the first token: got %v then %v, want HMGET and a script", cold, warm)
	}
	const requests = 50
	for range requests {
		getAll(t, rs)
	}
	after := commandStats(t, rdb)
	for cmd, calls := range after {
		if cmd == "info" {
			continue
		}
		if d := calls - warm[cmd]; d != 0 {
			t.Errorf("%s: got %d calls during %d warm requests per replica, want 0", cmd, d, requests)
		}
	}
	if d := after["info"] - warm["info"]; d != 1 {
		t.Errorf("info: got %d calls between two snapshots, want 1 (the snapshot)", d)
	}
}

// TestFollowerRefreshesAloneWhenWaitRunsOut: a lease held by a process that
// never saves makes a replica wait for half its RefreshTimeout, then
// refresh on its own; its request succeeds and the store gets its token.
func TestFollowerRefreshesAloneWhenWaitRunsOut(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	p, rdb := startRedis(t)
	srv := newServer(t)
	is := newIssuer(time.Hour)
	ctx := context.Background()
	if err := rdb.Set(ctx, "{stuck}:lease", "a process that hangs", time.Minute).Err(); err != nil {
		t.Fatalf("SET lease: %v", err)
	}
	r := newReplica(t, "a", srv, is, replicaConfig{addr: p.Addr, key: "stuck", timeout: timeout})
	start := time.Now()
	if err := r.get(ctx); err != nil {
		t.Fatalf("GET: got %v, want no error", err)
	}
	if waited := time.Since(start); waited < timeout/2-100*time.Millisecond || waited >= timeout {
		t.Errorf("GET took %v, want about %v (half the RefreshTimeout) and less than %v", waited, timeout/2, timeout)
	}
	if got := r.refreshes.Load(); got != 1 {
		t.Errorf("Refresh calls: got %d, want 1", got)
	}
	stored, err := r.store.Load(ctx)
	if err != nil || stored.Value != "tok-1" {
		t.Errorf("stored: got %q, %v; want tok-1", stored.Value, err)
	}
}

// boundAPI is an authorization server of the test kit, which
// authenticates its client by tls_client_auth and binds its tokens to the
// certificate presented (cnf x5t#S256, RFC 8705), and an API that requires
// a client certificate and refuses, with 401 invalid_token, a token not
// bound to the certificate presented to it.
type boundAPI struct {
	auth *securehttptest.AuthServer
	api  *securehttptest.Server

	mu        sync.Mutex
	refused   int               // 401s sent
	lastBound map[string]string // replica -> the x5t#S256 of the last token it sent
}

func x5t(der []byte) string {
	h := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func newBoundAPI(t testing.TB, lifetime time.Duration) *boundAPI {
	t.Helper()
	a := &boundAPI{lastBound: map[string]string{}}
	a.auth = securehttptest.NewAuthServer(t, securehttptest.ClientAuth("tls_client_auth"), securehttptest.TokenLifetime(lifetime))
	a.api = securehttptest.NewServer(t, http.HandlerFunc(a.serve), securehttptest.RequireClientCert())
	return a
}

func (a *boundAPI) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	claims, err := a.auth.VerifyRequest(r)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.refused++
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	a.lastBound[r.Header.Get("X-Replica")] = claims.Cnf.X5TS256
	_, _ = w.Write([]byte("ok"))
}

// tokenRequests returns how many token requests the authorization server
// received with each client certificate, by its x5t#S256.
func (a *boundAPI) tokenRequests() map[string]int {
	n := map[string]int{}
	for _, r := range a.auth.Requests() {
		if r.Method == http.MethodPost && len(r.TLS.PeerCertificates) > 0 {
			n[x5t(r.TLS.PeerCertificates[0].Raw)]++
		}
	}
	return n
}

// certReplica is one process's client with its own client certificate,
// Redis client and Transport.
type certReplica struct {
	name   string
	thumb  string // x5t#S256 of its certificate
	client *http.Client
	url    string
}

func newCertReplica(t testing.TB, name string, a *boundAPI, leaf *securehttptest.Cert, addr string, window time.Duration) *certReplica {
	t.Helper()
	certFile, keyFile := leaf.Files(t)
	cert, err := securehttp.LoadClientCert(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadClientCert: %v", err)
	}
	t.Cleanup(func() { _ = cert.Close() })
	cfg := a.api.Config()
	cfg.GetClientCertificate = cert.GetClientCertificate
	cfg.Bearer = &securehttp.Bearer{
		Store:             newStore(t, newClient(t, addr), "certs", redisstore.Options{}),
		ClientCredentials: a.auth.ClientCredentials(),
		Hosts:             []string{a.api.Host},
		RefreshWindow:     window,
	}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return &certReplica{name: name, thumb: x5t(leaf.Leaf().Raw), client: client, url: a.api.URL + "/api"}
}

// post sends a POST whose body cannot be replayed (no GetBody), so that a
// 401 cannot be recovered by a replay: the first token sent must be right.
func (r *certReplica) post(ctx context.Context) error {
	body := io.NopCloser(strings.NewReader("payload"))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Replica", r.name)
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// TestFleetCertificateBoundTokens: replicas with different client
// certificates share one Redis key. Each gets a token bound to its own
// certificate (RFC 8705), from the first request on; replicas with the same
// certificate share theirs; no request is refused, even one whose body
// cannot be replayed after a 401; and the fleet makes one token request per
// certificate per expiry.
func TestFleetCertificateBoundTokens(t *testing.T) {
	t.Parallel()
	const (
		lifetime = 4 * time.Second
		window   = 2 * time.Second
	)
	p, rdb := startRedis(t)
	a := newBoundAPI(t, lifetime)
	leafA, leafB := a.auth.ClientCert(t), a.auth.ClientCert(t)
	rs := []*certReplica{
		newCertReplica(t, "a1", a, leafA, p.Addr, window),
		newCertReplica(t, "b", a, leafB, p.Addr, window),
		newCertReplica(t, "a2", a, leafA, p.Addr, window),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	round := func(what string) {
		t.Helper()
		for _, r := range rs {
			if err := r.post(ctx); err != nil {
				t.Fatalf("%s: replica %s: got %v, want 200", what, r.name, err)
			}
		}
	}
	check := func(what string, perCert int) {
		t.Helper()
		issued := a.tokenRequests()
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.refused != 0 {
			t.Errorf("%s: the API refused %d requests, want 0", what, a.refused)
		}
		for _, r := range rs {
			if got := issued[r.thumb]; got != perCert {
				t.Errorf("%s: token requests with replica %s's certificate: got %d, want %d", what, r.name, got, perCert)
			}
			if a.lastBound[r.name] != r.thumb {
				t.Errorf("%s: replica %s sent a token bound to another certificate", what, r.name)
			}
		}
		if got, want := len(issued), 2; got != want {
			t.Errorf("%s: certificates tokens were requested with: got %d, want %d", what, got, want)
		}
	}
	// The first requests, in turn: a1 leads for certificate A, b may not
	// take a1's token, a2 takes a1's.
	round("first requests")
	check("first expiry", 1)
	first := time.Now()

	// Redis holds one record per certificate, under its binding, and none
	// for unbound tokens.
	keys, err := rdb.Keys(ctx, "*:token").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	if slices.Contains(keys, "{certs}:token") || len(keys) != 2 {
		t.Errorf("token records in Redis: got %v, want one per certificate and none unbound", keys)
	}

	// Inside the refresh window the replicas refresh in the background, one
	// per certificate; once they are done, every request carries a new token.
	time.Sleep(time.Until(first.Add(lifetime - window + window/4)))
	round("requests in the refresh window")
	deadline := time.Now().Add(10 * time.Second)
	for {
		issued := a.tokenRequests()
		n := issued[rs[0].thumb] + issued[rs[1].thumb]
		if n >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let the followers take the leaders' tokens
	round("requests after the refresh")
	check("second expiry", 2)
}
