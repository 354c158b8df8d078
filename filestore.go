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

// ErrInsecureTokenFile is returned by FileStore.Load for a token file that
// group or others may read.
var ErrInsecureTokenFile = errors.New("securehttp: token file is accessible by group or others")

// FileStore is a TokenStore in a file, shared by every process that uses the
// same path. It writes with mode 0600, atomically (a temporary file, fsync,
// rename), so a crash never leaves a torn token, and it creates a missing
// parent directory with mode 0700. Like ssh with its keys, it refuses to load
// a file that group or others can read. It is safe for concurrent use.
//
// The file holds a small JSON object with the token and its expiry. A file
// holding only the token, as earlier versions wrote it, still loads, with an
// unknown expiry.
type FileStore struct {
	path string
	mu   sync.Mutex // serialises this process's writes
}

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
	return &FileStore{path: abs}, nil
}

// Load reads the token, or returns the zero Token and nil when the file does
// not exist.
func (s *FileStore) Load(context.Context) (Token, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Token{}, nil
	}
	if err != nil {
		return Token{}, fmt.Errorf("securehttp: reading token file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Token{}, fmt.Errorf("securehttp: reading token file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return Token{}, fmt.Errorf("securehttp: token file %s is not a regular file", s.path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return Token{}, fmt.Errorf("%w: %s has mode %04o, want 0600 (chmod 600 it)", ErrInsecureTokenFile, s.path, perm)
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

// Save writes tok atomically with mode 0600.
func (s *FileStore) Save(_ context.Context, tok Token) (err error) {
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

// String names the file; the token is never printed.
func (s *FileStore) String() string { return "securehttp.FileStore{path: " + s.path + "}" }
