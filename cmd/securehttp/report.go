package main

// How get reports a failure: one line on stderr, as curl does, which -s
// silences and -S brings back; and what it says when --max-time runs out.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// reporter prints get's failures.
type reporter struct {
	w         io.Writer
	silent    bool // -s: no message, unless showError
	showError bool // -S
}

// fail prints one line on stderr and returns code. The message may quote
// the server (a reason phrase, a name in its certificate): its control
// characters are escaped. With -s and without -S it prints nothing but a
// usage error, which is about the command line, not the transfer.
func (r *reporter) fail(code int, format string, a ...any) int {
	if r.silent && !r.showError && code != exitUsage {
		return code
	}
	fmt.Fprintf(r.w, "securehttp get: %s\n", escapeControls(fmt.Sprintf(format, a...)))
	return code
}

// clientLogger is the client's logger: with -v, its warnings and debug
// events on stderr; with -s, none of its warnings either; otherwise nil,
// which sends its warnings to slog.Default, as for any program.
func clientLogger(verbose, silent bool, stderr io.Writer) *slog.Logger {
	switch {
	case verbose:
		return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	case silent:
		return slog.New(slog.DiscardHandler)
	}
	return nil
}

// maxTimeError is the cause of the deadline that --max-time sets. net/http
// returns a context's cause in place of context.DeadlineExceeded, so it is
// a timeout to every classifier too, the library's included.
type maxTimeError struct{}

func (maxTimeError) Error() string        { return "--max-time ran out" }
func (maxTimeError) Timeout() bool        { return true }
func (maxTimeError) Is(target error) bool { return target == context.DeadlineExceeded }

// withMaxTime bounds ctx by --max-time, unless d is zero.
func withMaxTime(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, d, maxTimeError{})
}

// requestFailure returns the exit code and the message of a transfer that
// failed with err, after received bytes of the body, or before the
// response when received is negative. When --max-time ran out, the message
// says so and how far the transfer got, instead of Go's internals.
func requestFailure(ctx context.Context, err error, maxTime string, received int64) (int, string) {
	if errors.Is(context.Cause(ctx), maxTimeError{}) && errors.Is(err, context.DeadlineExceeded) {
		if received < 0 {
			return exitTimeout, fmt.Sprintf("timed out: --max-time %s s ran out before the response came", maxTime)
		}
		return exitTimeout, fmt.Sprintf("timed out: --max-time %s s ran out after %d bytes of the body", maxTime, received)
	}
	return exitCode(err), errText(err)
}
