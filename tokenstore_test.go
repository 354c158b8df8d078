package securehttp

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"

	"github.com/securehttp/securehttp/internal/testutil"
)

// tokNewFileStore returns a FileStore for path, failing the test on error.
func tokNewFileStore(t *testing.T, path string) *FileStore {
	t.Helper()
	s, err := NewFileStore(path)
	if err != nil {
		t.Fatalf("NewFileStore: %v", err)
	}
	return s
}

// tokPerm returns the permission bits of path.
func tokPerm(t *testing.T, path string) fs.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

// tokDirNames lists the names in dir.
func tokDirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestFileStoreModes(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	ctx := context.Background()
	root := t.TempDir()
	path := filepath.Join(root, "a", "b", "token")
	s := tokNewFileStore(t, path)
	if err := s.Save(ctx, Token{Value: "tok-1"}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if got := tokPerm(t, path); got != 0o600 {
		t.Fatalf("token file has mode %04o, want 0600", got)
	}
	for _, dir := range []string{filepath.Join(root, "a"), filepath.Join(root, "a", "b")} {
		if got := tokPerm(t, dir); got != 0o700 {
			t.Fatalf("created directory %s has mode %04o, want 0700", dir, got)
		}
	}
	if got, err := s.Load(ctx); err != nil || got.Value != "tok-1" {
		t.Fatalf("Load: got %q and error %v, want %q", got, err, "tok-1")
	}

	// Saving over a file others could read replaces it with a private one.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, Token{Value: "tok-2"}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if got := tokPerm(t, path); got != 0o600 {
		t.Fatalf("after Save over a 0644 file: mode %04o, want 0600", got)
	}
}

func TestFileStoreRefusesLooseModes(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	const tok = "tok-loose-mode"
	for _, tt := range []struct {
		mode   fs.FileMode
		wantOK bool
	}{
		{0o600, true},
		{0o400, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o660, false},
		{0o666, false},
		{0o620, false}, // group may write it: another user could plant a token
	} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // whatever the umask
				t.Fatal(err)
			}
			got, err := tokNewFileStore(t, path).Load(context.Background())
			if tt.wantOK {
				if err != nil || got.Value != tok {
					t.Fatalf("got %q and error %v, want %q", got, err, tok)
				}
				return
			}
			if !errors.Is(err, ErrInsecureTokenFile) {
				t.Fatalf("got error %v, want ErrInsecureTokenFile", err)
			}
			if got.Value != "" || strings.Contains(err.Error(), tok) {
				t.Fatalf("got token %q and error %q, want neither to hold the token", got, err)
			}
		})
	}
}

func TestFileStoreLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	limit := 16 << 10
	for _, tt := range []struct {
		name    string
		setup   func(t *testing.T, path string) // nil: nothing at path
		want    string
		wantErr bool
	}{
		{"missing file", nil, "", false},
		{"empty file", tokWriteFile(""), "", false},
		{"trailing newline", tokWriteFile("tok-nl\n"), "tok-nl", false},
		{"16 KiB token", tokWriteFile(strings.Repeat("a", limit) + "\r\n"), strings.Repeat("a", limit), false},
		{"over 16 KiB", tokWriteFile(strings.Repeat("a", limit+1)), "", true},
		{"16 KiB, CRLF and more", tokWriteFile(strings.Repeat("a", limit) + "\r\n" + strings.Repeat("b", 100)), "", true},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "token")
			if tt.setup != nil {
				tt.setup(t, path)
			}
			got, err := tokNewFileStore(t, path).Load(ctx)
			if (err != nil) != tt.wantErr || got.Value != tt.want {
				t.Fatalf("got %d bytes and error %v, want %d bytes and an error %v", len(got.Value), err, len(tt.want), tt.wantErr)
			}
		})
	}
	if got, err := tokNewFileStore(t, filepath.Join(t.TempDir(), "no", "such", "token")).Load(ctx); got.Value != "" || err != nil {
		t.Fatalf("missing directory: got %q and %v, want \"\" and nil", got, err)
	}
	if _, err := NewFileStore(""); err == nil {
		t.Fatal("NewFileStore(\"\"): got no error, want one")
	}
}

// tokWriteFile writes content at path with mode 0600.
func tokWriteFile(content string) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFileStoreAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := tokNewFileStore(t, path).Save(ctx, Token{Value: "initial"}); err != nil {
		t.Fatal(err)
	}
	if got := tokDirNames(t, dir); !slices.Equal(got, []string{"token"}) {
		t.Fatalf("after Save the directory holds %q, want only the token", got)
	}

	// Writers in two "processes" (two FileStores on one path) save values
	// of one repeated letter each, while a third reads: every read sees one
	// value whole, never a mix or a truncated one.
	const writers, saves, size = 8, 10, 8 << 10
	whole := func(v string) bool {
		return v == "initial" || (len(v) == size && strings.Count(v, v[:1]) == size)
	}
	stores := []*FileStore{tokNewFileStore(t, path), tokNewFileStore(t, path)}
	reader := tokNewFileStore(t, path)
	var done atomic.Bool
	var torn atomic.Int64
	var readerWG, writerWG sync.WaitGroup
	readerWG.Go(func() {
		// Bounded, so that a slow disk does not turn this into a busy loop
		// that starves the tests running in parallel.
		for i := 0; i < 300 && !done.Load(); i++ {
			v, err := reader.Load(ctx)
			if err != nil || !whole(v.Value) {
				torn.Add(1)
			}
		}
	})
	errs := make(chan error, writers*saves)
	for w := range writers {
		writerWG.Go(func() {
			v := strings.Repeat(string(rune('a'+w)), size)
			for range saves {
				if err := stores[w%2].Save(ctx, Token{Value: v}); err != nil {
					errs <- err
				}
			}
		})
	}
	writerWG.Wait()
	done.Store(true)
	readerWG.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Save: %v", err)
	}
	if n := torn.Load(); n != 0 {
		t.Fatalf("%d reads saw a torn value or failed, want 0", n)
	}
	final, err := reader.Load(ctx)
	if err != nil || !whole(final.Value) || final.Value == "initial" {
		t.Fatalf("final value: got %d bytes and error %v, want one writer's %d bytes whole", len(final.Value), err, size)
	}
	if got := tokDirNames(t, dir); !slices.Equal(got, []string{"token"}) {
		t.Fatalf("after concurrent saves the directory holds %q, want only the token", got)
	}
}

func TestFileStoreSaveFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	parent := filepath.Join(dir, "file")
	if err := os.WriteFile(parent, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The parent is a regular file: no directory can be made there.
	err := tokNewFileStore(t, filepath.Join(parent, "token")).Save(context.Background(), Token{Value: "tok-unsaved"})
	if err == nil || strings.Contains(err.Error(), "tok-unsaved") {
		t.Fatalf("got error %v, want one without the token", err)
	}
}

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

func TestCookieJar(t *testing.T) {
	t.Parallel()
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	for _, tt := range []struct {
		name     string
		setURL   string
		cookie   http.Cookie
		readURL  string
		wantKept bool
	}{
		{"Secure over https", "https://www.example.com/", http.Cookie{Name: "s", Value: "1", Secure: true}, "https://www.example.com/", true},
		{"not Secure over https", "https://www.example.com/", http.Cookie{Name: "s", Value: "1"}, "https://www.example.com/", false},
		{"Secure over http", "http://www.example.com/", http.Cookie{Name: "s", Value: "1", Secure: true}, "https://www.example.com/", false},
		{"not Secure over http", "http://www.example.com/", http.Cookie{Name: "s", Value: "1"}, "http://www.example.com/", false},
		{"Domain is a public suffix", "https://www.example.co.uk/", http.Cookie{Name: "s", Value: "1", Secure: true, Domain: "co.uk"}, "https://other.co.uk/", false},
		{"Domain is a public suffix, same host", "https://www.example.co.uk/", http.Cookie{Name: "s", Value: "1", Secure: true, Domain: "co.uk"}, "https://www.example.co.uk/", false},
		{"Domain below a public suffix", "https://www.example.co.uk/", http.Cookie{Name: "s", Value: "1", Secure: true, Domain: "example.co.uk"}, "https://api.example.co.uk/", true},
		{"Secure cookie is not read over http", "https://www.example.com/", http.Cookie{Name: "s", Value: "1", Secure: true}, "http://www.example.com/", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jar := NewCookieJar()
			c := tt.cookie
			jar.SetCookies(mustURL(tt.setURL), []*http.Cookie{&c})
			got := jar.Cookies(mustURL(tt.readURL))
			if kept := len(got) == 1 && got[0].Name == "s" && got[0].Value == "1"; kept != tt.wantKept || len(got) > 1 {
				t.Fatalf("got cookies %v, want kept %v", got, tt.wantKept)
			}
		})
	}
}

// Through a client: only the Secure cookie comes back, and NewClient sets
// no jar of its own.
func TestCookieJarClient(t *testing.T) {
	t.Parallel()
	var cookies atomic.Value
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/set" {
			http.SetCookie(w, &http.Cookie{Name: "secure", Value: "jwt-1", Path: "/", Secure: true, HttpOnly: true})
			http.SetCookie(w, &http.Cookie{Name: "plain", Value: "jwt-2", Path: "/"})
			return
		}
		cookies.Store(r.Header.Get("Cookie"))
	}))
	client, err := NewClient(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	if client.Jar != nil {
		t.Fatalf("NewClient set Jar %v, want none", client.Jar)
	}
	client.Jar = NewCookieJar()
	for _, path := range []string{"/set", "/echo"} {
		resp, err := client.Get(testutil.HostURL(srv, hostAPI, path))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if got := cookies.Load(); got != "secure=jwt-1" {
		t.Fatalf("server got Cookie %q, want %q", got, "secure=jwt-1")
	}
}

// tokSourceFunc adapts a function to oauth2.TokenSource.
type tokSourceFunc func() (*oauth2.Token, error)

func (f tokSourceFunc) Token() (*oauth2.Token, error) { return f() }

func TestOAuth2Refresh(t *testing.T) {
	t.Parallel()
	errSource := errors.New("token endpoint down")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name    string
		src     oauth2.TokenSource
		ctx     context.Context
		want    string
		wantErr error // nil: no error, or anyErr
		anyErr  bool  // an error, whatever it is
	}{
		{"Bearer", oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at-1", TokenType: "Bearer"}), context.Background(), "at-1", nil, false},
		{"lower-case bearer", oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at-2", TokenType: "bearer"}), context.Background(), "at-2", nil, false},
		{"no type means Bearer", oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at-3"}), context.Background(), "at-3", nil, false},
		{"MAC token", oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at-4", TokenType: "mac"}), context.Background(), "", nil, true},
		{"DPoP token", oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at-5", TokenType: "DPoP"}), context.Background(), "", nil, true},
		{"source fails", tokSourceFunc(func() (*oauth2.Token, error) { return nil, errSource }), context.Background(), "", errSource, false},
		{"cancelled context", tokSourceFunc(func() (*oauth2.Token, error) {
			t.Error("the source was called under a cancelled context")
			return nil, errSource
		}), cancelled, "", context.Canceled, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := OAuth2Refresh(tt.src)(tt.ctx)
			switch {
			case tt.anyErr:
				if err == nil {
					t.Fatal("got no error, want one")
				}
			case tt.wantErr == nil:
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
			case !errors.Is(err, tt.wantErr):
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if got.Value != tt.want {
				t.Fatalf("got token %q, want %q", got, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "at-") {
				t.Fatalf("error %q holds the access token", err)
			}
		})
	}
}

// OAuth2Refresh as Bearer.Refresh: the server receives the access token.
func TestOAuth2RefreshClient(t *testing.T) {
	t.Parallel()
	src := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "oauth2-access-token", TokenType: "Bearer"})
	e := tokSetup(t, tokNewClock(), &Bearer{Refresh: OAuth2Refresh(src), Hosts: []string{hostAPI}}, nil)
	if got := e.tokMustGet(t); got != tokBearer("oauth2-access-token") {
		t.Fatalf("server got %q, want the access token", got)
	}
}
