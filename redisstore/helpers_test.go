package redisstore_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/redisstore"
	"github.com/securehttp/securehttp/securehttptest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		// A replica of TestFleetOneRefreshPerExpiry, in its own process.
		os.Exit(replicaMain())
	}
	// go-redis logs failed dials on its own package logger; the tests
	// that stop Redis expect them.
	redis.SetLogger(quietRedisLog{})
	goleak.VerifyTestMain(m)
}

type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

// encKey is the test EncryptionKey.
var encKey = bytes.Repeat([]byte{0x5a}, 32)

// startRedis starts a private redis-server and returns it with a client
// closed when the test ends.
func startRedis(t testing.TB) (*peers.Peer, *redis.Client) {
	t.Helper()
	p := peers.StartRedis(t)
	return p, newClient(t, p.Addr)
}

// newClient returns a client for addr with short timeouts, closed when the
// test ends. Each replica gets its own, as separate processes would.
func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(redisOptions(addr))
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func redisOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr:         addr,
		DialTimeout:  time.Second,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
		MaxRetries:   1,
		// Fail fast when Redis is down: the token source then refreshes
		// on its own.
		DialerRetries: 1,
		PoolSize:      4,
	}
}

// newStore returns an encrypting Store for key.
func newStore(t testing.TB, rdb redis.UniversalClient, key string, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	if opts.EncryptionKey == nil && !opts.Plaintext {
		opts.EncryptionKey = encKey
	}
	s, err := redisstore.New(rdb, key, opts)
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	return s
}

// issuer hands out numbered tokens "tok-<prefix>N", counting the calls per replica.
type issuer struct {
	lifetime time.Duration
	prefix   string // after "tok-"
	n        atomic.Int64

	mu     sync.Mutex
	issued map[string]time.Time // token -> issue time
}

func newIssuer(lifetime time.Duration) *issuer {
	return &issuer{lifetime: lifetime, issued: map[string]time.Time{}}
}

// refresh returns a Refresh function for one replica, which counts its own
// calls in *calls and waits for hold first, if hold is not nil.
func (is *issuer) refresh(calls *atomic.Int64, hold func(ctx context.Context)) func(context.Context) (securehttp.Token, error) {
	return func(ctx context.Context) (securehttp.Token, error) {
		calls.Add(1)
		// Numbered when the call starts: a refresh started later gives a
		// newer token, however long it takes.
		v := fmt.Sprintf("tok-%s%d", is.prefix, is.n.Add(1))
		if hold != nil {
			hold(ctx)
		}
		now := time.Now()
		is.mu.Lock()
		is.issued[v] = now
		is.mu.Unlock()
		return securehttp.Token{Value: v, Expiry: now.Add(is.lifetime)}, nil
	}
}

// issueTimes returns when each token was issued.
func (is *issuer) issueTimes() []time.Time {
	is.mu.Lock()
	defer is.mu.Unlock()
	var out []time.Time
	for _, at := range is.issued {
		out = append(out, at)
	}
	return out
}

func (is *issuer) issuedAt(tok string) time.Time {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.issued[tok]
}

// server is a server of the test kit that answers 200 to a request with a
// bearer token and remembers the last token each replica sent (the
// X-Replica header names the replica). A token listed in refuse gets 401
// invalid_token.
type server struct {
	*securehttptest.Server

	mu     sync.Mutex
	last   map[string]string
	refuse map[string]bool
}

func newServer(t testing.TB) *server {
	t.Helper()
	s := &server{last: map[string]string{}, refuse: map[string]bool{}}
	s.Server = securehttptest.NewServer(t, http.HandlerFunc(s.serve))
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !strings.HasPrefix(tok, "tok-") {
		http.Error(w, "no token", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.last[r.Header.Get("X-Replica")] = tok
	refused := s.refuse[tok]
	s.mu.Unlock()
	if refused {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

func (s *server) lastToken(replica string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[replica]
}

func (s *server) refuseToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse[tok] = true
}

// replica is one process's client: its own Redis client, Store and
// Transport, sharing key with the others.
type replica struct {
	name      string
	client    *http.Client
	store     *redisstore.Store
	refreshes atomic.Int64
	url       string
}

type replicaConfig struct {
	addr    string
	key     string
	opts    redisstore.Options
	window  time.Duration
	timeout time.Duration
	hold    func(ctx context.Context)
	logger  *slog.Logger
}

func newReplica(t testing.TB, name string, srv *server, is *issuer, rc replicaConfig) *replica {
	t.Helper()
	r := &replica{name: name, url: srv.URL + "/"}
	r.store = newStore(t, newClient(t, rc.addr), rc.key, rc.opts)
	timeout := rc.timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	cfg := srv.Config()
	cfg.Logger = rc.logger
	cfg.Bearer = &securehttp.Bearer{
		Store:          r.store,
		Refresh:        is.refresh(&r.refreshes, rc.hold),
		Hosts:          []string{srv.Host},
		RefreshWindow:  rc.window,
		RefreshTimeout: timeout,
	}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(client.CloseIdleConnections)
	r.client = client
	return r
}

// get sends one request and returns an error unless it got 200.
func (r *replica) get(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
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

// getAll sends one request from every replica at once and fails the test
// on any error.
func getAll(t testing.TB, rs []*replica) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { errs[i] = r.get(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %s: GET: got error %v, want none", rs[i].name, err)
		}
	}
}

// sumRefreshes is how many times the replicas called Refresh in all.
func sumRefreshes(rs []*replica) int64 {
	var n int64
	for _, r := range rs {
		n += r.refreshes.Load()
	}
	return n
}

// commandStats returns INFO commandstats as command name -> calls.
func commandStats(t testing.TB, rdb *redis.Client) map[string]int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	stats := map[string]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		// cmdstat_get:calls=2,usec=...
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		var calls int64
		if _, err := fmt.Sscanf(rest, "calls=%d,", &calls); err != nil {
			t.Fatalf("INFO commandstats line %q: %v", line, err)
		}
		stats[name] = calls
	}
	return stats
}
