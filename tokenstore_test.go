package securehttp

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if got, err := NewMemoryStore(Token{}).Load(ctx); got.Value != "" || err != nil {
		t.Fatalf("empty store: got %q and %v, want \"\" and nil", got, err)
	}
	var zero MemoryStore
	if got, err := zero.Load(ctx); got.Value != "" || err != nil {
		t.Fatalf("zero value: got %q and %v, want \"\" and nil", got, err)
	}
	s := NewMemoryStore(Token{Value: "one"})
	var wg sync.WaitGroup
	for _, v := range []string{"two", "three", "four"} {
		wg.Go(func() {
			if err := s.Save(ctx, Token{Value: v}); err != nil {
				t.Errorf("Save: %v", err)
			}
			if _, err := s.Load(ctx); err != nil {
				t.Errorf("Load: %v", err)
			}
		})
	}
	wg.Wait()
	if err := s.Save(ctx, Token{Value: "five"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx); got.Value != "five" || err != nil {
		t.Fatalf("got %q and %v, want %q and nil", got, err, "five")
	}
}

// A Token prints no secret with any fmt verb, inside other values, or in
// slog, text or JSON.
func TestTokenRedacted(t *testing.T) {
	t.Parallel()
	const secret = "tok-secret-value-1234567890"
	tok := Token{Value: secret, Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	holder := struct {
		T  Token
		P  *Token
		TS []Token
	}{tok, &tok, []Token{tok}}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		fmt.Fprintf(&out, verb+"\n", tok)
		fmt.Fprintf(&out, verb+"\n", holder)
	}
	fmt.Fprintln(&out, tok, &tok)
	slog.New(slog.NewTextHandler(&out, nil)).Info("t", "token", tok, "ptr", &tok)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("t", "token", tok, "holder", holder)
	if strings.Contains(out.String(), secret) || strings.Contains(out.String(), fmt.Sprintf("%x", secret)) {
		t.Fatalf("the token appears in formatted output:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "2030-01-02T03:04:05Z") {
		t.Fatalf("got no expiry in the output, want it shown:\n%s", out.String())
	}
}
