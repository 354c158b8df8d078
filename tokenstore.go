package securehttp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Token is a bearer access token and the time it stops being valid.
//
// A Token never prints its Value: fmt (every verb, %#v included), slog and
// encoding/json show only whether it is set and its expiry.
type Token struct {
	// Value is the access token, as sent after "Bearer " or "DPoP ".
	Value string

	// Expiry is when the token stops being valid. The zero value means it
	// is not known: a JWT's exp claim is read instead, and an opaque token
	// without an Expiry has no known end and is used until a server
	// refuses it. When both are known, the earlier one counts.
	Expiry time.Time
}

// IsZero reports whether t holds no token.
func (t Token) IsZero() bool { return t.Value == "" && t.Expiry.IsZero() }

// String describes t without its value.
func (t Token) String() string {
	if t.Value == "" {
		return "securehttp.Token{}"
	}
	if t.Expiry.IsZero() {
		return "securehttp.Token{Value: [redacted]}"
	}
	return "securehttp.Token{Value: [redacted], Expiry: " + t.Expiry.UTC().Format(time.RFC3339) + "}"
}

// GoString is String: %#v prints no secret either.
func (t Token) GoString() string { return t.String() }

// Format prints String for every verb, so that no verb (%d, %x, %q…)
// reaches the value.
func (t Token) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(t.String())) }

// MarshalJSON keeps the value out of JSON, such as a JSON log line of a
// struct that holds a Token. A store that persists tokens encodes Value
// and Expiry itself.
func (t Token) MarshalJSON() ([]byte, error) {
	if t.Value == "" {
		return []byte(`{"set":false}`), nil
	}
	return json.Marshal(struct {
		Set    bool      `json:"set"`
		Expiry time.Time `json:"expiry,omitzero"`
	}{true, t.Expiry})
}

// LogValue keeps the value out of structured logs.
func (t Token) LogValue() slog.Value {
	if t.Value == "" {
		return slog.GroupValue(slog.Bool("set", false))
	}
	return slog.GroupValue(slog.Bool("set", true), slog.Time("expiry", t.Expiry))
}

// TokenStore keeps the current token between refreshes, and between
// processes when it is shared. Implementations must be safe for concurrent
// use. A store shared by many processes can also let one of them refresh
// for all: see SharedTokenStore.
type TokenStore interface {
	// Load returns the stored token, or the zero Token and a nil error
	// when there is none.
	Load(ctx context.Context) (Token, error)
	// Save replaces the stored token.
	Save(ctx context.Context, tok Token) error
}

// MemoryStore is a TokenStore in memory. Its zero value holds no token. It
// is safe for concurrent use and prints no secret.
type MemoryStore struct {
	// A pointer, not a Token: even a MemoryStore held by value in another
	// struct prints an address, never the token.
	token atomic.Pointer[Token]
}

// NewMemoryStore returns a MemoryStore holding initial, which may be the
// zero Token.
func NewMemoryStore(initial Token) *MemoryStore {
	m := new(MemoryStore)
	m.token.Store(&initial)
	return m
}

// Load returns the token.
func (m *MemoryStore) Load(context.Context) (Token, error) {
	if p := m.token.Load(); p != nil {
		return *p, nil
	}
	return Token{}, nil
}

// Save replaces the token.
func (m *MemoryStore) Save(_ context.Context, tok Token) error {
	m.token.Store(&tok)
	return nil
}

// String hides the token.
func (m *MemoryStore) String() string { return "securehttp.MemoryStore{token: [redacted]}" }

// GoString hides the token.
func (m *MemoryStore) GoString() string { return m.String() }

// LogValue hides the token.
func (m *MemoryStore) LogValue() slog.Value { return slog.StringValue(m.String()) }
