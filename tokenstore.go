package securehttp

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Token is an access token and when it stops being valid. It never prints
// its Value: fmt, slog and encoding/json show its expiry only.
type Token struct {
	// Value is the token, as sent after "Bearer " or "DPoP ".
	Value string `json:"-"`

	// Expiry is when the token stops being valid; a JWT's exp counts too,
	// whichever is earlier. Zero means unknown: an opaque token without
	// one is used until a server refuses it.
	Expiry time.Time `json:"expiry,omitzero"`
}

// IsZero reports whether t holds no token.
func (t Token) IsZero() bool { return t.Value == "" && t.Expiry.IsZero() }

// Format prints t without its value, whatever the verb.
func (t Token) Format(f fmt.State, _ rune) {
	switch {
	case t.Value == "":
		fmt.Fprint(f, "securehttp.Token{}")
	case t.Expiry.IsZero():
		fmt.Fprint(f, "securehttp.Token{Value: [redacted]}")
	default:
		fmt.Fprintf(f, "securehttp.Token{Value: [redacted], Expiry: %s}", t.Expiry.UTC().Format(time.RFC3339))
	}
}

// TokenStore keeps the current token between refreshes. Implementations
// must be safe for concurrent use. See SharedTokenStore for a fleet.
type TokenStore interface {
	// Load returns the stored token, or the zero Token and nil for none.
	Load(ctx context.Context) (Token, error)
	// Save replaces the stored token.
	Save(ctx context.Context, tok Token) error
}

// MemoryStore is a TokenStore in memory, whose zero value holds no token.
type MemoryStore struct {
	// A pointer, not a Token: even a MemoryStore held by value in another
	// struct prints an address, never the token.
	token atomic.Pointer[Token]
}

// NewMemoryStore returns a MemoryStore holding initial.
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
