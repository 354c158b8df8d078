//go:build unix

package securehttp

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testpki"
)

// unblockFIFO opens path for writing without blocking and closes it, which
// gives a reader blocked in open or read an end of file. It lets a test that
// fails by hanging on a FIFO clean up after itself.
func unblockFIFO(path string) {
	if fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0); err == nil {
		_ = syscall.Close(fd)
	}
}

// TestClientCertFIFONeverBlocks: a certificate file replaced by a
// FIFO (or a symbolic link to one) must be refused at once, by
// LoadClientCert and by the watcher: a reader blocked on it would hang
// LoadClientCert, and Close, which waits for the watcher, forever.
func TestClientCertFIFONeverBlocks(t *testing.T) {
	t.Parallel()
	leaf := newClientLeaf(t, testpki.Options{})
	files := newPairFiles(t, leaf)
	fifo := filepath.Join(files.dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}

	t.Run("load", func(t *testing.T) {
		link := filepath.Join(files.dir, "link.crt")
		if err := os.Symlink(fifo, link); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			c, err := loadClientCert(link, files.key, time.Hour, time.Now)
			if c != nil {
				_ = c.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrClientCert) {
				t.Fatalf("LoadClientCert(FIFO) = %v, want an error matching ErrClientCert", err)
			}
		case <-time.After(3 * time.Second):
			unblockFIFO(fifo)
			<-done
			t.Fatal("LoadClientCert on a FIFO still blocked after 3s, want an immediate ErrClientCert")
		}
	})

	t.Run("reload", func(t *testing.T) {
		c, err := loadClientCert(files.cert, files.key, 10*time.Millisecond, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(files.cert); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(fifo, files.cert); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // ten polls
		closed := make(chan struct{})
		go func() { _ = c.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(3 * time.Second):
			for range 100 { // the watcher may read once more per poll
				unblockFIFO(fifo)
				select {
				case <-closed:
				case <-time.After(10 * time.Millisecond):
					continue
				}
				break
			}
			<-closed
			t.Fatal("Close still blocked after 3s: the watcher hung reading a FIFO")
		}
		if got, want := c.NotAfter(), leaf.Cert.NotAfter; !got.Equal(want) {
			t.Errorf("NotAfter after the FIFO = %v, want the previous pair's %v", got, want)
		}
	})
}

// TestClientCertHugeFileRefused: a certificate or key file larger
// than any real PEM is refused without reading it whole, and so is a
// device such as /dev/zero, which has no end.
func TestClientCertHugeFileRefused(t *testing.T) {
	t.Parallel()
	leaf := newClientLeaf(t, testpki.Options{})
	files := newPairFiles(t, leaf)
	huge := filepath.Join(files.dir, "huge.crt")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(files.dir, "zero.key")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, cert, key string }{
		{"huge cert", huge, files.key},
		{"dev zero key", files.cert, zero},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadClientCert(tc.cert, tc.key, time.Hour, time.Now)
			if !errors.Is(err, ErrClientCert) || !errors.Is(err, errCertFileUnfit) {
				t.Fatalf("LoadClientCert = %v, want ErrClientCert and errCertFileUnfit", err)
			}
		})
	}
}
