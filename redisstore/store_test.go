package redisstore_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/redisstore"
)

const secretToken = "tok-secret-4a7c1e"

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	// A client that is never used: New does not talk to Redis.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	tests := []struct {
		name string
		rdb  redis.UniversalClient
		key  string
		opts redisstore.Options
		is   error
	}{
		{"no encryption key", rdb, "k", redisstore.Options{}, redisstore.ErrNoEncryptionKey},
		{"short key", rdb, "k", redisstore.Options{EncryptionKey: make([]byte, 16)}, nil},
		{"key and plaintext", rdb, "k", redisstore.Options{EncryptionKey: encKey, Plaintext: true}, nil},
		{"nil client", nil, "k", redisstore.Options{EncryptionKey: encKey}, nil},
		{"empty key", rdb, "", redisstore.Options{EncryptionKey: encKey}, nil},
		{"hash tag in key", rdb, "a{b}", redisstore.Options{EncryptionKey: encKey}, nil},
		{"negative lease", rdb, "k", redisstore.Options{EncryptionKey: encKey, LeaseTTL: -time.Second}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := redisstore.New(tt.rdb, tt.key, tt.opts)
			if err == nil {
				t.Fatalf("New: got store %v and no error, want an error", s)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("New: got %v, want an error matching %v", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), "securehttp: ") || strings.Count(err.Error(), "securehttp:") != 1 {
				t.Errorf("New: got message %q, want one leading \"securehttp: \"", err)
			}
		})
	}
	for _, opts := range []redisstore.Options{{EncryptionKey: encKey}, {Plaintext: true}} {
		if _, err := redisstore.New(rdb, "k", opts); err != nil {
			t.Errorf("New with Plaintext=%t: got %v, want no error", opts.Plaintext, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	_, rdb := startRedis(t)
	ctx := context.Background()
	for _, opts := range []redisstore.Options{{EncryptionKey: encKey}, {Plaintext: true}} {
		name := fmt.Sprintf("plaintext=%t", opts.Plaintext)
		t.Run(name, func(t *testing.T) {
			s := newStore(t, rdb, "rt-"+name, opts)
			if got, err := s.Load(ctx); err != nil || !got.IsZero() {
				t.Fatalf("Load of an empty store: got %v, %v; want the zero Token, nil", got, err)
			}
			want := securehttp.Token{Value: secretToken, Expiry: time.Unix(1_900_000_000, 123)}
			if err := s.Save(ctx, want); err != nil {
				t.Fatalf("Save: %v", err)
			}
			got, err := s.Load(ctx)
			if err != nil || got.Value != want.Value || !got.Expiry.Equal(want.Expiry) {
				t.Fatalf("Load: got %v (same value: %t), %v; want %v", got, got.Value == want.Value, err, want)
			}
			// The record and its counter go an hour after the token.
			rec, gen := "{rt-"+name+"}:token", "{rt-"+name+"}:gen"
			for _, k := range []string{rec, gen} {
				ttl, err := rdb.PTTL(ctx, k).Result()
				if want := time.Until(want.Expiry) + time.Hour; err != nil || ttl <= want-time.Minute || ttl > want+time.Second {
					t.Errorf("PTTL %s: got %v, %v; want about %v", k, ttl, err, want)
				}
			}
			opaque := securehttp.Token{Value: "tok-opaque"}
			if err := s.Save(ctx, opaque); err != nil {
				t.Fatalf("Save: %v", err)
			}
			if got, err := s.Load(ctx); err != nil || got.Value != opaque.Value || !got.Expiry.IsZero() {
				t.Fatalf("Load after saving a token without expiry: got %v, %v; want %v", got, err, opaque)
			}
			for _, k := range []string{rec, gen} {
				// -1: the key exists and does not expire.
				if ttl, err := rdb.PTTL(ctx, k).Result(); err != nil || ttl != -1 {
					t.Errorf("PTTL %s for a token without expiry: got %v, %v; want -1 (no expiry)", k, ttl, err)
				}
			}
		})
	}
}

// rawValues returns every key and every value stored in Redis.
func rawValues(t *testing.T, rdb *redis.Client) map[string][]string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	out := map[string][]string{}
	for _, k := range keys {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("TYPE %s: %v", k, err)
		}
		switch typ {
		case "string":
			out[k] = []string{rdb.Get(ctx, k).Val()}
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				out[k] = append(out[k], f, v)
			}
		default:
			t.Fatalf("key %s has type %s, want string or hash", k, typ)
		}
	}
	return out
}

func TestRawValueNeverHoldsTheToken(t *testing.T) {
	t.Parallel()
	const binding = "dpop:thumbprint-0Fq3"
	tests := []struct {
		name      string
		opts      redisstore.Options
		wantToken bool
	}{
		{"encrypted", redisstore.Options{EncryptionKey: encKey}, false},
		// The opt-out shows that the check below finds a token when it is
		// there.
		{"plaintext opt-out", redisstore.Options{Plaintext: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, rdb := startRedis(t)
			ctx := context.Background()
			s := newStore(t, rdb, "svc", tt.opts)
			bound := s.ForBinding(binding)
			for _, st := range []securehttp.TokenStore{s, bound} {
				if err := st.Save(ctx, securehttp.Token{Value: secretToken, Expiry: time.Now().Add(time.Hour)}); err != nil {
					t.Fatalf("Save: %v", err)
				}
			}
			lease, err := s.TryLease(ctx)
			if err != nil || lease == nil {
				t.Fatalf("TryLease: got %v, %v; want a lease", lease, err)
			}
			defer lease.Release(ctx)
			raw := rawValues(t, rdb)
			if len(raw) < 4 {
				t.Fatalf("got keys %v, want a record and a generation per binding and a lease", raw)
			}
			found := false
			for k, vals := range raw {
				if strings.Contains(k, binding) {
					t.Errorf("key %q holds the binding in clear, want its hash", k)
				}
				for _, v := range vals {
					if strings.Contains(v, secretToken) {
						found = true
					}
				}
			}
			if found != tt.wantToken {
				t.Errorf("token found in Redis: got %t, want %t", found, tt.wantToken)
			}
		})
	}
}

func TestSealedRecordRefusesTampering(t *testing.T) {
	t.Parallel()
	_, rdb := startRedis(t)
	ctx := context.Background()
	otherKey := bytes.Repeat([]byte{0x33}, 32)
	tests := []struct {
		name string
		// spoil changes Redis after "victim" was saved and returns the
		// store that then loads.
		spoil func(t *testing.T, key string) *redisstore.Store
	}{
		{"flipped ciphertext byte", func(t *testing.T, key string) *redisstore.Store {
			rec := "{" + key + "}:token"
			v := []byte(rdb.HGet(ctx, rec, "v").Val())
			v[len(v)-1] ^= 1
			rdb.HSet(ctx, rec, "v", v)
			return newStore(t, rdb, key, redisstore.Options{})
		}},
		{"changed generation", func(t *testing.T, key string) *redisstore.Store {
			rdb.HSet(ctx, "{"+key+"}:token", "g", 99)
			return newStore(t, rdb, key, redisstore.Options{})
		}},
		{"wrong key", func(t *testing.T, key string) *redisstore.Store {
			return newStore(t, rdb, key, redisstore.Options{EncryptionKey: otherKey})
		}},
		{"record moved to another key", func(t *testing.T, key string) *redisstore.Store {
			if err := rdb.Copy(ctx, "{"+key+"}:token", "{"+key+"-moved}:token", 0, false).Err(); err != nil {
				t.Fatalf("COPY: %v", err)
			}
			return newStore(t, rdb, key+"-moved", redisstore.Options{})
		}},
		{"record moved to another binding", func(t *testing.T, key string) *redisstore.Store {
			s := newStore(t, rdb, key, redisstore.Options{})
			bound := s.ForBinding("mtls:abc").(*redisstore.Store)
			if err := rdb.Copy(ctx, "{"+key+"}:token", keyOf(t, bound), 0, false).Err(); err != nil {
				t.Fatalf("COPY: %v", err)
			}
			return bound
		}},
		{"read in plaintext mode", func(t *testing.T, key string) *redisstore.Store {
			return newStore(t, rdb, key, redisstore.Options{Plaintext: true})
		}},
		{"changed expiry", func(t *testing.T, key string) *redisstore.Store {
			rec := "{" + key + "}:token"
			e, err := rdb.HGet(ctx, rec, "e").Int64()
			if err != nil {
				t.Fatalf("HGET e: %v", err)
			}
			rdb.HSet(ctx, rec, "e", e+1)
			return newStore(t, rdb, key, redisstore.Options{})
		}},
		{"truncated", func(t *testing.T, key string) *redisstore.Store {
			rdb.HSet(ctx, "{"+key+"}:token", "v", "\x01abc")
			return newStore(t, rdb, key, redisstore.Options{})
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := fmt.Sprintf("tamper-%d", i)
			victim := newStore(t, rdb, key, redisstore.Options{})
			if err := victim.Save(ctx, securehttp.Token{Value: secretToken, Expiry: time.Now().Add(time.Hour)}); err != nil {
				t.Fatalf("Save: %v", err)
			}
			got, err := tt.spoil(t, key).Load(ctx)
			if !errors.Is(err, redisstore.ErrUnreadableRecord) {
				t.Fatalf("Load: got %v, %v; want an error matching ErrUnreadableRecord", got, err)
			}
			if got.Value != "" {
				t.Errorf("Load: got a token with the error, want the zero Token")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "securehttp: ") || strings.Count(msg, "securehttp:") != 1 {
				t.Errorf("error text %q: want one leading \"securehttp: \"", msg)
			}
			for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
				if strings.Contains(s, secretToken) {
					t.Errorf("error output %q holds the token", s)
				}
			}
		})
	}
}

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

// TestOversizeRecordNotRead shows that a record far larger than any token,
// planted by a writer without the key, is refused without being read: each
// Load of it (followers poll every 10 to 100 ms) would otherwise pull it
// whole into memory.
func TestOversizeRecordNotRead(t *testing.T) {
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

// keyOf returns the record key of s, as its String shows it.
func keyOf(t *testing.T, s *redisstore.Store) string {
	t.Helper()
	str := s.String()
	_, rest, ok := strings.Cut(str, `key: "`)
	key, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 {
		t.Fatalf("String %q names no key", str)
	}
	return key
}

func TestLeaseFencing(t *testing.T) {
	t.Parallel()
	_, rdb := startRedis(t)
	ctx := context.Background()
	tok := func(v string) securehttp.Token {
		return securehttp.Token{Value: v, Expiry: time.Now().Add(time.Hour)}
	}
	take := func(t *testing.T, s *redisstore.Store) securehttp.Lease {
		t.Helper()
		l, err := s.TryLease(ctx)
		if err != nil || l == nil {
			t.Fatalf("TryLease: got %v, %v; want a lease", l, err)
		}
		t.Cleanup(func() { _ = l.Release(ctx) })
		return l
	}
	// expire ends the lease as if its holder had paused past its TTL.
	expire := func(t *testing.T, key string) {
		t.Helper()
		if n := rdb.Del(ctx, "{"+key+"}:lease").Val(); n != 1 {
			t.Fatalf("DEL lease: got %d keys deleted, want 1", n)
		}
	}
	load := func(t *testing.T, s *redisstore.Store) string {
		t.Helper()
		got, err := s.Load(ctx)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		return got.Value
	}

	t.Run("held lease excludes others", func(t *testing.T) {
		a, b := newStore(t, rdb, "excl", redisstore.Options{}), newStore(t, rdb, "excl", redisstore.Options{})
		la := take(t, a)
		if l, err := b.TryLease(ctx); l != nil || err != nil {
			t.Fatalf("second TryLease: got %v, %v; want nil, nil", l, err)
		}
		if err := la.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		take(t, b)
	})
	t.Run("expired lease saves after the newer one: refused", func(t *testing.T) {
		a, b := newStore(t, rdb, "late", redisstore.Options{}), newStore(t, rdb, "late", redisstore.Options{})
		la := take(t, a)
		expire(t, "late")
		lb := take(t, b)
		if err := lb.Save(ctx, tok("tok-new")); err != nil {
			t.Fatalf("newer lease Save: %v", err)
		}
		if err := la.Save(ctx, tok("tok-old")); !errors.Is(err, securehttp.ErrStaleLease) {
			t.Fatalf("older lease Save: got %v, want ErrStaleLease", err)
		}
		if got := load(t, a); got != "tok-new" {
			t.Errorf("stored: got %q, want tok-new", got)
		}
	})
	t.Run("expired lease saves first: the newer one still wins", func(t *testing.T) {
		a, b := newStore(t, rdb, "early", redisstore.Options{}), newStore(t, rdb, "early", redisstore.Options{})
		la := take(t, a)
		expire(t, "early")
		lb := take(t, b)
		if err := la.Save(ctx, tok("tok-old")); err != nil {
			t.Fatalf("older lease Save: %v", err)
		}
		if err := lb.Save(ctx, tok("tok-new")); err != nil {
			t.Fatalf("newer lease Save: %v", err)
		}
		if got := load(t, a); got != "tok-new" {
			t.Errorf("stored: got %q, want tok-new", got)
		}
	})
	t.Run("save without a lease is newer than leases taken before", func(t *testing.T) {
		a := newStore(t, rdb, "plain-save", redisstore.Options{})
		la := take(t, a)
		if err := a.Save(ctx, tok("tok-direct")); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if err := la.Save(ctx, tok("tok-leased")); !errors.Is(err, securehttp.ErrStaleLease) {
			t.Fatalf("lease Save after a direct Save: got %v, want ErrStaleLease", err)
		}
		if got := load(t, a); got != "tok-direct" {
			t.Errorf("stored: got %q, want tok-direct", got)
		}
	})
	t.Run("lost counter cannot roll generations back", func(t *testing.T) {
		a := newStore(t, rdb, "lost-gen", redisstore.Options{})
		if err := a.Save(ctx, tok("tok-1")); err != nil {
			t.Fatalf("Save: %v", err)
		}
		rdb.Del(ctx, "{lost-gen}:gen")
		la := take(t, a)
		if err := la.Save(ctx, tok("tok-2")); err != nil {
			t.Fatalf("lease Save after the counter was lost: got %v, want nil", err)
		}
		if got := load(t, a); got != "tok-2" {
			t.Errorf("stored: got %q, want tok-2", got)
		}
	})
	t.Run("release by a former holder leaves the new lease", func(t *testing.T) {
		a, b := newStore(t, rdb, "steal", redisstore.Options{}), newStore(t, rdb, "steal", redisstore.Options{})
		la := take(t, a)
		expire(t, "steal")
		take(t, b)
		if err := la.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if n := rdb.Exists(ctx, "{steal}:lease").Val(); n != 1 {
			t.Errorf("lease keys after the former holder's Release: got %d, want 1", n)
		}
	})
}

// TestSaveWithoutLeaseKeepsLaterExpiry shows how saves are ordered. A
// save without a lease (a process that refreshed on its own, after a Redis
// blip or a long wait) takes its generation when it saves, which says
// nothing of when its token was obtained: it never replaces a token that
// expires later. A lease's generation is taken before its refresh begins,
// and orders its save alone.
func TestSaveWithoutLeaseKeepsLaterExpiry(t *testing.T) {
	t.Parallel()
	p, rdb := startRedis(t)
	ctx := context.Background()
	now := time.Now()
	at := func(v string, in time.Duration) securehttp.Token {
		if in == 0 {
			return securehttp.Token{Value: v}
		}
		return securehttp.Token{Value: v, Expiry: now.Add(in)}
	}
	type save struct {
		tok    securehttp.Token
		leased bool
	}
	tests := []struct {
		name   string
		first  save
		second save
		want   string // the token stored at the end
	}{
		{"late save of an earlier expiry after a leader's", save{at("tok-leader", 60*time.Second), true}, save{at("tok-late", 30*time.Second), false}, "tok-leader"},
		{"late save of an earlier expiry after another's", save{at("tok-first", 60*time.Second), false}, save{at("tok-late", 30*time.Second), false}, "tok-first"},
		{"save of a later expiry", save{at("tok-leader", 60*time.Second), true}, save{at("tok-later", 90*time.Second), false}, "tok-later"},
		{"save of the same expiry", save{at("tok-leader", 60*time.Second), true}, save{at("tok-same", 60*time.Second), false}, "tok-same"},
		// Without two expiries to compare, the generation orders.
		{"save of an unknown expiry", save{at("tok-leader", 60*time.Second), true}, save{at("tok-opaque", 0), false}, "tok-opaque"},
		{"save over an unknown expiry", save{at("tok-opaque", 0), true}, save{at("tok-known", 30*time.Second), false}, "tok-known"},
		// A lease holder loaded the store after taking its lease and
		// refreshed because the stored token would not do (due, or
		// refused by a server): its newer generation replaces it, even
		// if that token expires later.
		{"lease holder after a later expiry", save{at("tok-refused", 60*time.Second), false}, save{at("tok-leader", 30*time.Second), true}, "tok-leader"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := fmt.Sprintf("order-%d", i)
			// Two replicas, each with its own client.
			first := newStore(t, rdb, key, redisstore.Options{})
			second := newStore(t, newClient(t, p.Addr), key, redisstore.Options{})
			do := func(s *redisstore.Store, sv save) error {
				if !sv.leased {
					return s.Save(ctx, sv.tok)
				}
				l, err := s.TryLease(ctx)
				if err != nil || l == nil {
					t.Fatalf("TryLease: got %v, %v; want a lease", l, err)
				}
				defer l.Release(ctx)
				return l.Save(ctx, sv.tok)
			}
			if err := do(first, tt.first); err != nil {
				t.Fatalf("first Save: %v", err)
			}
			err := do(second, tt.second)
			if kept := tt.want == tt.first.tok.Value; kept != errors.Is(err, securehttp.ErrStaleLease) {
				t.Errorf("second Save: got error %v; want one matching ErrStaleLease: %t", err, kept)
			} else if !kept && err != nil {
				t.Errorf("second Save: got error %v, want none", err)
			}
			got, err := second.Load(ctx)
			want := tt.first.tok
			if tt.want == tt.second.tok.Value {
				want = tt.second.tok
			}
			if err != nil || got.Value != want.Value || !got.Expiry.Equal(want.Expiry) {
				t.Errorf("Load: got %q expiring %v, %v; want %q expiring %v", got.Value, got.Expiry, err, want.Value, want.Expiry)
			}
		})
	}
}

// legacyRecord writes tok under key as the store's first record format
// wrote it: no field e, and associated data without an expiry. A field e
// is left beside it, as a newer writer would have.
func legacyRecord(t *testing.T, rdb *redis.Client, key string, gen int64, tok securehttp.Token, plaintext bool) {
	t.Helper()
	rec := "{" + key + "}:token"
	plain := binary.BigEndian.AppendUint64(nil, uint64(tok.Expiry.UnixNano()))
	plain = append(plain, tok.Value...)
	v := append([]byte{0}, plain...)
	if !plaintext {
		block, err := aes.NewCipher(encKey)
		if err != nil {
			t.Fatal(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			t.Fatal(err)
		}
		v = make([]byte, 1+aead.NonceSize())
		v[0] = 1
		if _, err := rand.Read(v[1:]); err != nil {
			t.Fatal(err)
		}
		v = aead.Seal(v, v[1:], plain, fmt.Appendf(nil, "securehttp/redisstore/v1\x00%s\x00%d", rec, gen))
	}
	stale := time.Now().Add(24 * time.Hour).UnixMilli()
	if err := rdb.HSet(context.Background(), rec, "g", gen, "v", v, "e", stale).Err(); err != nil {
		t.Fatalf("HSET: %v", err)
	}
}

// TestRecordOfEarlierFormat shows that a record written in the first
// format, before records carried their expiry, is still read, and that a
// save without a lease replaces it whatever its expiry: it has none that
// can be trusted to order it.
func TestRecordOfEarlierFormat(t *testing.T) {
	t.Parallel()
	_, rdb := startRedis(t)
	ctx := context.Background()
	for _, plaintext := range []bool{false, true} {
		t.Run(fmt.Sprintf("plaintext=%t", plaintext), func(t *testing.T) {
			t.Parallel()
			key := fmt.Sprintf("legacy-%t", plaintext)
			s := newStore(t, rdb, key, redisstore.Options{Plaintext: plaintext})
			old := securehttp.Token{Value: secretToken, Expiry: time.Now().Add(time.Hour)}
			legacyRecord(t, rdb, key, 7, old, plaintext)
			got, err := s.Load(ctx)
			if err != nil || got.Value != old.Value || !got.Expiry.Equal(old.Expiry) {
				t.Fatalf("Load: got %v (same value: %t), %v; want %v", got, got.Value == old.Value, err, old)
			}
			earlier := securehttp.Token{Value: "tok-new", Expiry: time.Now().Add(time.Minute)}
			if err := s.Save(ctx, earlier); err != nil {
				t.Fatalf("Save over a record of the earlier format: got %v, want nil", err)
			}
			if got, err := s.Load(ctx); err != nil || got.Value != earlier.Value {
				t.Errorf("Load: got %q, %v; want %q", got.Value, err, earlier.Value)
			}
		})
	}
}

func TestLeaseRenewedWhileHeld(t *testing.T) {
	t.Parallel()
	_, rdb := startRedis(t)
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	a := newStore(t, rdb, "renew", redisstore.Options{LeaseTTL: ttl})
	b := newStore(t, rdb, "renew", redisstore.Options{LeaseTTL: ttl})
	la, err := a.TryLease(ctx)
	if err != nil || la == nil {
		t.Fatalf("TryLease: got %v, %v; want a lease", la, err)
	}
	time.Sleep(3 * ttl)
	if l, err := b.TryLease(ctx); l != nil || err != nil {
		_ = l.Release(ctx)
		t.Fatalf("TryLease after 3 TTLs of a held lease: got %v, %v; want nil, nil (renewed)", l, err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatalf("second Release: got %v, want nil", err)
	}
	lb, err := b.TryLease(ctx)
	if err != nil || lb == nil {
		t.Fatalf("TryLease after Release: got %v, %v; want a lease", lb, err)
	}
	_ = lb.Release(ctx)

	// A holder that stops renewing (its context ended) loses the lease
	// after one TTL.
	cctx, cancel := context.WithCancel(ctx)
	lc, err := a.TryLease(cctx)
	if err != nil || lc == nil {
		t.Fatalf("TryLease: got %v, %v; want a lease", lc, err)
	}
	cancel()
	defer lc.Release(ctx)
	deadline := time.Now().Add(20 * ttl)
	for {
		l, err := b.TryLease(ctx)
		if err != nil {
			t.Fatalf("TryLease: %v", err)
		}
		if l != nil {
			_ = l.Release(ctx)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease of a holder whose context ended still held after %v, want it to expire after %v", 20*ttl, ttl)
		}
		time.Sleep(ttl / 5)
	}
}

func TestForBindingSeparatesTokens(t *testing.T) {
	t.Parallel()
	_, rdb := startRedis(t)
	ctx := context.Background()
	s := newStore(t, rdb, "bind", redisstore.Options{})
	if s.ForBinding("") != securehttp.TokenStore(s) {
		t.Errorf("ForBinding(\"\"): got another store, want the receiver")
	}
	stores := map[string]securehttp.TokenStore{
		"":                s,
		"dpop:key-one":    s.ForBinding("dpop:key-one"),
		"dpop:key-two":    s.ForBinding("dpop:key-two"),
		"mtls:cert-three": s.ForBinding("mtls:cert-three"),
	}
	for b, st := range stores {
		if err := st.Save(ctx, securehttp.Token{Value: "tok-" + strings.ReplaceAll(b, ":", "-")}); err != nil {
			t.Fatalf("Save for %q: %v", b, err)
		}
	}
	// Another process with the same binding sees the same token.
	other := newStore(t, rdb, "bind", redisstore.Options{})
	for b := range stores {
		got, err := other.ForBinding(b).Load(ctx)
		if want := "tok-" + strings.ReplaceAll(b, ":", "-"); err != nil || got.Value != want {
			t.Errorf("Load for binding %q: got %q, %v; want %q", b, got.Value, err, want)
		}
	}
}

func TestStoreRedactsOutput(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	s := newStore(t, rdb, "svc", redisstore.Options{})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%#v", s), fmt.Sprintf("%+v", s), s.LogValue().String()} {
		if !strings.Contains(out, "{svc}:token") || strings.Contains(out, string(encKey)) || strings.Contains(out, "5a5a5a5a") {
			t.Errorf("formatted store: got %q, want its key name and no key material", out)
		}
	}
}

// TestThroughRedisCluster runs every script of the store through a
// redis.ClusterClient against a one-node Redis Cluster, which refuses a
// script whose keys are in different hash slots: the hash tag keeps the
// record, lease and generation of a key (and of each binding) in one slot.
func TestThroughRedisCluster(t *testing.T) {
	t.Parallel()
	p := peers.StartRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin := newClient(t, p.Addr)
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	for {
		info, err := admin.ClusterInfo(ctx).Result()
		if err != nil {
			t.Fatalf("CLUSTER INFO: %v", err)
		}
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cluster not ok after 20 s:\n%s", info)
		case <-time.After(50 * time.Millisecond):
		}
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{p.Addr}, DialTimeout: time.Second, MaxRetries: 1})
	t.Cleanup(func() { _ = cc.Close() })

	// The control: keys without a common hash tag are refused.
	if err := cc.Eval(ctx, "return 1", []string{"svc:token", "svc:lease"}).Err(); err == nil {
		t.Fatalf("a script over two slots: got no error, want the cluster to refuse it")
	}
	s := newStore(t, cc, "svc", redisstore.Options{})
	for _, st := range []securehttp.TokenStore{s, s.ForBinding("dpop:k1")} {
		shared := st.(securehttp.SharedTokenStore)
		if err := shared.Save(ctx, securehttp.Token{Value: "tok-a"}); err != nil {
			t.Fatalf("Save: %v", err)
		}
		l, err := shared.TryLease(ctx)
		if err != nil || l == nil {
			t.Fatalf("TryLease: got %v, %v; want a lease", l, err)
		}
		if err := l.Save(ctx, securehttp.Token{Value: "tok-b"}); err != nil {
			t.Fatalf("lease Save: %v", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if got, err := shared.Load(ctx); err != nil || got.Value != "tok-b" {
			t.Fatalf("Load: got %q, %v; want tok-b", got.Value, err)
		}
	}
}
