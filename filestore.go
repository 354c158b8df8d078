package securehttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// FileStore is a TokenStore in a file, which processes sharing the path
// share. It writes atomically with mode 0600 and, as ssh does with keys,
// refuses to load a file others may read or own, a symbolic link, or
// anything but a regular file (ErrInsecureTokenFile). It is safe for
// concurrent use.
type FileStore struct {
	path string
	now  func() time.Time
	mu   sync.Mutex // serialises this process's writes
}

// staleTempAge is how old a leftover temporary file must be before Save
// removes it: far longer than any write takes, so that another process's
// write in progress is never disturbed.
const staleTempAge = time.Minute

// fileRecord is the file's format. Expiry is omitted when unknown.
type fileRecord struct {
	Value  string     `json:"access_token"`
	Expiry *time.Time `json:"expiry,omitempty"`
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
	return &FileStore{path: abs, now: time.Now}, nil
}

// Load reads the token; the zero Token and nil when there is no file.
func (s *FileStore) Load(ctx context.Context) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, fmt.Errorf("securehttp: reading token file: %w", err)
	}
	f, err := openTokenFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Token{}, nil
	}
	if err != nil {
		return Token{}, wrap("securehttp: reading token file", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Token{}, fmt.Errorf("securehttp: reading token file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return Token{}, fmt.Errorf("%w: %s is not a regular file (%s)", ErrInsecureTokenFile, s.path, info.Mode().Type())
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return Token{}, fmt.Errorf("%w: %s has mode %04o, want 0600 (chmod 600 it)", ErrInsecureTokenFile, s.path, perm)
	}
	if err := checkTokenFileOwner(s.path, info); err != nil {
		return Token{}, err
	}
	// Room for a token at the limit, its expiry and the JSON around them;
	// anything longer is refused rather than cut short.
	const limit = maxTokenLen + 256
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return Token{}, fmt.Errorf("securehttp: reading token file: %w", err)
	}
	if len(data) > limit {
		return Token{}, fmt.Errorf("securehttp: token file %s exceeds %d bytes", s.path, limit)
	}
	return decodeTokenFile(s.path, data)
}

// decodeTokenFile reads either format. Errors name the file, never its
// content.
func decodeTokenFile(path string, data []byte) (Token, error) {
	text := strings.TrimSpace(string(data))
	if !strings.HasPrefix(text, "{") {
		// The earlier format: the token alone.
		if len(text) > maxTokenLen {
			return Token{}, fmt.Errorf("securehttp: token file %s exceeds %d bytes", path, maxTokenLen)
		}
		return Token{Value: text}, nil
	}
	var rec fileRecord
	if err := json.Unmarshal([]byte(text), &rec); err != nil {
		// The JSON error may quote the token: keep only its kind.
		return Token{}, fmt.Errorf("securehttp: token file %s is not valid JSON", path)
	}
	tok := Token{Value: rec.Value}
	if rec.Expiry != nil {
		tok.Expiry = *rec.Expiry
	}
	return tok, nil
}

// Save writes tok atomically, with mode 0600.
func (s *FileStore) Save(ctx context.Context, tok Token) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("securehttp: writing token file: %w", err)
	}
	rec := fileRecord{Value: tok.Value}
	if !tok.Expiry.IsZero() {
		rec.Expiry = &tok.Expiry
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return errors.New("securehttp: encoding the token file failed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("securehttp: creating token directory: %w", err)
	}
	s.removeStaleTemps(dir)
	tmp, err := os.CreateTemp(dir, s.tempPrefix()+"*")
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
	if _, err := tmp.Write(append(data, '\n')); err != nil {
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

// tempPrefix starts the name of every temporary file Save writes.
func (s *FileStore) tempPrefix() string { return "." + filepath.Base(s.path) + ".tmp-" }

// removeStaleTemps removes this store's temporary files that a crash
// between write and rename left behind, once they are staleTempAge old. It
// removes only regular files (never following a link) with Save's prefix,
// and ignores errors: the cleanup is best effort.
func (s *FileStore) removeStaleTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := s.tempPrefix()
	cutoff := s.now().Add(-staleTempAge)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			continue
		}
		_ = os.Remove(filepath.Join(dir, e.Name()))
	}
}
