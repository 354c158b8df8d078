// Package redisstore keeps a securehttp bearer token in Redis, shared by
// every replica of a service, so that one of them refreshes it per expiry
// instead of all of them.
//
// A *Store is a securehttp.SharedTokenStore: set it as Bearer.Store and the
// transport coordinates its refreshes through it. A token held in memory
// serves requests without touching Redis; Redis is read only when the token
// nears its expiry and after a 401.
//
// # What is in Redis
//
// For a key K the store uses three Redis keys, all with the hash tag {K} so
// that they share a slot under Redis Cluster:
//
//   - {K}:token, a hash with the record's generation (field g), its
//     token's expiry in Unix milliseconds (field e, 0 when unknown) and the
//     sealed token (field v): the token and its expiry, encrypted with
//     AES-256-GCM under Options.EncryptionKey, with the record's key name,
//     generation and field e as associated data. The token never appears
//     in Redis in clear (unless Options.Plaintext is set), nor in any error
//     or log;
//   - {K}:lease, held by the one process that refreshes: SET NX PX with a
//     random owner value, renewed while it refreshes, released by a
//     compare-and-delete script;
//   - {K}:gen, the counter that gives each lease and each save its
//     generation.
//
// # Which save wins
//
// A save is a compare-and-set script. It refuses a generation older than
// the stored one, so that a process whose lease expired during a slow
// refresh cannot overwrite the token of the process that took over. A
// lease's generation is taken before its refresh begins, and the holder
// reads the record after taking it: a record of an older generation is the
// one it read and found unusable (about to expire, or refused by a
// server), or one saved since by a process that started before the lease
// was taken. The holder's token replaces it even if it expires earlier:
// ordering by expiry would keep a token that a server refused whenever the
// new one happens to expire first (an issuer that varies lifetimes, or
// shortened them), and every replica would take the refused token again.
//
// A save without a lease (a process that refreshed on its own, after a
// Redis error or a long wait for the leader) takes its generation when it
// saves, which says nothing of when its token was obtained. It is also
// refused when the stored token expires later than its own, so that a late
// save cannot put back an older token for every replica to adopt. When
// either expiry is unknown the generation alone decides.
//
// Tokens bound to a key (DPoP, client certificates) are kept apart per
// binding: see Store.ForBinding. A record, and its generation counter,
// expire an hour after their token does, so that the keys of bindings no
// longer in use go away by themselves; a token without a known expiry is
// kept until it is replaced or its keys are deleted.
//
// Everything goes through redis.UniversalClient, so a single node, Redis
// Sentinel and Redis Cluster all work.
//
// # When Redis is down
//
// Any error from Redis makes the process refresh on its own, as it would
// without a shared store, and no request fails because of it; the next
// refresh tries Redis again. How soon the fallback starts is up to the
// client's options: give it short timeouts and few retries (DialTimeout,
// ReadTimeout, DialerRetries, MaxRetries), as in the example.
package redisstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/securehttp/securehttp"
)

// Options configures a Store. It prints no EncryptionKey, under any fmt
// verb, in slog or in JSON, alone or held in another struct.
type Options struct {
	// EncryptionKey is the 32-byte AES-256-GCM key that seals records at
	// rest. Every process sharing a key must use the same EncryptionKey.
	// It is required unless Plaintext is set.
	EncryptionKey []byte

	// LeaseTTL is how long a refreshing process holds the lease without
	// renewing it: when that process dies, the lease is free again after at
	// most this long. The holder renews the lease every third of it while
	// it refreshes. (A process waiting for another's refresh waits at most
	// half of its own RefreshTimeout in any case, then refreshes alone.) Zero means the time left to the
	// refresh (Bearer.RefreshTimeout, 30 s by default), and 30 s when the
	// refresh has no deadline.
	LeaseTTL time.Duration

	// Plaintext stores tokens in Redis unencrypted, readable by anyone who
	// can read Redis or its backups. It must be set, with no
	// EncryptionKey, to run without encryption; the zero value refuses to.
	Plaintext bool
}

// String describes o without its EncryptionKey. The methods that print an
// Options have value receivers, so that one held by value in another
// struct prints no key either.
func (o Options) String() string {
	key := "none"
	if len(o.EncryptionKey) > 0 {
		key = "[redacted]"
	}
	return fmt.Sprintf("redisstore.Options{EncryptionKey: %s, LeaseTTL: %v, Plaintext: %t}", key, o.LeaseTTL, o.Plaintext)
}

// GoString is String: %#v prints no key either.
func (o Options) GoString() string { return o.String() }

// Format prints String for every verb, so that no verb (%x, %d, %q…)
// reaches the key.
func (o Options) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(o.String())) }

// LogValue keeps the key out of structured logs.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("encryption_key_set", len(o.EncryptionKey) > 0),
		slog.Duration("lease_ttl", o.LeaseTTL),
		slog.Bool("plaintext", o.Plaintext))
}

// MarshalJSON says whether a key is set, never what it is.
func (o Options) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		EncryptionKeySet bool   `json:"encryption_key_set"`
		LeaseTTL         string `json:"lease_ttl"`
		Plaintext        bool   `json:"plaintext"`
	}{len(o.EncryptionKey) > 0, o.LeaseTTL.String(), o.Plaintext})
}

// Errors returned by the store. They never contain the token.
var (
	// ErrNoEncryptionKey is returned by New when Options has neither an
	// EncryptionKey nor Plaintext.
	ErrNoEncryptionKey = errors.New("securehttp: redisstore: no EncryptionKey: set a 32-byte key, or Plaintext to store tokens unencrypted")

	// ErrUnreadableRecord is returned by Load when the stored record
	// cannot be opened: it was tampered with, sealed under another
	// EncryptionKey, copied from another key, or written in another
	// format (such as plaintext read by an encrypting store).
	ErrUnreadableRecord = errors.New("securehttp: redisstore: stored record cannot be opened")
)

const (
	defaultLeaseTTL = 30 * time.Second
	// recordGrace is how long a record outlives its token: long enough that
	// no refresh still in flight for it can find its generation gone.
	recordGrace = time.Hour
	minLeaseTTL = 10 * time.Millisecond
	// Formats: the first byte of a record's v field. Records of the current
	// formats carry their token's expiry in field e, which orders saves
	// without a lease. The earlier formats, without it, are still read;
	// their field e, if any, was left by a newer writer and is ignored,
	// and any save of a newer generation replaces them.
	formatPlainV1  = 0
	formatSealedV1 = 1
	formatPlain    = 2
	formatSealed   = 3
	expiryLen      = 8
	// maxRecordLen bounds the v field Load reads: twice what a record of
	// the longest token securehttp accepts (16 KiB) takes. A larger one
	// was not written by a Store, and is refused without being read.
	maxRecordLen = 32 << 10
	// maxGenLen bounds the g and e fields: an int64 in decimal.
	maxGenLen = 20
)

// Store is a securehttp.SharedTokenStore in Redis. It is safe for
// concurrent use and prints no secret.
type Store struct {
	rdb     redis.UniversalClient
	key     string // the key given to New, without binding
	tag     string // the hash tag: key, or key and the binding's hash
	record  string
	lease   string
	gen     string
	aead    cipher.AEAD // nil in plaintext mode
	ttl     time.Duration
	scripts *scripts
}

// scripts are the store's Lua scripts, loaded once per Redis and run by
// their SHA-1.
type scripts struct {
	acquire, renew, release, save, next, load *redis.Script
}

func newScripts() *scripts {
	// nextGen gives a generation newer than both the counter and the
	// stored record, so that a counter lost on its own (evicted, say)
	// cannot hand out generations the record already passed.
	const nextGen = `
local g = redis.call('INCR', KEYS[2])
local cur = tonumber(redis.call('HGET', KEYS[1], 'g') or '0')
if g <= cur then
  g = cur + 1
  redis.call('SET', KEYS[2], g)
end
`
	return &scripts{
		// KEYS: record, gen, lease. ARGV: owner, ttl in ms.
		acquire: redis.NewScript(`
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end` + nextGen + `return g`),
		// KEYS: lease. ARGV: owner, ttl in ms.
		renew: redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`),
		// KEYS: lease. ARGV: owner.
		release: redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`),
		// KEYS: record, gen. ARGV: generation, sealed value, time to
		// live in ms (0: none), expiry in Unix ms (0: unknown), and "1" to
		// refuse a record that expires later (a save without a lease).
		// Returns 1 when saved, 0 for an older generation, -1 for an
		// earlier expiry.
		save: redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'g', 'e', 'v')
if tonumber(cur[1] or '0') >= tonumber(ARGV[1]) then
  return 0
end
if ARGV[5] == '1' and cur[2] and cur[3] then
  -- Only the current formats (2 and 3) wrote this field e.
  local format = string.byte(cur[3], 1)
  local stored, new = tonumber(cur[2]) or 0, tonumber(ARGV[4])
  if (format == 2 or format == 3) and stored > 0 and new > 0 and stored > new then
    return -1
  end
end
redis.call('HSET', KEYS[1], 'g', ARGV[1], 'e', ARGV[4], 'v', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
return 1`),
		// KEYS: record, gen.
		next: redis.NewScript(nextGen + `return g`),
		// KEYS: record. ARGV: the longest g (and e) and v to read.
		// Returns g, v and e, nil for a missing field, or 0 when a field
		// is longer.
		load: redis.NewScript(`
if redis.call('HSTRLEN', KEYS[1], 'g') > tonumber(ARGV[1]) or
   redis.call('HSTRLEN', KEYS[1], 'e') > tonumber(ARGV[1]) or
   redis.call('HSTRLEN', KEYS[1], 'v') > tonumber(ARGV[2]) then
  return 0
end
return redis.call('HMGET', KEYS[1], 'g', 'v', 'e')`),
	}
}

// New returns a Store that keeps the token under key in rdb. Processes that
// share key (and EncryptionKey) share the token. key must not contain '{'
// or '}', which would change its hash tag.
func New(rdb redis.UniversalClient, key string, opts Options) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("securehttp: redisstore: nil Redis client")
	}
	if key == "" || strings.ContainsAny(key, "{}") {
		return nil, fmt.Errorf("securehttp: redisstore: key %q: must be non-empty, without '{' or '}'", key)
	}
	if opts.LeaseTTL < 0 {
		return nil, fmt.Errorf("securehttp: redisstore: LeaseTTL %v: must not be negative", opts.LeaseTTL)
	}
	s := &Store{rdb: rdb, key: key, ttl: opts.LeaseTTL, scripts: newScripts()}
	switch {
	case opts.Plaintext && len(opts.EncryptionKey) > 0:
		return nil, errors.New("securehttp: redisstore: set EncryptionKey or Plaintext, not both")
	case opts.Plaintext:
	case len(opts.EncryptionKey) == 0:
		return nil, ErrNoEncryptionKey
	case len(opts.EncryptionKey) != 32:
		return nil, fmt.Errorf("securehttp: redisstore: EncryptionKey of %d bytes: AES-256 needs 32", len(opts.EncryptionKey))
	default:
		block, err := aes.NewCipher(opts.EncryptionKey)
		if err != nil {
			return nil, fmt.Errorf("securehttp: redisstore: %w", err)
		}
		if s.aead, err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("securehttp: redisstore: %w", err)
		}
	}
	s.setTag(key)
	return s, nil
}

func (s *Store) setTag(tag string) {
	s.tag = tag
	s.record = "{" + tag + "}:token"
	s.lease = "{" + tag + "}:lease"
	s.gen = "{" + tag + "}:gen"
}

// ForBinding returns a Store for tokens bound to binding (see
// securehttp.SharedTokenStore), under the same Redis client, key and options.
// Its keys carry a SHA-256 hash of binding inside the hash tag, so that
// processes with different keys never share a bound token; "" returns s.
func (s *Store) ForBinding(binding string) securehttp.SharedTokenStore {
	if binding == "" {
		return s
	}
	sum := sha256.Sum256([]byte(binding))
	b := *s
	b.setTag(s.key + ":" + hex.EncodeToString(sum[:16]))
	return &b
}

// Load returns the stored token, or the zero Token when there is none. It
// returns an error matching ErrUnreadableRecord when the record cannot be
// opened.
func (s *Store) Load(ctx context.Context) (securehttp.Token, error) {
	res, err := s.scripts.load.Run(ctx, s.rdb, []string{s.record}, maxGenLen, maxRecordLen).Result()
	if err != nil {
		return securehttp.Token{}, s.redisError("load", err)
	}
	vals, ok := res.([]any)
	if !ok {
		return securehttp.Token{}, s.unreadable() // oversize
	}
	if len(vals) != 3 || (vals[0] == nil && vals[1] == nil) {
		return securehttp.Token{}, nil
	}
	gs, ok1 := vals[0].(string)
	vs, ok2 := vals[1].(string)
	if !ok1 || !ok2 {
		return securehttp.Token{}, s.unreadable()
	}
	gen, err := strconv.ParseInt(gs, 10, 64)
	if err != nil || gen <= 0 {
		return securehttp.Token{}, s.unreadable()
	}
	es, _ := vals[2].(string) // absent from records of the earlier formats
	tok, err := s.open(gen, es, []byte(vs))
	if err != nil {
		return securehttp.Token{}, s.unreadable()
	}
	return tok, nil
}

// Save stores tok with a new generation, newer than any saved or leased
// before it, unless the stored token expires later than tok: then it
// returns an error matching securehttp.ErrStaleLease and the later token
// stays. When either expiry is unknown, tok is stored.
func (s *Store) Save(ctx context.Context, tok securehttp.Token) error {
	gen, err := s.scripts.next.Run(ctx, s.rdb, []string{s.record, s.gen}).Int64()
	if err != nil {
		return s.redisError("save", err)
	}
	return s.saveGen(ctx, gen, tok, true)
}

// saveGen stores tok as generation gen, unless the stored record is of the
// same or a newer generation, or, when byExpiry is set, its token expires
// later than tok.
func (s *Store) saveGen(ctx context.Context, gen int64, tok securehttp.Token, byExpiry bool) error {
	exp := expiryMillis(tok)
	sealed, err := s.seal(gen, exp, tok)
	if err != nil {
		return err
	}
	var ttl int64 // none for a token without a known expiry
	if !tok.Expiry.IsZero() {
		ttl = max(time.Until(tok.Expiry)+recordGrace, recordGrace).Milliseconds()
	}
	order := "0"
	if byExpiry {
		order = "1"
	}
	res, err := s.scripts.save.Run(ctx, s.rdb, []string{s.record, s.gen}, gen, sealed, ttl, exp, order).Int64()
	if err != nil {
		return s.redisError("save", err)
	}
	switch res {
	case 0:
		return &wrapError{fmt.Sprintf("securehttp: redisstore: save %s generation %d", s.record, gen), securehttp.ErrStaleLease}
	case -1:
		return &wrapError{fmt.Sprintf("securehttp: redisstore: save %s: the stored token expires later", s.record), securehttp.ErrStaleLease}
	}
	return nil
}

// expiryMillis is tok's expiry in Unix milliseconds, which orders saves (a
// Lua number holds it exactly), or 0 when it is unknown.
func expiryMillis(tok securehttp.Token) int64 {
	if tok.Expiry.IsZero() {
		return 0
	}
	return max(tok.Expiry.UnixMilli(), 0)
}

// TryLease tries to take the lease on the token; see
// securehttp.SharedTokenStore. The lease is renewed every third of its TTL
// until Release or until ctx ends.
func (s *Store) TryLease(ctx context.Context) (securehttp.Lease, error) {
	ttl := s.ttl
	if ttl == 0 {
		ttl = defaultLeaseTTL
		if deadline, ok := ctx.Deadline(); ok {
			ttl = time.Until(deadline)
		}
	}
	ttl = max(ttl, minLeaseTTL)
	var owner [16]byte
	if _, err := rand.Read(owner[:]); err != nil {
		return nil, fmt.Errorf("securehttp: redisstore: lease owner: %w", err)
	}
	l := &lease{s: s, owner: hex.EncodeToString(owner[:]), ttl: ttl}
	gen, err := s.scripts.acquire.Run(ctx, s.rdb, []string{s.record, s.gen, s.lease}, l.owner, ttl.Milliseconds()).Int64()
	if err != nil {
		return nil, s.redisError("lease", err)
	}
	if gen == 0 {
		return nil, nil
	}
	l.gen = gen
	rctx, cancel := context.WithCancel(ctx)
	l.stop = cancel
	l.done = make(chan struct{})
	go l.renew(rctx)
	return l, nil
}

// lease is a held lease, renewed in the background until released.
type lease struct {
	s     *Store
	owner string
	ttl   time.Duration
	gen   int64

	stop     context.CancelFunc
	done     chan struct{} // closed when renew returns
	released sync.Once
	err      error
}

func (l *lease) renew(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(max(l.ttl/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := l.s.scripts.renew.Run(ctx, l.s.rdb, []string{l.s.lease}, l.owner, l.ttl.Milliseconds()).Int64()
		if err == nil && ok == 0 {
			// Lost: it expired, and another process may hold it now. The
			// generation still orders this holder's save.
			return
		}
	}
}

// Save stores tok with the lease's generation, or returns an error matching
// securehttp.ErrStaleLease when a newer token was saved meanwhile. The
// generation alone orders it (see the package comment): the holder read
// the record after taking the lease, and refreshed because that token would
// not do, even if it expires later.
func (l *lease) Save(ctx context.Context, tok securehttp.Token) error {
	return l.s.saveGen(ctx, l.gen, tok, false)
}

// Release stops renewing the lease and deletes it if this holder still has
// it.
func (l *lease) Release(ctx context.Context) error {
	l.released.Do(func() {
		l.stop()
		<-l.done
		if err := l.s.scripts.release.Run(ctx, l.s.rdb, []string{l.s.lease}, l.owner).Err(); err != nil {
			l.err = l.s.redisError("release", err)
		}
	})
	return l.err
}

// seal encodes tok as a record value: a format byte, then for a sealed
// record a random nonce and the AES-GCM ciphertext of the expiry and the
// token, with the record's key, gen and exp (its field e) as associated
// data.
func (s *Store) seal(gen, exp int64, tok securehttp.Token) ([]byte, error) {
	plain := make([]byte, expiryLen, expiryLen+len(tok.Value))
	var nanos int64
	if !tok.Expiry.IsZero() {
		nanos = tok.Expiry.UnixNano()
	}
	binary.BigEndian.PutUint64(plain, uint64(nanos))
	plain = append(plain, tok.Value...)
	if s.aead == nil {
		return append([]byte{formatPlain}, plain...), nil
	}
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = formatSealed
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("securehttp: redisstore: nonce: %w", err)
	}
	return s.aead.Seal(out, out[1:], plain, s.associatedData(gen, exp)), nil
}

// open reverses seal, given the record's fields g, e (empty when absent)
// and v. It also reads the earlier formats, whose associated data has no
// expiry. Its errors say nothing of the record's contents.
func (s *Store) open(gen int64, e string, rec []byte) (securehttp.Token, error) {
	if len(rec) == 0 {
		return securehttp.Token{}, ErrUnreadableRecord
	}
	var ad []byte
	switch rec[0] {
	case formatSealed:
		exp, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return securehttp.Token{}, ErrUnreadableRecord
		}
		ad = s.associatedData(gen, exp)
	case formatSealedV1:
		ad = s.associatedDataV1(gen)
	}
	var plain []byte
	switch {
	case s.aead == nil && (rec[0] == formatPlain || rec[0] == formatPlainV1):
		plain = rec[1:]
	case s.aead != nil && ad != nil && len(rec) >= 1+s.aead.NonceSize()+s.aead.Overhead():
		n := s.aead.NonceSize()
		var err error
		plain, err = s.aead.Open(nil, rec[1:1+n], rec[1+n:], ad)
		if err != nil {
			return securehttp.Token{}, ErrUnreadableRecord
		}
	default:
		return securehttp.Token{}, ErrUnreadableRecord
	}
	if len(plain) < expiryLen {
		return securehttp.Token{}, ErrUnreadableRecord
	}
	tok := securehttp.Token{Value: string(plain[expiryLen:])}
	if exp := int64(binary.BigEndian.Uint64(plain)); exp != 0 {
		tok.Expiry = time.Unix(0, exp)
	}
	return tok, nil
}

// associatedData binds a sealed record to its Redis key, its generation
// and the expiry that orders it: a record copied to another key, or given
// another generation or expiry, does not open.
func (s *Store) associatedData(gen, exp int64) []byte {
	return fmt.Appendf(nil, "securehttp/redisstore/v2\x00%s\x00%d\x00%d", s.record, gen, exp)
}

// associatedDataV1 is the associated data of the earlier sealed format.
func (s *Store) associatedDataV1(gen int64) []byte {
	return fmt.Appendf(nil, "securehttp/redisstore/v1\x00%s\x00%d", s.record, gen)
}

func (s *Store) unreadable() error {
	return &wrapError{"securehttp: redisstore: load " + s.record, ErrUnreadableRecord}
}

// wrapError prefixes msg to an error's text without repeating the package
// prefix, and keeps the error for errors.Is and errors.As.
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string {
	return e.msg + ": " + strings.TrimPrefix(e.err.Error(), "securehttp: ")
}
func (e *wrapError) Unwrap() error { return e.err }

// redisError wraps an error from Redis. go-redis errors name the command
// and the server's reply, never the values sent, so the token cannot be in
// them.
func (s *Store) redisError(op string, err error) error {
	return fmt.Errorf("securehttp: redisstore: %s %s: %w", op, s.record, err)
}

// String describes the store by its key, never its token or key material.
// The methods that print a Store have value receivers, so that a copy held
// in another struct prints no key material either.
func (s Store) String() string {
	return fmt.Sprintf("redisstore.Store{key: %q, encrypted: %t}", s.record, s.aead != nil)
}

// GoString is String.
func (s Store) GoString() string { return s.String() }

// Format prints String for every verb: fmt prints the fields of a Store
// held by value under a verb such as %s, down to the cipher's key schedule.
func (s Store) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue is String.
func (s Store) LogValue() slog.Value { return slog.StringValue(s.String()) }

var (
	_ securehttp.SharedTokenStore = (*Store)(nil)
)
