package securehttp

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Token is a bearer access token and the time it stops being valid.
//
// A Token never prints its Value: fmt, slog and encoding/json show its
// expiry only.
type Token struct {
	// Value is the access token, as sent after "Bearer " or "DPoP ".
	Value string `json:"-"`

	// Expiry is when the token stops being valid. The zero value means it
	// is not known: a JWT's exp claim is read instead, and an opaque token
	// without an Expiry has no known end and is used until a server
	// refuses it. When both are known, the earlier one counts.
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
