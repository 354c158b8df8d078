package securehttp

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNilLoggerWarnsToDefault: a nil Config.Logger sends Warn and Error
// records to slog.Default(), so that a mistake in configuration (here, a
// pin set without a backup) reaches someone, and keeps Debug silent; a
// logger with slog.DiscardHandler silences everything. It runs in a child
// process, since slog.Default() is the process's.
func TestNilLoggerWarnsToDefault(t *testing.T) {
	if mode := os.Getenv("SECUREHTTP_LOGGER_CHILD"); mode != "" {
		loggerChild(mode)
		return
	}
	t.Parallel()
	for _, tt := range []struct {
		mode     string
		wantWarn bool
	}{{"nil", true}, {"discard", false}} {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNilLoggerWarnsToDefault$", "-test.count=1", "-test.v=false")
		cmd.Env = append(os.Environ(), "SECUREHTTP_LOGGER_CHILD="+tt.mode)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		if err != nil {
			t.Fatalf("child %s: %v\nstderr:\n%s", tt.mode, err, stderr.String())
		}
		got := stderr.String()
		if warned := strings.Contains(got, "WARN securehttp: pin set has a single pin"); warned != tt.wantWarn {
			t.Errorf("%s Logger: got the warning %v, want %v; stderr:\n%s", tt.mode, warned, tt.wantWarn, got)
		}
		if strings.Contains(got, "DEBUG") || strings.Contains(got, "INFO") {
			t.Errorf("%s Logger: got a Debug or Info record on stderr, want Warn and Error only:\n%s", tt.mode, got)
		}
	}
}

// loggerChild makes a client whose Config warns and logs at Debug, with
// the Logger that mode names, through slog.Default's log package output,
// which goes to stderr.
func loggerChild(mode string) {
	cfg := Config{Pins: []PinSet{{Host: "api.test", Pins: []string{fakePin('A')}}}}
	if mode == "discard" {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	slog.SetLogLoggerLevel(slog.LevelDebug) // Debug would show, were it passed on
	t, err := newTransport(cfg)
	if err != nil {
		panic(err)
	}
	t.logger.Debug("securehttp: a debug record")
	t.CloseIdleConnections()
}

// TestDefaultLoggerKeepsItsFilterWithAttrsAndGroups: a logger derived from
// the default one with With and WithGroup, in any order, still passes Warn
// and above only.
func TestDefaultLoggerKeepsItsFilterWithAttrsAndGroups(t *testing.T) {
	t.Parallel()
	for name, l := range map[string]*slog.Logger{
		"plain":            defaultLogger(),
		"attrs":            defaultLogger().With("a", 1),
		"group":            defaultLogger().WithGroup("g"),
		"group then attrs": defaultLogger().WithGroup("g").With("a", 1),
		"two groups":       defaultLogger().WithGroup("g").WithGroup("h"),
	} {
		if l.Enabled(context.Background(), slog.LevelDebug) || l.Enabled(context.Background(), slog.LevelInfo) {
			t.Errorf("%s: Debug or Info enabled, want Warn and above only", name)
		}
	}
}
