package main

// Where get -o writes: stdout, a special file written in place, or a
// regular file replaced atomically once the download is complete; and how
// server text is escaped before it reaches a terminal.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode/utf8"
)

// output is get's destination. Writes go to w; commit makes them final and
// abort, safe to call more than once and after commit, discards them.
type output struct {
	w    io.Writer
	file bool // -o named a file, "-" excluded

	tmp     *os.File // the temporary file a regular file is written to
	special *os.File // a device or FIFO, written directly
	final   string   // the path tmp is renamed to
	done    bool
}

func (o *output) Write(p []byte) (int, error) { return o.w.Write(p) }

// openOutput opens the destination of -o path: stdout for "" and "-"; the
// file itself for a device, a FIFO or a socket, which a rename would
// replace (as root, -o /dev/null would otherwise turn the device into a
// file); otherwise a temporary file beside the target.
//
// A new file gets mode 0666 less the umask, as with curl and shell
// redirection; an existing file keeps its mode, so that a 0600 file does
// not become world-readable. A symbolic link is followed and kept.
func openOutput(path string, stdout io.Writer) (*output, error) {
	if path == "" || path == "-" {
		return &output{w: stdout, done: true}, nil
	}
	target := path
	var mode fs.FileMode = 0o666 // less the umask, applied by the kernel
	keepMode := false
	switch info, err := os.Stat(path); {
	case err == nil && info.IsDir():
		return nil, fmt.Errorf("%s is a directory", path)
	case err == nil && !info.Mode().IsRegular():
		return openSpecial(path, info.Mode())
	case err == nil:
		if target, err = filepath.EvalSymlinks(path); err != nil {
			return nil, err
		}
		mode, keepMode = info.Mode().Perm(), true
	case errors.Is(err, fs.ErrNotExist):
		if _, lerr := os.Lstat(path); lerr == nil {
			return nil, fmt.Errorf("%s is a symbolic link to a missing file", path)
		}
		dir := filepath.Dir(path)
		if _, derr := os.Stat(dir); derr != nil {
			return nil, fmt.Errorf("cannot write %s: directory %s: %w", path, dir, derr)
		}
	default:
		return nil, err
	}
	tmp, err := createTemp(filepath.Dir(target), "."+filepath.Base(target)+".part-", mode)
	if err != nil {
		return nil, err
	}
	if keepMode {
		// The umask may have cleared bits of the file's mode.
		if err := tmp.Chmod(mode); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return nil, err
		}
	}
	return &output{w: tmp, file: true, tmp: tmp, final: target}, nil
}

// openSpecial opens a device, FIFO or socket for writing, without creating
// or truncating anything. A FIFO is opened without blocking, so that one
// with no reader is an error rather than a hang.
func openSpecial(path string, mode fs.FileMode) (*output, error) {
	flags := os.O_WRONLY
	if mode&fs.ModeNamedPipe != 0 {
		flags |= syscall.O_NONBLOCK
	}
	f, err := os.OpenFile(path, flags, 0)
	if errors.Is(err, syscall.ENXIO) {
		return nil, fmt.Errorf("%s is a FIFO with no reader", path)
	}
	if err != nil {
		return nil, err
	}
	return &output{w: f, file: true, special: f}, nil
}

// createTemp creates a new file named prefix plus a random suffix in dir,
// with mode perm less the umask. os.CreateTemp would make it 0600.
func createTemp(dir, prefix string, perm fs.FileMode) (*os.File, error) {
	for range 100 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(filepath.Join(dir, prefix+hex.EncodeToString(b[:])), os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("cannot create a temporary file in %s", dir)
}

// commit makes the output final: the temporary file takes the target's
// place, or the special file is closed.
func (o *output) commit() error {
	if o.done {
		return nil
	}
	o.done = true
	if o.special != nil {
		return o.special.Close()
	}
	if err := o.tmp.Close(); err != nil {
		os.Remove(o.tmp.Name())
		return err
	}
	if err := os.Rename(o.tmp.Name(), o.final); err != nil {
		os.Remove(o.tmp.Name())
		return err
	}
	return nil
}

// abort discards the output: the temporary file is removed, and the target
// is left as it was.
func (o *output) abort() {
	if o.done {
		return
	}
	o.done = true
	if o.special != nil {
		o.special.Close()
		return
	}
	o.tmp.Close()
	os.Remove(o.tmp.Name())
}

// escaper writes to w what is written to it with its control characters
// escaped, so that text a server controls cannot drive the terminal it is
// printed on: an escape sequence could set the title, clear the screen or
// write the clipboard (OSC 52). C0 controls and DEL become \xNN, C1
// controls \u00NN, and bytes that are not UTF-8 \xNN, as a terminal that
// is not in UTF-8 mode reads 0x80 to 0x9F as C1 controls. With lines set,
// newlines, tabs and CR LF pairs are kept. Characters split across writes
// are put together: call flush after the last write.
type escaper struct {
	w       io.Writer
	lines   bool
	pending []byte // an incomplete character, or a CR, ending the last write
	buf     []byte
}

func (e *escaper) Write(p []byte) (int, error) {
	data := p
	if len(e.pending) > 0 {
		data = append(e.pending, p...)
		e.pending = nil
	}
	out := e.buf[:0]
	for i := 0; i < len(data); {
		c := data[i]
		if c < utf8.RuneSelf {
			switch {
			case c >= 0x20 && c != 0x7f, e.lines && (c == '\n' || c == '\t'):
				out = append(out, c)
			case e.lines && c == '\r' && i+1 == len(data):
				e.pending = []byte{c} // a CR LF pair, perhaps
			case e.lines && c == '\r' && data[i+1] == '\n':
				out = append(out, "\r\n"...)
				i++
			default:
				out = fmt.Appendf(out, `\x%02x`, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1 && !utf8.FullRune(data[i:]):
			e.pending = append([]byte(nil), data[i:]...)
			size = len(data) - i
		case r == utf8.RuneError && size == 1:
			out = fmt.Appendf(out, `\x%02x`, c)
		case r < 0xa0: // C1
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, data[i:i+size]...)
		}
		i += size
	}
	e.buf = out
	if _, err := e.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes what the last write left pending, escaped.
func (e *escaper) flush() error {
	p := e.pending
	e.pending = nil
	out := e.buf[:0]
	for _, c := range p {
		out = fmt.Appendf(out, `\x%02x`, c)
	}
	if len(out) == 0 {
		return nil
	}
	_, err := e.w.Write(out)
	return err
}

// escapeControls returns s with its control characters escaped, newlines
// and tabs included, for a line that names server text: a status line, a
// header, an error message.
func escapeControls(s string) string {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x7f {
		i++
	}
	if i == len(s) {
		return s // printable ASCII, the common case, without allocating
	}
	var b strings.Builder
	e := &escaper{w: &b}
	e.Write([]byte(s))
	e.flush()
	return b.String()
}
