package securehttp

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

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

func TestFileStoreFormat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	exp := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, tt := range []struct {
		name    string
		content string // "" : written by Save(want)
		want    Token
		wantErr bool
	}{
		{"value and expiry round trip", "", Token{Value: "abc.def", Expiry: exp}, false},
		{"value without expiry round trips", "", Token{Value: "opaque-1"}, false},
		{"earlier format: the token alone", "legacy-token\n", Token{Value: "legacy-token"}, false},
		{"JSON without expiry", `{"access_token":"j1"}`, Token{Value: "j1"}, false},
		{"broken JSON", `{"access_token":"secret-in-broken-json`, Token{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			s, err := NewFileStore(path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.content == "" {
				if err := s.Save(ctx, tt.want); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := s.Load(ctx)
			if (err != nil) != tt.wantErr || got.Value != tt.want.Value || !got.Expiry.Equal(tt.want.Expiry) {
				t.Fatalf("got %v and error %v, want %v and error %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret-in-broken-json") {
				t.Fatalf("the error %q quotes the file's content", err)
			}
		})
	}
}

// OAuth2Refresh keeps the expiry, and a caching source that hands back the
// token a server just refused is reported once at Warn, with what to do.
func TestOAuth2RefreshExpiryAndReuseWarning(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	refresh := OAuth2Refresh(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "cached-token", TokenType: "Bearer", Expiry: exp}))
	tok, err := refresh(context.Background())
	if err != nil || tok.Value != "cached-token" || !tok.Expiry.Equal(exp) {
		t.Fatalf("got %v and %v, want the token with its expiry %v", tok, err, exp)
	}

	// The server refuses every token; the source keeps returning the same.
	e := tokSetup(t, tokNewClock(), &Bearer{Refresh: refresh, Hosts: []string{hostAPI}},
		func(w http.ResponseWriter, _ *http.Request, _ tokHit) { w.WriteHeader(http.StatusUnauthorized) })
	for i := range 3 {
		status, _, err := e.get("/")
		if err != nil || status != http.StatusUnauthorized {
			t.Fatalf("request %d: got status %d and error %v, want 401", i, status, err)
		}
		tokWaitIdle(t, e.tr)
		e.clk.Add(2 * time.Minute) // past any refresh backoff
	}
	if n := strings.Count(e.logs.String(), "Refresh returned the token the server just refused"); n != 1 {
		t.Fatalf("got the reuse warning %d times, want once; log:\n%s", n, e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "ReuseTokenSource") {
		t.Fatal("the warning does not say what to do")
	}
}
