package redisstore_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/securehttp/securehttp/redisstore"
)

// countingConn counts the bytes read from Redis.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestAttack3OversizeRecordNotRead proves that a record far larger than any
// token, planted by a writer without the key, is refused without being
// read: each Load of it (followers poll every 10 to 100 ms) would otherwise
// pull it whole into memory.
func TestAttack3OversizeRecordNotRead(t *testing.T) {
	t.Parallel()
	p, admin := startRedis(t)
	ctx := context.Background()
	const size = 8 << 20
	var read atomic.Int64
	opts := redisOptions(p.Addr)
	opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &read}, nil
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	s := newStore(t, rdb, "oversize", redisstore.Options{})
	if err := admin.HSet(ctx, keyOf(t, s), "g", 1, "v", "\x01"+strings.Repeat("A", size)).Err(); err != nil {
		t.Fatalf("HSET: %v", err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	before := read.Load()
	got, err := s.Load(ctx)
	if !errors.Is(err, redisstore.ErrUnreadableRecord) || got.Value != "" {
		t.Fatalf("Load of an oversize record: got %q, %v; want the zero Token and ErrUnreadableRecord", got.Value, err)
	}
	if n := read.Load() - before; n > 64<<10 {
		t.Errorf("Load read %d bytes from Redis, want at most 64 KiB for a record of %d", n, size)
	}
}
