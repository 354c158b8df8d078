package peers

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// redisCmd sends one inline command to the redis peer at addr and returns
// its one-line reply.
func redisCmd(t *testing.T, addr, cmd string) string {
	t.Helper()
	return redisReply(t, addr, cmd, 1)
}

// redisReply sends one inline command and returns the first lines of its
// reply, joined with " ".
func redisReply(t *testing.T, addr, cmd string, lines int) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial redis %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\r\n", cmd); err != nil {
		t.Fatalf("send %q: %v", cmd, err)
	}
	r := bufio.NewReader(c)
	var out []string
	for range lines {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reply to %q: %v", cmd, err)
		}
		out = append(out, strings.TrimRight(line, "\r\n"))
	}
	return strings.Join(out, " ")
}

func TestRedisRestart(t *testing.T) {
	t.Parallel()
	p := StartRedis(t)
	if !strings.HasPrefix(p.Addr, "127.0.0.1:") {
		t.Errorf("Addr: got %q, want 127.0.0.1:port", p.Addr)
	}
	if got := redisCmd(t, p.Addr, "PING"); got != "+PONG" {
		t.Fatalf("PING: got %q, want +PONG", got)
	}
	// Persistence off: no RDB snapshots, no append-only file.
	for cmd, want := range map[string]string{
		"CONFIG GET save":       "*2 $4 save $0 ",
		"CONFIG GET appendonly": "*2 $10 appendonly $2 no",
	} {
		if got := redisReply(t, p.Addr, cmd, 5); got != want {
			t.Errorf("%s: got %q, want %q", cmd, got, want)
		}
	}
	if got := redisCmd(t, p.Addr, "SET k v"); got != "+OK" {
		t.Fatalf("SET: got %q, want +OK", got)
	}
	oldPid := p.Pid()

	np := p.Restart(t)
	if np.Addr != p.Addr {
		t.Errorf("Addr after Restart: got %q, want the same %q", np.Addr, p.Addr)
	}
	if np.Pid() == oldPid {
		t.Errorf("pid after Restart: got the old one %d, want a new process", oldPid)
	}
	if err := syscall.Kill(oldPid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill(%d, 0) for the old process: got %v, want ESRCH", oldPid, err)
	}
	// Persistence is off: the restarted server is empty.
	if got := redisCmd(t, np.Addr, "EXISTS k"); got != ":0" {
		t.Errorf("EXISTS k after Restart: got %q, want :0", got)
	}
	np.Stop()
	if c, err := net.DialTimeout("tcp", np.Addr, time.Second); err == nil {
		c.Close()
		t.Errorf("dial %s after Stop: got a connection, want refused", np.Addr)
	}
}
