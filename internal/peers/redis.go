package peers

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// StartRedis starts redis-server in the foreground listening on
// 127.0.0.1:<port> only, with persistence off (--save "" --appendonly no),
// no unix socket and its working directory under t.TempDir(), and registers
// Stop with t.Cleanup. Connect with the address in Addr; it needs no
// password (protected mode allows loopback clients). It skips or fails the
// test as Require does when redis-server is not installed (Debian package
// redis-server).
//
// Stop shuts the server down (SIGTERM) and, with persistence off, its data
// is gone; Restart starts an empty one on the same port.
//
// Extra arguments are appended to the command line, such as
// "--cluster-enabled", "yes" for a one-node Redis Cluster (files it writes,
// such as nodes.conf, go to the peer's directory).
func StartRedis(t testing.TB, extra ...string) *Peer {
	t.Helper()
	return startRedis(t, nil, extra...)
}

func startRedis(t testing.TB, pick func(testing.TB) int, extra ...string) *Peer {
	t.Helper()
	bin := Require(t, "redis-server")
	dir := t.TempDir()
	spec := launchSpec{
		name:     "redis",
		bin:      bin,
		dir:      dir,
		scheme:   "redis",
		stopSig:  syscall.SIGTERM,
		pickPort: pick,
		build: func(port int) (launch, error) {
			return launch{args: append(redisArgs(dir, port), extra...)}, nil
		},
		ready: redisReady,
	}
	p := start(t, spec)
	p.restart = func(t testing.TB) *Peer {
		t.Helper()
		port := p.Port
		spec.pickPort = func(testing.TB) int { return port }
		return start(t, spec)
	}
	return p
}

func redisArgs(dir string, port int) []string {
	return []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--unixsocket", "",
		"--logfile", "",
		"--loglevel", "notice",
	}
}

// redisReady looks for the line redis-server logs once it listens.
func redisReady(p *Peer) bool {
	return strings.Contains(p.Output(), "Ready to accept connections")
}

// Restart stops the peer, if it is running, and starts the same peer again
// on the same port, returning the new one (registered with t.Cleanup like
// the first). Only peers from StartRedis support it; for others it fails
// the test.
func (p *Peer) Restart(t testing.TB) *Peer {
	t.Helper()
	if p.restart == nil {
		t.Fatalf("peers: %s does not support Restart", p.Name)
		return nil
	}
	p.Stop()
	np := p.restart(t)
	np.restart = p.restart
	return np
}
