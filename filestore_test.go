package securehttp

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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

// TestFileStoreRefusesFIFO: Load refuses a FIFO at the token path at once
// with ErrInsecureTokenFile, rather than block in open(2) until a writer
// comes.
func TestFileStoreRefusesFIFO(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs at file system paths on Windows")
	}
	path := filepath.Join(t.TempDir(), "token")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	t.Cleanup(func() {
		// Release a Load stuck in open(2), should it block, so that the
		// test ends: a writer opening the FIFO unblocks its reader.
		if fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			syscall.Close(fd)
		}
	})
	s := tokNewFileStore(t, path)
	done := make(chan error, 1)
	go func() {
		_, err := s.Load(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrInsecureTokenFile) {
			t.Fatalf("got error %v, want ErrInsecureTokenFile", err)
		}
	case <-time.After(tokPatience):
		t.Fatalf("Load on a FIFO still blocked after %v, want an error at once", tokPatience)
	}
}

// TestFileStoreHonoursContext: Load and Save under a cancelled context fail
// with context.Canceled and leave the file as it was.
func TestFileStoreHonoursContext(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	s := tokNewFileStore(t, path)
	if err := s.Save(context.Background(), Token{Value: "tok-ctx"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := s.Load(ctx); !errors.Is(err, context.Canceled) || got.Value != "" {
		t.Fatalf("Load with a cancelled context: got %d bytes and error %v, want nothing and context.Canceled", len(got.Value), err)
	}
	if err := s.Save(ctx, Token{Value: "tok-other"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Save with a cancelled context: got error %v, want context.Canceled", err)
	}
	if got, err := s.Load(context.Background()); err != nil || got.Value != "tok-ctx" {
		t.Fatalf("after the cancelled Save: got %q and %v, want the first token", got.Value, err)
	}
}

// TestFileStoreRefusesSymlink: a token path that is a symbolic link,
// dangling or not, is refused with ErrInsecureTokenFile.
func TestFileStoreRefusesSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, []byte("tok-via-link"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "token")
	if err := os.Symlink(target, path); err != nil {
		t.Skipf("cannot make a symbolic link here: %v", err)
	}
	got, err := tokNewFileStore(t, path).Load(context.Background())
	if !errors.Is(err, ErrInsecureTokenFile) || got.Value != "" {
		t.Fatalf("got %q and error %v, want no token and ErrInsecureTokenFile", got.Value, err)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "missing"), dangling); err != nil {
		t.Fatal(err)
	}
	if _, err := tokNewFileStore(t, dangling).Load(context.Background()); !errors.Is(err, ErrInsecureTokenFile) {
		t.Fatalf("dangling link: got error %v, want ErrInsecureTokenFile", err)
	}
}

// TestFileStoreRefusesOtherOwner: a token file owned by another user is
// refused with ErrInsecureTokenFile.
func TestFileStoreRefusesOtherOwner(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("file owners are not uids on Windows; the check is Unix-only")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user (chown); CI runs this test as root")
	}
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("tok-not-mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := tokNewFileStore(t, path)
	if got, err := s.Load(context.Background()); err != nil || got.Value != "tok-not-mine" {
		t.Fatalf("own file: got %q and %v, want it loaded", got.Value, err)
	}
	const nobody = 65534
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(context.Background())
	if !errors.Is(err, ErrInsecureTokenFile) || got.Value != "" {
		t.Fatalf("file of uid %d: got %q and error %v, want no token and ErrInsecureTokenFile", nobody, got.Value, err)
	}
}

// TestFileStoreRemovesStaleTemps: Save removes this store's temporary files
// left behind long enough ago, and leaves a recent one (another writer's, in
// progress) and other files alone.
func TestFileStoreRemovesStaleTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	stale := filepath.Join(dir, ".token.tmp-1234567")
	recent := filepath.Join(dir, ".token.tmp-7654321") // another writer's, in progress
	other := filepath.Join(dir, ".other.tmp-1")        // not this store's
	for _, p := range []string{stale, recent, other} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTempAge)
	for _, p := range []string{stale, other} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := tokNewFileStore(t, path).Save(context.Background(), Token{Value: "tok-saved"}); err != nil {
		t.Fatal(err)
	}
	want := []string{".other.tmp-1", ".token.tmp-7654321", "token"}
	if got := tokDirNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("after Save the directory holds %q, want %q", got, want)
	}
}
