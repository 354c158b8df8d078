package securehttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/net/publicsuffix"
	"golang.org/x/oauth2"
)

// TokenStore keeps the current bearer token between refreshes, and between
// processes when it is shared.
type TokenStore interface {
	// Load returns the stored token, or "" and nil when there is none.
	Load(ctx context.Context) (string, error)
	// Save replaces the stored token.
	Save(ctx context.Context, token string) error
}

// Bearer attaches "Authorization: Bearer <token>" to https requests for its
// hosts, and to no other host. It reads the token's expiry (JWT exp and nbf),
// refreshes it ahead of expiry with one Refresh call however many requests
// wait, and recovers once from a 401.
//
// A request that already carries an Authorization header is left alone. A
// Bearer is configuration: NewTransport copies what it needs and never
// modifies it.
type Bearer struct {
	// Store holds the token. Nil means an empty in-memory store.
	Store TokenStore

	// Refresh obtains a new token: a JWT, or an opaque token. It runs under
	// its own context, bounded by RefreshTimeout, not under any request's.
	// Nil means tokens come only from Store, which is re-read when the
	// token expires.
	Refresh func(ctx context.Context) (string, error)

	// Hosts lists the hosts that receive the token, as patterns like
	// PinSet.Host. It is required: there is no "all hosts" default, and a
	// wildcard may not cover a public suffix such as "*.com".
	Hosts []string

	// RefreshWindow is how long before expiry a background refresh starts
	// while requests go on with the current token. Zero means 10% of the
	// token's lifetime, at least 30 s and at most 5 min, and never more than
	// half the lifetime.
	RefreshWindow time.Duration

	// RefreshTimeout bounds each refresh. Zero means 30 s.
	RefreshTimeout time.Duration

	// Keyfunc, if set, verifies each token's signature (see jwt.Keyfunc);
	// a token that fails, or is not a JWT and so cannot be verified, is
	// refused. Nil means a JWT is only decoded, which is enough to read its
	// expiry.
	Keyfunc jwt.Keyfunc
}

// String reports the configured hosts, never a token.
func (b *Bearer) String() string {
	if b == nil {
		return "<nil>"
	}
	return fmt.Sprintf("securehttp.Bearer{Hosts: %q}", b.Hosts)
}

// GoString is String: a Bearer prints no secret even with %#v.
func (b *Bearer) GoString() string { return b.String() }

// LogValue keeps tokens out of structured logs.
func (b *Bearer) LogValue() slog.Value { return slog.StringValue(b.String()) }

// RefreshError reports that no valid token could be had for a request. The
// request was not sent. Err is the cause: the Refresh error, a context
// error, or ErrNoToken. Every RefreshError matches ErrNoToken with errors.Is.
// RefreshError never contains the token.
type RefreshError struct {
	Err error
}

func (e *RefreshError) Error() string {
	if e.Err == nil {
		return "securehttp: bearer token unavailable"
	}
	return "securehttp: bearer token unavailable: " + e.Err.Error()
}

func (e *RefreshError) Unwrap() error { return e.Err }

// Is reports whether target is ErrNoToken.
func (e *RefreshError) Is(target error) bool { return target == ErrNoToken }

const (
	maxTokenLen           = 16 << 10
	defaultRefreshTimeout = 30 * time.Second
	minRefreshWindow      = 30 * time.Second
	maxRefreshWindow      = 5 * time.Minute
	maxSkew               = 5 * time.Second
	minRefreshBackoff     = time.Second
	maxRefreshBackoff     = time.Minute
)

// token is a parsed bearer token.
type token struct {
	raw      string
	header   []string    // the Authorization value, made once and never modified
	headers  http.Header // a header holding only header, never modified
	exp, nbf time.Time   // zero when unknown
	lifetime time.Duration
}

// usable reports whether t may be sent at now: not rejected, not expired or
// about to be, and already valid.
func (t *token) usable(now time.Time) bool {
	if t == nil {
		return false
	}
	skew := min(t.lifetime/10, maxSkew)
	if !t.exp.IsZero() && !now.Before(t.exp.Add(-skew)) {
		return false
	}
	return t.nbf.IsZero() || !t.nbf.After(now.Add(skew))
}

// tokenSource is the runtime state behind a Bearer.
type tokenSource struct {
	store   TokenStore
	refresh func(ctx context.Context) (string, error)
	hosts   []hostPattern
	window  time.Duration
	timeout time.Duration
	keyfunc jwt.Keyfunc
	logger  *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	cur      *token
	rejected string    // the last token a server refused with 401
	flight   *flight   // the refresh in progress, if any
	retryAt  time.Time // no background refresh before this
	misses   int       // consecutive refreshes that failed or gave a token already due
}

// flight is one refresh, shared by every request that waits for it.
type flight struct {
	done   chan struct{}
	cancel context.CancelFunc
	tok    *token
	err    error
}

func newTokenSource(b *Bearer, logger *slog.Logger, now func() time.Time) (*tokenSource, error) {
	if len(b.Hosts) == 0 {
		return nil, &ConfigError{Field: "Bearer.Hosts", Err: errors.New("no hosts: list the hosts that may receive the token")}
	}
	if b.Store == nil && b.Refresh == nil {
		return nil, &ConfigError{Field: "Bearer", Err: errors.New("needs a Store, a Refresh function, or both")}
	}
	if b.RefreshWindow < 0 {
		return nil, &ConfigError{Field: "Bearer.RefreshWindow", Value: b.RefreshWindow.String(), Err: errors.New("must not be negative")}
	}
	if b.RefreshTimeout < 0 {
		return nil, &ConfigError{Field: "Bearer.RefreshTimeout", Value: b.RefreshTimeout.String(), Err: errors.New("must not be negative")}
	}
	ts := &tokenSource{
		store:   b.Store,
		refresh: b.Refresh,
		window:  b.RefreshWindow,
		timeout: orDefault(b.RefreshTimeout, defaultRefreshTimeout),
		keyfunc: b.Keyfunc,
		logger:  logger,
		now:     now,
	}
	if ts.store == nil {
		ts.store = NewMemoryStore("")
	}
	for i, h := range b.Hosts {
		p, err := parseHostPattern(h)
		if err != nil {
			return nil, &ConfigError{Field: fmt.Sprintf("Bearer.Hosts[%d]", i), Value: h, Err: err}
		}
		if p.wild != 0 {
			if suffix, _ := publicsuffix.PublicSuffix(p.base); suffix == p.base {
				return nil, &ConfigError{Field: fmt.Sprintf("Bearer.Hosts[%d]", i), Value: h,
					Err: errors.New("a wildcard must not cover a public suffix")}
			}
		}
		ts.hosts = append(ts.hosts, p)
	}
	return ts, nil
}

// covers reports whether host, already normalised, may receive the token.
func (ts *tokenSource) covers(host string) bool {
	for _, p := range ts.hosts {
		if p.match(host) {
			return true
		}
	}
	return false
}

// token returns a token to send now. A usable token is returned at once,
// starting a background refresh when it is inside its refresh window. Without
// one, the caller waits for the single refresh in flight, bounded by ctx.
func (ts *tokenSource) token(ctx context.Context) (*token, error) {
	ts.mu.Lock()
	now := ts.now()
	if cur := ts.cur; cur.usable(now) {
		if ts.flight == nil && ts.due(cur, now) && !now.Before(ts.retryAt) {
			ts.start()
		}
		ts.mu.Unlock()
		return cur, nil
	}
	f := ts.flight
	if f == nil {
		f = ts.start()
	}
	ts.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, &RefreshError{Err: ctx.Err()}
	}
	if f.err != nil {
		return nil, &RefreshError{Err: f.err}
	}
	if !f.tok.usable(ts.now()) {
		return nil, &RefreshError{Err: fmt.Errorf("%w: the refreshed token is already expired", ErrNoToken)}
	}
	return f.tok, nil
}

// due reports whether tok is inside its refresh window.
func (ts *tokenSource) due(tok *token, now time.Time) bool {
	if tok.exp.IsZero() {
		return false
	}
	window := ts.window
	if window == 0 {
		window = min(max(tok.lifetime/10, minRefreshWindow), maxRefreshWindow, tok.lifetime/2)
	}
	return !now.Before(tok.exp.Add(-window))
}

// start begins a refresh. ts.mu must be held.
func (ts *tokenSource) start() *flight {
	ctx, cancel := context.WithTimeout(context.Background(), ts.timeout)
	f := &flight{done: make(chan struct{}), cancel: cancel}
	ts.flight = f
	prev := ts.cur
	go ts.run(ctx, f, prev)
	return f
}

func (ts *tokenSource) run(ctx context.Context, f *flight, prev *token) {
	defer f.cancel()
	tok, err := ts.obtain(ctx, prev)

	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.flight = nil
	f.tok, f.err = tok, err
	now := ts.now()
	switch {
	case err != nil:
		ts.misses++
		ts.retryAt = now.Add(refreshBackoff(ts.misses))
		ts.logger.Warn("securehttp: bearer token refresh failed", "error", err,
			"current_token_usable", ts.cur.usable(now), "next_background_try", ts.retryAt)
	case ts.due(tok, now):
		// The new token is already inside its window (a caching token
		// source, or a window longer than the lifetime): wait longer each
		// time before asking again, as after a failure, rather than
		// calling Refresh every second until it expires.
		ts.cur = tok
		ts.misses++
		ts.retryAt = now.Add(refreshBackoff(ts.misses))
	default:
		ts.cur = tok
		ts.misses = 0
		ts.retryAt = time.Time{}
	}
	close(f.done)
}

// refreshBackoff doubles from a second up to a minute.
func refreshBackoff(misses int) time.Duration {
	d := minRefreshBackoff
	for i := 1; i < misses && d < maxRefreshBackoff; i++ {
		d *= 2
	}
	return min(d, maxRefreshBackoff)
}

// callRefresh calls Refresh, turning a panic into an error: it runs on a
// background goroutine, where a panic would end the whole process.
func (ts *tokenSource) callRefresh(ctx context.Context) (raw string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the Refresh function panicked (%T)", p)
		}
	}()
	return ts.refresh(ctx)
}

// obtain re-reads the store, where another process may already have saved a
// fresh token, and calls Refresh only if that does not give a usable one.
func (ts *tokenSource) obtain(ctx context.Context, prev *token) (*token, error) {
	now := ts.now()
	stored, loadErr := ts.store.Load(ctx)
	switch {
	case loadErr != nil:
		ts.logger.Warn("securehttp: loading the bearer token from the store failed", "error", loadErr)
	case stored != "" && stored != ts.rejectedToken():
		// Take a token another process saved, unless it is the one being
		// replaced or is itself due for a refresh. On the first load any
		// usable token will do.
		tok, perr := ts.parse(stored, now)
		if perr == nil && tok.usable(now) && (prev == nil || (stored != prev.raw && !ts.due(tok, now))) {
			ts.logger.Debug("securehttp: bearer token taken from the store", "expires", tok.exp)
			return tok, nil
		}
	}
	if ts.refresh == nil {
		if loadErr != nil {
			// Keep the cause, such as ErrInsecureTokenFile, for errors.Is.
			return nil, fmt.Errorf("%w: no Refresh function is set and loading the store failed: %w", ErrNoToken, loadErr)
		}
		return nil, fmt.Errorf("%w: the store holds none and no Refresh function is set", ErrNoToken)
	}
	ts.logger.Debug("securehttp: refreshing bearer token")
	raw, err := ts.callRefresh(ctx)
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	tok, err := ts.parse(raw, ts.now())
	if err != nil {
		return nil, fmt.Errorf("refresh returned an unusable token: %w", err)
	}
	if !tok.usable(ts.now()) {
		return nil, fmt.Errorf("%w: refresh returned an expired or not yet valid token", ErrNoToken)
	}
	if err := ts.store.Save(ctx, raw); err != nil {
		ts.logger.Warn("securehttp: saving the refreshed bearer token failed", "error", err)
	}
	ts.logger.Debug("securehttp: bearer token refreshed", "expires", tok.exp)
	return tok, nil
}

func (ts *tokenSource) rejectedToken() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.rejected
}

// invalidate marks sent as refused by a server, if it is still the current
// token, so that concurrent 401s cause one refresh between them.
func (ts *tokenSource) invalidate(sent string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.cur != nil && ts.cur.raw == sent {
		ts.rejected = sent
		ts.cur = nil
		ts.logger.Debug("securehttp: bearer token refused by the server; it will be refreshed")
	}
}

// stop cancels the refresh in flight, if any, and waits for it to end.
func (ts *tokenSource) stop() {
	ts.mu.Lock()
	f := ts.flight
	ts.mu.Unlock()
	if f != nil {
		f.cancel()
		<-f.done
	}
}

// parse checks raw's syntax and reads its expiry when it is a JWT. Errors
// never contain the token.
func (ts *tokenSource) parse(raw string, now time.Time) (*token, error) {
	if raw == "" {
		return nil, errors.New("empty token")
	}
	if len(raw) > maxTokenLen {
		return nil, fmt.Errorf("token of %d bytes exceeds the %d-byte limit", len(raw), maxTokenLen)
	}
	if !isToken68(raw) {
		return nil, errors.New("token has characters not allowed in a bearer token (RFC 6750 b64token)")
	}
	tok := &token{raw: raw, header: []string{"Bearer " + raw}}
	tok.headers = http.Header{"Authorization": tok.header}
	if strings.Count(raw, ".") != 2 {
		if ts.keyfunc != nil {
			return nil, errors.New("token is not a JWT, so Keyfunc cannot verify it")
		}
		return tok, nil // opaque: used until a server answers 401
	}
	var claims jwt.RegisteredClaims
	parser := jwt.NewParser(jwt.WithoutClaimsValidation())
	var err error
	if ts.keyfunc != nil {
		_, err = parser.ParseWithClaims(raw, &claims, ts.keyfunc)
	} else {
		_, _, err = parser.ParseUnverified(raw, &claims)
	}
	if err != nil {
		return nil, fmt.Errorf("malformed JWT: %w", err)
	}
	if claims.ExpiresAt != nil {
		tok.exp = claims.ExpiresAt.Time
	}
	if claims.NotBefore != nil {
		tok.nbf = claims.NotBefore.Time
	}
	if !tok.exp.IsZero() {
		start := now
		if claims.IssuedAt != nil && claims.IssuedAt.Before(tok.exp) {
			start = claims.IssuedAt.Time
		}
		tok.lifetime = max(tok.exp.Sub(start), 0)
	}
	return tok, nil
}

// isToken68 reports whether s is a b64token (RFC 6750 section 2.1), so it can
// go into a header without injecting anything.
func isToken68(s string) bool {
	end := len(s)
	for end > 0 && s[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// MemoryStore is a TokenStore in memory. Its zero value holds no token. It
// is safe for concurrent use and prints no secret.
type MemoryStore struct {
	// A pointer, not a string: fmt prints a pointer in a field as an
	// address, so even a MemoryStore held by value in another struct
	// prints no token.
	token atomic.Pointer[string]
}

// NewMemoryStore returns a MemoryStore holding token, which may be "".
func NewMemoryStore(token string) *MemoryStore {
	m := new(MemoryStore)
	m.token.Store(&token)
	return m
}

// Load returns the token.
func (m *MemoryStore) Load(context.Context) (string, error) {
	if p := m.token.Load(); p != nil {
		return *p, nil
	}
	return "", nil
}

// Save replaces the token.
func (m *MemoryStore) Save(_ context.Context, token string) error {
	m.token.Store(&token)
	return nil
}

// String hides the token.
func (m *MemoryStore) String() string { return "securehttp.MemoryStore{token: [redacted]}" }

// GoString hides the token.
func (m *MemoryStore) GoString() string { return m.String() }

// LogValue hides the token.
func (m *MemoryStore) LogValue() slog.Value { return slog.StringValue(m.String()) }

// ErrInsecureTokenFile is returned by FileStore.Load for a token file that
// group or others may read.
var ErrInsecureTokenFile = errors.New("securehttp: token file is accessible by group or others")

// FileStore is a TokenStore in a file, shared by every process that uses the
// same path. It writes with mode 0600, atomically (a temporary file, fsync,
// rename), so a crash never leaves a torn token, and it creates a missing
// parent directory with mode 0700. Like ssh with its keys, it refuses to load
// a file that group or others can read. It is safe for concurrent use.
type FileStore struct {
	path string
	mu   sync.Mutex // serialises this process's writes
}

// NewFileStore returns a FileStore for path. The file need not exist yet.
func NewFileStore(path string) (*FileStore, error) {
	if path == "" {
		return nil, errors.New("securehttp: empty token file path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("securehttp: token file path: %w", err)
	}
	return &FileStore{path: abs}, nil
}

// Load reads the token, or returns "" and nil when the file does not exist.
func (s *FileStore) Load(context.Context) (string, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("securehttp: reading token file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("securehttp: reading token file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("securehttp: token file %s is not a regular file", s.path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return "", fmt.Errorf("%w: %s has mode %04o, want 0600 (chmod 600 it)", ErrInsecureTokenFile, s.path, perm)
	}
	// Room for a token at the limit and a line ending; anything longer is
	// refused rather than cut short.
	const limit = maxTokenLen + 2
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return "", fmt.Errorf("securehttp: reading token file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if len(data) > limit || len(tok) > maxTokenLen {
		return "", fmt.Errorf("securehttp: token file %s exceeds %d bytes", s.path, maxTokenLen)
	}
	return tok, nil
}

// Save writes token atomically with mode 0600.
func (s *FileStore) Save(_ context.Context, token string) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("securehttp: creating token directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(s.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("securehttp: writing token file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("securehttp: writing token file: %w", err)
	}
	if _, err := tmp.WriteString(token); err != nil {
		return fmt.Errorf("securehttp: writing token file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("securehttp: writing token file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("securehttp: writing token file: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("securehttp: writing token file: %w", err)
	}
	// Make the rename itself durable.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// String names the file; the token is never printed.
func (s *FileStore) String() string { return "securehttp.FileStore{path: " + s.path + "}" }

// OAuth2Refresh adapts an oauth2.TokenSource, such as a client-credentials
// or refresh-token flow from golang.org/x/oauth2, to Bearer.Refresh. Pass a
// source that fetches a new token on each call: a caching
// oauth2.ReuseTokenSource hands back its cached token until its own expiry.
// The source's own HTTP client bounds the call, since TokenSource takes no
// context.
func OAuth2Refresh(src oauth2.TokenSource) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		tok, err := src.Token()
		if err != nil {
			return "", err
		}
		if tt := tok.Type(); !strings.EqualFold(tt, "Bearer") {
			return "", fmt.Errorf("securehttp: oauth2 token type %q is not Bearer", tt)
		}
		return tok.AccessToken, nil
	}
}

// NewCookieJar returns a cookie jar for use as http.Client.Jar. It follows
// the public suffix list, so a site cannot set cookies for a whole suffix
// such as co.uk, and it keeps only cookies marked Secure received over https,
// so that a session token delivered by cookie is never stored from an
// insecure Set-Cookie. NewClient sets no jar on its own.
func NewCookieJar() http.CookieJar {
	jar, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List}) // never fails
	return secureJar{jar}
}

type secureJar struct{ jar *cookiejar.Jar }

func (j secureJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	if u.Scheme != "https" {
		return
	}
	keep := make([]*http.Cookie, 0, len(cookies))
	for _, c := range cookies {
		if c.Secure {
			keep = append(keep, c)
		}
	}
	j.jar.SetCookies(u, keep)
}

func (j secureJar) Cookies(u *url.URL) []*http.Cookie { return j.jar.Cookies(u) }
