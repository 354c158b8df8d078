#!/usr/bin/env bash
# Runs the securehttp benchmarks side by side with bare net/http, oauth2,
# go-retryablehttp and resty, and writes RESULTS.md, chart.svg and the
# figures of docs/benchmarks.md.
#
#   bench/run.sh                 the full run: 6 passes, about 8 minutes on 2 cores
#   bench/run.sh -count 10       more passes, for tighter confidence intervals
#   bench/run.sh -quick          1 short pass: checks the pipeline, measures nothing
#   bench/run.sh -profile        also profile securehttp's keep-alive GET
#   bench/run.sh -profile-only   only that profile (about a minute)
#
# Each pass runs every benchmark once, and the passes are repeated, rather
# than repeating each benchmark back to back (go test -count): a burst of
# load from elsewhere on the machine then spreads over all the clients
# instead of landing on one. Raw output goes to out/ (ignored by git).
#
# Only a full run (the default run lengths, 6 passes or more) rewrites
# docs/benchmarks.md; any other writes its copy to out/, and RESULTS.md
# says that its figures are not a measurement. The run lengths can be set
# with BENCH_GET_TIME, BENCH_HS_TIME, BENCH_UPLOAD_TIME and
# BENCH_STAMPEDE_TIME (go test -benchtime values).
set -euo pipefail
cd "$(dirname "$0")"

count=6
profile=0
measure=1
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    -count) count="$2"; shift 2 ;;
    -quick) quick=1; shift ;;
    -profile) profile=1; shift ;;
    -profile-only) profile=1; measure=0; shift ;;
    *) sed -n '2,11s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
  esac
done

# Per-benchmark run lengths: long enough for stable figures, short enough
# that the whole run fits in about ten minutes on 2 cores.
default_times="1s 1s 2x 1x"
get_time=${BENCH_GET_TIME:-1s}           # 20 keep-alive GET cases, and 8 paired ones
hs_time=${BENCH_HS_TIME:-1s}             # 6 handshake cases, and 4 paired ones
upload_time=${BENCH_UPLOAD_TIME:-2x}     # 9 client and body cases, 128 MiB per upload
stampede_time=${BENCH_STAMPEDE_TIME:-1x} # 2 timelines of 4 to 6 s each
if [ "$quick" = 1 ]; then
  count=1 get_time=100ms hs_time=100ms upload_time=1x stampede_time=1x
fi
# Whether this run measures anything: the default run lengths, and passes
# enough for a 95% confidence interval of each median.
full=0
if [ "$get_time $hs_time $upload_time $stampede_time" = "$default_times" ] && [ "$count" -ge 6 ]; then
  full=1
fi

mkdir -p out
step() { printf '\n=== %s\n' "$*" >&2; }

step "building the benchmark binary"
go version
go build ./... # cmd/report
go test -c -o out/bench.test .
bin=./out/bench.test
# What was measured: the library as it was when the binary was built.
commit=$(git -C .. rev-parse --short HEAD 2>/dev/null || echo unknown)
changed=$(git -C .. status --porcelain -- ':(glob)*.go' go.mod go.sum 2>/dev/null | awk '{print $2}' | tr '\n' ' ')
if [ -n "$changed" ]; then commit="$commit, with uncommitted changes to ${changed% }"; fi

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

if [ "$measure" = 1 ]; then
  commands=(
    "$bin -test.run '^\$' -test.bench '^BenchmarkGet\$' -test.benchtime $get_time"
    "$bin -test.run '^\$' -test.bench '^BenchmarkGetPaired\$' -test.benchtime $get_time"
    "$bin -test.run '^\$' -test.bench '^BenchmarkHandshake\$' -test.benchtime $hs_time"
    "$bin -test.run '^\$' -test.bench '^BenchmarkHandshakePaired\$' -test.benchtime $hs_time"
    "$bin -test.run '^\$' -test.bench '^BenchmarkUpload\$' -test.benchtime $upload_time"
    "$bin -test.run '^\$' -test.bench '^BenchmarkRefreshStampede\$' -test.benchtime $stampede_time"
    "$bin -test.run '^\$' -test.bench '^BenchmarkDPoP\$' -test.benchtime $get_time"
    "$bin -test.run '^\$' -test.bench '^BenchmarkGetOTel\$' -test.benchtime $get_time"
    "$bin -test.run '^\$' -test.bench '^BenchmarkGetRedis(Store|Paired)\$' -test.benchtime $get_time"
    "$bin -test.run '^\$' -test.bench '^BenchmarkFleetRefreshRedis\$' -test.benchtime $stampede_time"
  )
  load_start=$(loadavg)
  started=$(date +%s)
  : >out/bench.txt
  for pass in $(seq 1 "$count"); do
    for cmd in "${commands[@]}"; do
      step "pass $pass/$count: ${cmd#"$bin "}"
      eval "$cmd" | tee -a out/bench.txt | grep -E '^(Benchmark|FAIL|panic)' >&2 || true
      if grep -qE '^(FAIL|panic|--- FAIL)' out/bench.txt; then
        echo "a benchmark failed: see out/bench.txt" >&2
        exit 1
      fi
    done
  done
  elapsed=$(($(date +%s) - started))
  load_end=$(loadavg)

  step "benchstat"
  {
    for name in Get Handshake Upload; do
      go tool benchstat -filter ".name:$name" -col /client out/bench.txt
      echo
    done
    for name in GetPaired HandshakePaired; do
      go tool benchstat -filter ".name:$name" out/bench.txt
      echo
    done
    go tool benchstat -filter '.name:RefreshStampede' out/bench.txt
    for name in DPoP GetOTel GetRedisStore GetRedisPaired FleetRefreshRedis; do
      echo
      go tool benchstat -filter ".name:$name" out/bench.txt
    done
  } >out/benchstat.txt
  cat out/benchstat.txt

  step "tables, chart and docs/benchmarks.md figures"
  cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  mem_total=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
  about="$(date -u '+%Y-%m-%d') on $(nproc) cores ($cpu_model), $(go env GOVERSION), securehttp commit $commit, $count passes"
  readme=../docs/benchmarks.md
  if [ "$full" = 0 ]; then
    # A short run must not put its figures in the guide.
    cp ../docs/benchmarks.md out/benchmarks.md
    readme=out/benchmarks.md
  fi
  report=(go run ./cmd/report -in out/bench.txt -md out/tables.md -svg chart.svg -readme "$readme" -readme-chart ../bench/chart.svg -about "$about")
  "${report[@]}"

  step "RESULTS.md"
  {
    echo "# securehttp benchmarks"
    echo
    if [ "$full" = 0 ]; then
      echo "**A short check run ($count passes; run lengths $get_time, $hs_time, $upload_time, $stampede_time), not a"
      echo "measurement: too short for stable figures or confidence intervals. Do not quote it; run \`./run.sh\`.**"
      echo
    fi
    echo "Written by \`bench/run.sh\`; do not edit by hand. Absolute times depend on the machine:"
    echo "the paired ratios, with their confidence intervals, are the figures to quote."
    echo
    echo "## Machine"
    echo
    echo "| | |"
    echo "| --- | --- |"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
    echo "| CPU | $cpu_model, $(nproc) cores (\`nproc\`) |"
    echo "| memory | $mem_total |"
    echo "| OS | $(uname -sr) |"
    echo "| Go | $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH) |"
    echo "| securehttp | commit $commit |"
    echo "| load average (1, 5, 15 min) | $load_start at the start, $load_end at the end |"
    echo "| duration | $((elapsed / 60)) min $((elapsed % 60)) s for $count passes |"
    echo
    if awk -v l="${load_start%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
      echo "**The machine was busy with other work during this run** (load average above; the benchmarks"
      echo "themselves keep about 2 cores busy at most). Wall times (time/op) are noisy under such load;"
      echo "CPU/op (the client process's CPU time) is less disturbed, and B/op and allocs/op not at all."
      echo
    fi
    echo "## Commands"
    echo
    echo '```sh'
    if [ "$quick" = 1 ]; then echo "cd bench && ./run.sh -quick"; else echo "cd bench && ./run.sh -count $count"; fi
    echo '```'
    echo
    echo "which builds \`go test -c -o out/bench.test .\` and runs, $count times over, one pass of:"
    echo
    echo '```sh'
    printf '%s\n' "${commands[@]}"
    echo '```'
    echo
    echo "then \`go tool benchstat\` (below) and \`${report[*]:0:9} -readme $readme -about …\`."
    echo
    echo "Every client talks to one TLS server on 127.0.0.1 in a child process (so B/op, allocs/op and CPU/op"
    echo "are the client's alone), with the same roots (a generated root, intermediate and ECDSA P-256 leaf),"
    echo "the same dialer, no proxy, and MaxIdleConnsPerHost 64. bare net/http sends no Authorization header;"
    echo "oauth2 sends a static token; securehttp runs with pins, a bearer token (a day-long JWT in a"
    echo "MemoryStore, with a Refresh func) and retries (the default policy) all enabled."
    echo
    echo "## Results"
    echo
    echo "![securehttp benchmarks](chart.svg)"
    echo
    cat out/tables.md
    echo
    echo "## benchstat"
    echo
    echo "Every measure of every case, with 95% confidence intervals and the significance of each"
    echo "difference from bare net/http (\`~\` means none at p < 0.05)."
    echo
    echo '```'
    cat out/benchstat.txt
    echo '```'
  } >RESULTS.md
  if [ "$full" = 1 ]; then
    echo "wrote bench/RESULTS.md, bench/chart.svg and the figures of docs/benchmarks.md in $((elapsed / 60)) min $((elapsed % 60)) s" >&2
  else
    echo "a short run: wrote bench/RESULTS.md and bench/chart.svg (marked as not a measurement) and bench/out/README.md, not README.md, in $((elapsed / 60)) min $((elapsed % 60)) s" >&2
  fi
fi

if [ "$profile" = 1 ]; then
  # A fixed number of requests for both clients, so that the difference of
  # their allocation profiles is securehttp's extra cost, in objects per
  # $n requests: divide by $n for allocs/op. Every allocation is recorded
  # (-memprofilerate 1), which slows everything down, so the CPU profile
  # comes from a separate run at the normal rate.
  n=20000
  bench_get() { # client, extra flags...
    local client=$1; shift
    $bin -test.run '^$' -test.bench "^BenchmarkGet\$/^proto=h1\$/^conc=1\$/^client=$client\$" \
      -test.benchtime ${n}x -test.count 1 "$@" | grep '^Benchmark' >&2
  }
  for client in bare securehttp; do
    step "profiling keep-alive GETs (HTTP/1.1, 1 goroutine) with $client"
    bench_get $client -test.memprofilerate 1 -test.memprofile out/mem-$client.prof
  done
  step "CPU profile of securehttp's keep-alive GET (HTTP/1.1, 1 goroutine, 5 s)"
  $bin -test.run '^$' -test.bench '^BenchmarkGet$/^proto=h1$/^conc=1$/^client=securehttp$' \
    -test.benchtime 5s -test.count 1 -test.cpuprofile out/cpu-securehttp.prof | grep '^Benchmark' >&2
  pprof() { go tool pprof "$@" 2>/dev/null | grep -vE '^(File|Build ID|Type|Time):'; }
  {
    echo "=== securehttp minus bare net/http: the extra allocation sites (objects per $n requests)"
    pprof -top -lines -nodecount 25 -sample_index=alloc_objects -diff_base out/mem-bare.prof out/mem-securehttp.prof
    echo
    echo "=== securehttp: top allocation sites (objects per $n requests)"
    pprof -top -lines -nodecount 25 -sample_index=alloc_objects out/mem-securehttp.prof
    echo
    echo "=== securehttp: CPU under Transport.RoundTrip, cumulative (the rest of the client's CPU is"
    echo "=== net/http's connection read and write loops and TLS, the same for every client)"
    pprof -top -cum -nodecount 30 -focus 'securehttp\.\(\*Transport\)\.RoundTrip' out/cpu-securehttp.prof
    echo
    echo "=== securehttp: where Transport.RoundTrip and send spend their time"
    pprof -peek 'securehttp\.\(\*Transport\)\.(RoundTrip|send)$' out/cpu-securehttp.prof
  } | tee out/profile.txt
  echo "profiles in bench/out/ (cpu-*.prof, mem-*.prof); summary in bench/out/profile.txt" >&2
fi
