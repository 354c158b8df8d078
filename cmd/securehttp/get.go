package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/securehttp/securehttp"
)

const getUsage = "get [--cacert FILE] [--pin P]... [--token-file F] [-o FILE] [-v] URL"

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// The client may log from its own goroutines (-v) while this one
	// writes errors or the progress bar.
	stderr = &lockedWriter{w: stderr}
	fs := newFlagSet("get", getUsage, stderr)
	cacert := fs.String("cacert", "", "trust the roots in this PEM `file` instead of the system roots")
	var pins []string
	fs.Func("pin", "accept the URL's host only if its verified chain has this `pin`: sha256/<base64> or a\n"+
		"SHA-256 certificate fingerprint; repeat it to give a backup pin", func(p string) error {
		pins = append(pins, p)
		return nil
	})
	tokenFile := fs.String("token-file", "", "send the bearer token kept in this `file` (mode 0600) to the URL's host, and to no other")
	output := fs.String("o", "", "write the body to `file` instead of stdout")
	verbose := fs.Bool("v", false, "log the client's warnings and debug events to stderr (never a token)")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(positional) != 1 {
		fs.Usage()
		return exitUsage
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "securehttp get: "+format+"\n", a...)
		return code
	}
	u, err := parseAbsoluteURL(positional[0])
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	roots, err := loadRoots(*cacert)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}

	cfg := securehttp.Config{RootCAs: roots}
	if len(pins) > 0 {
		cfg.Pins = []securehttp.PinSet{{Host: u.Hostname(), Pins: pins}}
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if *tokenFile != "" {
		store, err := securehttp.NewFileStore(*tokenFile)
		if err != nil {
			return fail(exitUsage, "--token-file: %v", err)
		}
		// Read the file once up front, so that a missing, empty or
		// unreadable token file (one that others can read, say) is
		// reported before any connection is made.
		tok, err := store.Load(ctx)
		if err != nil {
			return fail(exitError, "--token-file: %v", err)
		}
		if tok.Value == "" {
			return fail(exitError, "--token-file: %s holds no token", *tokenFile)
		}
		cfg.Bearer = &securehttp.Bearer{Store: store, Hosts: []string{u.Hostname()}}
	}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		return fail(exitUsage, "%v", err) // a *ConfigError: a bad --pin, say
	}
	defer client.CloseIdleConnections()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail(exitCode(err), "%s", errText(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		// Like curl --fail: the error body is not written out.
		return fail(exitHTTP, "%s: HTTP %s", redactURL(resp.Request.URL), resp.Status)
	}

	if *output == "" {
		if _, err := io.Copy(stdout, resp.Body); err != nil {
			return fail(exitCode(err), "reading the body: %v", err)
		}
		return exitOK
	}
	var progress io.Writer
	if isTerminal(stderr) {
		progress = stderr
	}
	if err := saveFile(*output, resp.Body, resp.ContentLength, progress); err != nil {
		return fail(exitCode(err), "%v", err)
	}
	return exitOK
}

// saveFile writes body to path through a temporary file in the same
// directory, renamed into place once complete, so that a failed download
// never leaves a truncated file or clobbers an existing one. With progress
// set, a progress bar is drawn there.
func saveFile(path string, body io.Reader, size int64, progress io.Writer) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var dst io.Writer = tmp
	var bar *progressBar
	if progress != nil {
		bar = newProgressBar(progress, size, time.Now)
		dst = io.MultiWriter(tmp, bar)
	}
	if _, err := io.Copy(dst, body); err != nil {
		if bar != nil {
			fmt.Fprintln(progress)
		}
		return fmt.Errorf("reading the body: %w", err)
	}
	if bar != nil {
		bar.finish()
	}
	// CreateTemp makes the file 0600; a download gets the usual mode.
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// redactURL renders u without userinfo, query or fragment, which may carry
// secrets.
func redactURL(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// isTerminal reports whether w is a terminal (a character device), without
// any dependency beyond os.
func isTerminal(w io.Writer) bool {
	if lw, ok := w.(*lockedWriter); ok {
		w = lw.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// progressRedraw is the shortest time between two redraws of the bar.
const progressRedraw = 100 * time.Millisecond

// progressBar draws a download's progress on one terminal line. It counts
// the bytes written to it.
type progressBar struct {
	w     io.Writer
	total int64 // -1 when the server sent no Content-Length
	done  int64
	start time.Time
	drawn time.Time
	now   func() time.Time
}

// newProgressBar returns a bar for total bytes, or an unknown total when
// total is negative. It is first drawn after progressRedraw, so that a
// quick download shows only its final line, with a meaningful rate.
func newProgressBar(w io.Writer, total int64, now func() time.Time) *progressBar {
	start := now()
	return &progressBar{w: w, total: total, start: start, drawn: start, now: now}
}

func (p *progressBar) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if now := p.now(); now.Sub(p.drawn) >= progressRedraw {
		p.drawn = now
		p.draw(now)
	}
	return len(b), nil
}

// finish draws the final state and ends the line.
func (p *progressBar) finish() {
	p.draw(p.now())
	fmt.Fprintln(p.w)
}

func (p *progressBar) draw(now time.Time) {
	// "\r" returns to the start of the line and ESC [K clears what a longer
	// previous line left behind.
	fmt.Fprintf(p.w, "\r%s\x1b[K", renderProgress(p.done, p.total, now.Sub(p.start)))
}

// progressWidth is the number of cells inside the bar's brackets.
const progressWidth = 30

// renderProgress returns one line of progress: a bar and a percentage when
// the total is known, the amount and the rate in any case.
func renderProgress(done, total int64, elapsed time.Duration) string {
	rate := ""
	if elapsed > 0 {
		rate = "  " + byteSize(int64(float64(done)/elapsed.Seconds())) + "/s"
	}
	if total <= 0 {
		return byteSize(done) + rate
	}
	done = min(done, total)
	filled := int(int64(progressWidth) * done / total)
	bar := strings.Repeat("=", filled)
	if filled < progressWidth {
		bar += ">" + strings.Repeat(" ", progressWidth-filled-1)
	}
	return fmt.Sprintf("[%s] %3d%%  %s / %s%s", bar, 100*done/total, byteSize(done), byteSize(total), rate)
}

// byteSize formats n bytes in binary units.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n)/unit, 0
	for f >= unit && i < 3 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[i])
}
