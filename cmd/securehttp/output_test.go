package main

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// TestGetOutputModes: get -o writes into special files in place instead
// of renaming over them, keeps an existing file's mode, gives a new file
// 0666 less the umask, treats "-" as stdout, and leaves no .part file
// behind when the directory is missing.
func TestGetOutputModes(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	var hits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /body", func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		io.WriteString(w, "fresh body\n")
	})
	srv := testutil.StartServer(t, testpki.TLSCertificate(p.leaf, p.inter), mux)
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	get := func(t *testing.T, dst string) (int, string, string) {
		t.Helper()
		return runCmd(t, "get", "--cacert", rootPEM, "-o", dst, srv.URL+"/body")
	}
	onlyEntry := func(t *testing.T, dir, want string) {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) != 1 || names[0] != want {
			t.Errorf("the directory holds %q, want only %q", names, want)
		}
	}

	t.Run("character device written in place", func(t *testing.T) {
		t.Parallel()
		dev := filepath.Join(t.TempDir(), "null")
		// A private /dev/null (major 1, minor 3), so that a regression
		// cannot replace the machine's own.
		if err := syscall.Mknod(dev, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
			if os.Geteuid() == 0 {
				t.Fatalf("mknod as root: %v", err)
			}
			dev = os.DevNull // renaming over it is refused to non-root users
		}
		code, out, errOut := get(t, dev)
		if code != exitOK || out != "" {
			t.Fatalf("got exit code %d, stdout %q, stderr %q; want 0 and nothing on stdout", code, out, errOut)
		}
		info, err := os.Stat(dev)
		if err != nil || info.Mode()&fs.ModeCharDevice == 0 {
			t.Errorf("%s is now %v (%v), want it still a character device", dev, info.Mode(), err)
		}
		if dev != os.DevNull {
			onlyEntry(t, filepath.Dir(dev), "null")
		}
	})

	t.Run("FIFO written in place", func(t *testing.T) {
		t.Parallel()
		fifo := filepath.Join(t.TempDir(), "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		got := make(chan []byte, 1)
		go func() {
			// Opening for reading blocks until the command opens it for
			// writing; a failed run opens it below to end this goroutine.
			f, err := os.Open(fifo)
			if err != nil {
				got <- nil
				return
			}
			defer f.Close()
			b, _ := io.ReadAll(f)
			got <- b
		}()
		// The command opens the FIFO without blocking: wait until the
		// reader is there.
		var code int
		var errOut string
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, _, errOut = get(t, fifo)
			if code == exitOK || time.Now().After(deadline) || !strings.Contains(errOut, "no reader") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if code != exitOK {
			if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			t.Fatalf("got exit code %d (%s), want 0", code, errOut)
		}
		select {
		case b := <-got:
			if string(b) != "fresh body\n" {
				t.Errorf("the FIFO's reader got %q, want the body", b)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the FIFO's reader got no end of file within 5 s")
		}
		info, err := os.Lstat(fifo)
		if err != nil || info.Mode()&fs.ModeNamedPipe == 0 {
			t.Errorf("%s is now %v (%v), want it still a FIFO", fifo, info.Mode(), err)
		}
		onlyEntry(t, filepath.Dir(fifo), "fifo")
	})

	t.Run("FIFO without a reader fails at once", func(t *testing.T) {
		t.Parallel()
		fifo := filepath.Join(t.TempDir(), "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		before := hits.Load()
		start := time.Now()
		code, _, errOut := get(t, fifo)
		if code != exitError || time.Since(start) > 5*time.Second {
			t.Errorf("got exit code %d after %v (%s), want %d at once", code, time.Since(start), errOut, exitError)
		}
		if n := hits.Load() - before; n != 0 {
			t.Errorf("the server got %d requests, want none", n)
		}
		onlyEntry(t, filepath.Dir(fifo), "fifo")
	})

	for _, mode := range []fs.FileMode{0o600, 0o640, 0o604} {
		t.Run("existing file keeps mode "+mode.String(), func(t *testing.T) {
			t.Parallel()
			dst := writeFile(t, "out.txt", []byte("old"), mode)
			if code, _, errOut := get(t, dst); code != exitOK {
				t.Fatalf("got exit code %d (%s), want 0", code, errOut)
			}
			info, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Mode().Perm(); got != mode {
				t.Errorf("got mode %v, want %v", got, mode)
			}
			if b, _ := os.ReadFile(dst); string(b) != "fresh body\n" {
				t.Errorf("the file holds %q, want the body", b)
			}
			onlyEntry(t, filepath.Dir(dst), "out.txt")
		})
	}

	t.Run("new file gets 0666 less the umask", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		// The umask cannot be read without changing it, process-wide: a
		// file created with 0666 shows what it takes away.
		ref, err := os.OpenFile(filepath.Join(t.TempDir(), "ref"), os.O_CREATE|os.O_WRONLY, 0o666)
		if err != nil {
			t.Fatal(err)
		}
		refInfo, _ := ref.Stat()
		ref.Close()
		dst := filepath.Join(dir, "new.txt")
		if code, _, errOut := get(t, dst); code != exitOK {
			t.Fatalf("got exit code %d (%s), want 0", code, errOut)
		}
		info, err := os.Stat(dst)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := info.Mode().Perm(), refInfo.Mode().Perm(); got != want {
			t.Errorf("got mode %v, want %v (0666 less the umask)", got, want)
		}
	})

	t.Run("symbolic link followed and kept", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		target := filepath.Join(dir, "target")
		if err := os.WriteFile(target, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, "link")
		if err := os.Symlink("target", link); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := get(t, link); code != exitOK {
			t.Fatalf("got exit code %d (%s), want 0", code, errOut)
		}
		if info, err := os.Lstat(link); err != nil || info.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("the link is now %v (%v), want it still a symbolic link", info.Mode(), err)
		}
		if b, _ := os.ReadFile(target); string(b) != "fresh body\n" {
			t.Errorf("the target holds %q, want the body", b)
		}
	})

	t.Run("dash means stdout", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := get(t, "-")
		if code != exitOK || out != "fresh body\n" {
			t.Errorf("got exit code %d and stdout %q (%s), want 0 and the body", code, out, errOut)
		}
		if _, err := os.Lstat("-"); err == nil {
			t.Errorf(`a file named "-" was created`)
		}
	})

	t.Run("missing directory: no request, nothing left", func(t *testing.T) {
		t.Parallel()
		parent := t.TempDir()
		before := hits.Load()
		code, out, errOut := get(t, filepath.Join(parent, "missing", "out.txt"))
		if code != exitError || out != "" || !strings.Contains(errOut, "missing") {
			t.Errorf("got exit code %d, stdout %q, stderr %q; want %d and an error naming the directory", code, out, errOut, exitError)
		}
		if n := hits.Load() - before; n != 0 {
			t.Errorf("the server got %d requests, want none", n)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			t.Errorf("the parent directory holds %d entries, want none", len(entries))
		}
	})

	t.Run("a directory is refused", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if code, _, _ := get(t, dir); code != exitError {
			t.Errorf("got exit code %d, want %d", code, exitError)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("the directory holds %d entries, want none", len(entries))
		}
	})

	t.Run("HTTP error: file untouched, body on stderr", func(t *testing.T) {
		t.Parallel()
		dst := writeFile(t, "keep.txt", []byte("previous"), 0o600)
		code, out, errOut := runCmd(t, "get", "--fail-with-body", "--cacert", rootPEM, "-o", dst, srv.URL+"/nope")
		if code != exitHTTP || out != "" || !strings.Contains(errOut, "404 page not found") {
			t.Errorf("got exit code %d, stdout %q, stderr %q; want %d and the error body on stderr", code, out, errOut, exitHTTP)
		}
		if b, _ := os.ReadFile(dst); !bytes.Equal(b, []byte("previous")) {
			t.Errorf("the file now holds %q, want it untouched", b)
		}
		onlyEntry(t, filepath.Dir(dst), "keep.txt")
	})
}

// TestEscaper checks what reaches the terminal of server text: C0 controls,
// DEL, C1 controls (as characters and as bytes) and bytes that are not
// UTF-8 escaped; newlines, tabs and CR LF pairs kept where lines are; the
// rest, other scripts included, as it came. The output is the same however
// the input is split across writes.
func TestEscaper(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    string
		lines bool
		want  string
	}{
		{"printable", "HTTP 404 Not Found", false, "HTTP 404 Not Found"},
		{"OSC 52", "a\x1b]52;c;cHduZWQ=\x07b", false, `a\x1b]52;c;cHduZWQ=\x07b`},
		{"C0 and DEL", "\x00\x08\x7f\t\n\r", false, `\x00\x08\x7f\x09\x0a\x0d`},
		{"C1", "\u009b2J \u0085", false, `\u009b2J \u0085`},
		{"not UTF-8", "\x9b2J\xff\xc3", false, `\x9b2J\xff\xc3`},
		{"other scripts", "é 日本 \U0001F600 \ufffd", false, "é 日本 \U0001F600 \ufffd"},
		{"lines kept", "one\r\n\ttwo\nthree\r\n", true, "one\r\n\ttwo\nthree\r\n"},
		{"lone CR", "one\rtwo\r", true, `one\x0dtwo\x0d`},
		{"controls among lines", "one\n\x1b[2J\u009b2J\n", true, "one\n" + `\x1b[2J\u009b2J` + "\n"},
		{"truncated character", "日本"[:4], true, "日" + `\xe6`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !tt.lines {
				if got := escapeControls(tt.in); got != tt.want {
					t.Errorf("escapeControls(%q) = %q, want %q", tt.in, got, tt.want)
				}
			}
			// Every split in two, and one byte at a time.
			splits := [][]string{}
			for i := 0; i <= len(tt.in); i++ {
				splits = append(splits, []string{tt.in[:i], tt.in[i:]})
			}
			var bytewise []string
			for i := range len(tt.in) {
				bytewise = append(bytewise, tt.in[i:i+1])
			}
			splits = append(splits, bytewise)
			for _, chunks := range splits {
				var b bytes.Buffer
				e := &escaper{w: &b, lines: tt.lines}
				for _, c := range chunks {
					if n, err := e.Write([]byte(c)); n != len(c) || err != nil {
						t.Fatalf("Write(%q) = %d, %v; want %d, nil", c, n, err, len(c))
					}
				}
				if err := e.flush(); err != nil {
					t.Fatal(err)
				}
				if got := b.String(); got != tt.want {
					t.Errorf("written as %q: got %q, want %q", chunks, got, tt.want)
				}
			}
		})
	}
}
