// Package bench measures securehttp side by side with what its users would
// otherwise use: bare net/http with a tuned http.Transport (the limit),
// golang.org/x/oauth2's Transport, go-retryablehttp's StandardClient and
// go-resty/resty v2.
//
// The benchmarks: BenchmarkGet (keep-alive GET, HTTP/1.1 and HTTP/2, 1 and
// 64 goroutines), BenchmarkGetPaired (bare net/http and securehttp in
// alternating blocks, for a ratio that load from elsewhere disturbs least),
// BenchmarkHandshake (new connections, with and without pins),
// BenchmarkHandshakePaired (securehttp with pins alternating with the same
// client without pins, and with bare net/http), BenchmarkUpload (a 128 MiB
// body, as an io.Reader that cannot be replayed and as one that can),
// BenchmarkRefreshStampede (1000 requests at token expiry and in the
// refresh-ahead window), BenchmarkDPoP (what a DPoP proof adds to a GET,
// against one P-256 signature and a jwt/v5 proof built by hand) and, with
// redis-server installed, BenchmarkGetRedisStore and BenchmarkGetRedisPaired
// (the keep-alive GET with the token in redisstore against MemoryStore) and
// BenchmarkFleetRefreshRedis (8 processes × 500 concurrent requests across
// an expiry, sharing one redisstore key). run.sh does not run the Redis
// ones; run them with
//
//	go test -run '^$' -bench 'FleetRefreshRedis' -benchtime 1x .  # one timeline
//	go test -run '^$' -bench 'GetRedis' -benchtime 1s .
//
// It is a module of its own, with a replace directive to the library, so
// that none of the comparators ever becomes a dependency of securehttp. The
// benchmarks live in the _test.go files of this package; run.sh runs them,
// summarises them with benchstat and cmd/report, and writes RESULTS.md,
// chart.svg and the figures of docs/benchmarks.md. CI only
// compiles them (go vet ./...).
//
// Every client talks to one TLS server on 127.0.0.1, which runs in a child
// process (the test binary started again with SECUREHTTP_BENCH_SERVER set),
// so that B/op and allocs/op count the client's allocations only, and the
// CPU profile shows the client only.
package bench
