package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/redisstore"
)

// The redisstore benchmarks need redis-server (Debian package redis-server);
// without it they are skipped.

// benchEncKey seals the benchmark's records.
var benchEncKey = bytes.Repeat([]byte{0x42}, 32)

// startRedis starts a private redis-server and a client for it.
func startRedis(b *testing.B) (*peers.Peer, *redis.Client) {
	b.Helper()
	p := peers.StartRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr})
	b.Cleanup(func() { _ = rdb.Close() })
	return p, rdb
}

func newRedisStore(b *testing.B, rdb redis.UniversalClient, key string) *redisstore.Store {
	b.Helper()
	s, err := redisstore.New(rdb, key, redisstore.Options{EncryptionKey: benchEncKey})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// redisCommands is the number of commands Redis has run, INFO included.
func redisCommands(b *testing.B, rdb *redis.Client) int64 {
	b.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for line := range strings.SplitSeq(info, "\n") {
		_, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		var calls int64
		if _, err := fmt.Sscanf(rest, "%d,", &calls); err == nil {
			n += calls
		}
	}
	return n
}

// BenchmarkGetRedisStore measures securehttp's keep-alive GET over HTTP/2,
// from 1 and 64 goroutines, with its token in a MemoryStore and in a
// redisstore.Store. A warm token is served from memory either way, so the
// targets are the same allocs/op and 0 redis-cmds/op (Redis commands per
// request, the measuring INFO excluded).
func BenchmarkGetRedisStore(b *testing.B) {
	f := server(b)
	_, rdb := startRedis(b)
	url := "https://" + hostH2 + "/get"
	for _, conc := range []int{1, 64} {
		for _, kind := range []string{"memory", "redis"} {
			b.Run(fmt.Sprintf("conc=%d/store=%s", conc, kind), func(b *testing.B) {
				c := storeClient(b, f, rdb, kind)
				defer c.close()
				ctx := b.Context()
				if err := concurrently(conc, conc, func() error { return c.get(ctx, url) }); err != nil {
					b.Fatal(err)
				}
				cmds := redisCommands(b, rdb)
				b.ReportAllocs()
				b.ResetTimer()
				if err := concurrently(conc, b.N, func() error { return c.get(ctx, url) }); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(redisCommands(b, rdb)-cmds-1)/float64(b.N), "redis-cmds/op")
			})
		}
	}
}

// BenchmarkGetRedisPaired pairs the MemoryStore client (A) with the
// redisstore client (B) in alternating blocks, as BenchmarkGetPaired does:
// the figure for the "ratio ≤ 1.02" target.
func BenchmarkGetRedisPaired(b *testing.B) {
	f := server(b)
	_, rdb := startRedis(b)
	url := "https://" + hostH2 + "/get"
	for _, conc := range []int{1, 64} {
		clients := [2]*client{storeClient(b, f, rdb, "memory"), storeClient(b, f, rdb, "redis")}
		b.Run(fmt.Sprintf("proto=h2/conc=%d", conc), func(b *testing.B) {
			ctx := b.Context()
			var ops [2]func() error
			for i, c := range clients {
				ops[i] = func() error { return c.get(ctx, url) }
				if err := concurrently(conc, conc, ops[i]); err != nil {
					b.Fatal(err)
				}
			}
			alternate(b, conc, max(64, 16*conc), ops, [2]string{"memory", "redis"})
		})
		for _, c := range clients {
			c.close()
		}
	}
}

// storeClient is securehttp with a day-long token in a MemoryStore, or in
// a redisstore.Store under a key of its own.
func storeClient(b *testing.B, f *fixture, rdb *redis.Client, kind string) *client {
	b.Helper()
	o := secureOptions{token: longJWT(time.Now()), refresh: refuseRefresh}
	if kind == "redis" {
		s := newRedisStore(b, rdb, fmt.Sprintf("bench-get-%d", time.Now().UnixNano()))
		if err := s.Save(context.Background(), securehttp.Token{Value: o.token}); err != nil {
			b.Fatal(err)
		}
		o.store, o.token = s, ""
	}
	return stdClient("securehttp-"+kind, f.secureClient(b, o))
}

// The fleet benchmark's replicas are the test binary started again with
// fleetEnv set; the other variables say where the server and Redis are.
const (
	fleetEnv      = "SECUREHTTP_BENCH_FLEET"
	fleetAddrEnv  = "SECUREHTTP_BENCH_FLEET_SERVER"
	fleetRootEnv  = "SECUREHTTP_BENCH_FLEET_ROOT"
	fleetRedisEnv = "SECUREHTTP_BENCH_FLEET_REDIS"
	fleetKeyEnv   = "SECUREHTTP_BENCH_FLEET_KEY"

	fleetReplicas = 8
	fleetBurst    = 500
	// The timeline, from the first token's iat (L = 5 s, as the "expiry"
	// stampede): the token is unusable from 4.5 s, the burst comes at
	// 4.55 s, when every request must wait for a new token.
	fleetLifetime = 5 * time.Second
	fleetQuiet    = 2500 * time.Millisecond
	fleetBurstAt  = 4550 * time.Millisecond
	// fleetCounter is the Redis key where replicas count Refresh calls.
	fleetCounter = "bench-fleet-refreshes"
)

// fleetReport is what a replica prints after its burst.
type fleetReport struct {
	Latencies []time.Duration
	Failed    int
	FirstErr  string
	Late      bool // the warm-up ended after the refresh window opened
}

// BenchmarkFleetRefreshRedis runs 8 processes sharing one redisstore key,
// each sending a burst of 500 concurrent requests when the shared token has
// just become unusable, with a Refresh that takes 200 ms. Each op is one
// timeline (run it with -benchtime=1x; about 7 s). It reports:
//
//	refreshes       Refresh calls in the whole fleet (target 1)
//	failed          failed requests (target 0)
//	p50-ms, p99-ms  latency of the 4000 requests, all of which waited for
//	                the new token
//
// ns/op is suppressed: it would be the timeline's length, sleeps included.
func BenchmarkFleetRefreshRedis(b *testing.B) {
	f := server(b)
	rp, rdb := startRedis(b)
	var refreshes, failed float64
	var p50, p99 time.Duration
	for i := range b.N {
		for try := 1; ; try++ {
			r, err := runFleet(b, f, rp.Addr, rdb, fmt.Sprintf("bench-fleet-%d-%d", i, try))
			if err == nil {
				refreshes += r.refreshes
				failed += r.failed
				p50 += r.p50
				p99 += r.p99
				break
			}
			if try == 3 || !errors.Is(err, errTimeline) {
				b.Fatal(err)
			}
			b.Logf("%v; running it again", err)
		}
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(refreshes/n, "refreshes")
	b.ReportMetric(failed/n, "failed")
	b.ReportMetric(ms(p50)/n, "p50-ms")
	b.ReportMetric(ms(p99)/n, "p99-ms")
}

type fleetResult struct {
	refreshes, failed float64
	p50, p99          time.Duration
}

func runFleet(b *testing.B, f *fixture, redisAddr string, rdb *redis.Client, key string) (fleetResult, error) {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	type replica struct {
		cmd *exec.Cmd
		in  *os.File
		out *bufio.Reader
	}
	reps := make([]*replica, fleetReplicas)
	for i := range reps {
		cmd := exec.Command(exe, "-test.run=^$", "-test.bench=^$")
		cmd.Env = append(os.Environ(), fleetEnv+"=1", fleetAddrEnv+"="+f.addr, fleetRootEnv+"="+f.rootPEM,
			fleetRedisEnv+"="+redisAddr, fleetKeyEnv+"="+key)
		cmd.Stderr = os.Stderr
		cmd.WaitDelay = time.Second
		pr, pw, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stdin = pr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pr.Close()
		r := &replica{cmd: cmd, in: pw, out: bufio.NewReader(stdout)}
		reps[i] = r
		defer func() {
			r.in.Close()
			_ = r.cmd.Process.Kill() // by PID; a no-op once it has exited
			_ = r.cmd.Wait()
		}()
	}
	// readAll reads one line from every replica, within timeout.
	readAll := func(timeout time.Duration) []string {
		lines := make([]string, len(reps))
		errs := make([]error, len(reps))
		var wg sync.WaitGroup
		for i, r := range reps {
			wg.Go(func() { lines[i], errs[i] = r.out.ReadString('\n') })
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(timeout):
			for _, r := range reps {
				_ = r.cmd.Process.Kill()
			}
			<-done
			b.Fatalf("fleet replicas did not answer within %v", timeout)
		}
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
		return lines
	}
	readAll(time.Minute) // "ready"

	// Start on a whole second, as the stampede does, and leave the
	// replicas a second to warm up before the refresh window opens.
	iat := time.Now().Truncate(time.Second).Add(2 * time.Second)
	ctx := context.Background()
	if err := rdb.Del(ctx, fleetCounter).Err(); err != nil {
		b.Fatal(err)
	}
	store := newRedisStore(b, rdb, key)
	if err := store.Save(ctx, securehttp.Token{Value: mintJWT(iat, iat.Add(fleetLifetime))}); err != nil {
		b.Fatal(err)
	}
	for _, r := range reps {
		fmt.Fprintf(r.in, "%d\n", iat.UnixNano())
	}
	var res fleetResult
	var lat []time.Duration
	late := false
	for _, line := range readAll(time.Until(iat) + fleetBurstAt + time.Minute) {
		var rep fleetReport
		if err := json.Unmarshal([]byte(line), &rep); err != nil {
			b.Fatalf("fleet replica report %q: %v", line, err)
		}
		if rep.Failed > 0 {
			b.Logf("fleet replica: %d failed requests, the first with: %s", rep.Failed, rep.FirstErr)
		}
		res.failed += float64(rep.Failed)
		late = late || rep.Late
		lat = append(lat, rep.Latencies...)
	}
	if late {
		return res, fmt.Errorf("%w: a replica's warm-up ended after the refresh window opened", errTimeline)
	}
	n, err := rdb.Get(ctx, fleetCounter).Int64()
	if err != nil {
		b.Fatal(err)
	}
	res.refreshes = float64(n)
	slices.Sort(lat)
	pick := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[max(0, min(int(float64(len(lat))*q+0.5)-1, len(lat)-1))]
	}
	res.p50, res.p99 = pick(0.50), pick(0.99)
	return res, nil
}

// fleetChild is one replica of BenchmarkFleetRefreshRedis: it prints
// "ready", reads the token's iat (Unix nanoseconds), warms up, sends its
// burst at iat+fleetBurstAt and prints its fleetReport.
func fleetChild() error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(os.Getenv(fleetRootEnv))) {
		return errors.New("no root certificate")
	}
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(fleetRedisEnv)})
	defer rdb.Close()
	store, err := redisstore.New(rdb, os.Getenv(fleetKeyEnv), redisstore.Options{EncryptionKey: benchEncKey})
	if err != nil {
		return err
	}
	addr := os.Getenv(fleetAddrEnv)
	refresh := func(ctx context.Context) (securehttp.Token, error) {
		if err := rdb.Incr(ctx, fleetCounter).Err(); err != nil {
			return securehttp.Token{}, err
		}
		t := time.NewTimer(refreshDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return securehttp.Token{}, ctx.Err()
		}
		now := time.Now()
		return securehttp.Token{Value: mintJWT(now, now.Add(time.Hour))}, nil
	}
	hc, err := securehttp.NewClient(securehttp.Config{
		RootCAs: roots,
		Bearer: &securehttp.Bearer{
			Store:   store,
			Refresh: refresh,
			Hosts:   []string{hostH2},
		},
		Proxy: noProxy,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp4", addr)
		},
	})
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()

	fmt.Println("ready")
	var iatNs int64
	if _, err := fmt.Fscanf(os.Stdin, "%d\n", &iatNs); err != nil {
		return err
	}
	iat := time.Unix(0, iatNs)
	ctx := context.Background()
	url := "https://" + hostH2 + "/auth"
	time.Sleep(time.Until(iat))
	// Warm up: load the token from Redis (no Refresh: it is usable) and
	// open the HTTP/2 connection and its streams.
	if _, err := getOnce(ctx, hc, url); err != nil {
		return err
	}
	if _, failed, err := fleetBurstOnce(ctx, hc, url); failed > 0 {
		return fmt.Errorf("warm-up: %d requests failed, the first with: %w", failed, err)
	}
	rep := fleetReport{Late: time.Since(iat) >= fleetQuiet}
	time.Sleep(time.Until(iat.Add(fleetBurstAt)))
	var first error
	rep.Latencies, rep.Failed, first = fleetBurstOnce(ctx, hc, url)
	if first != nil {
		rep.FirstErr = first.Error()
	}
	out, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

// fleetBurstOnce sends fleetBurst GETs at once and returns their latencies,
// how many failed and the first error.
func fleetBurstOnce(ctx context.Context, hc *http.Client, url string) ([]time.Duration, int, error) {
	lat := make([]time.Duration, fleetBurst)
	errs := make([]error, fleetBurst)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range lat {
		wg.Go(func() {
			<-start
			t := time.Now()
			_, errs[i] = getOnce(ctx, hc, url)
			lat[i] = time.Since(t)
		})
	}
	close(start)
	wg.Wait()
	failed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	return lat, failed, first
}
