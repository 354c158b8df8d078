package securehttp

import (
	"context"
	"log/slog"
)

// defaultLogger is the logger of a Config without one: Warn and Error
// records go to slog.Default(), as looked up when each is logged, so that a
// mistake in configuration reaches someone, the way a nil
// http.Server.ErrorLog reaches the log package. Debug and Info stay silent.
func defaultLogger() *slog.Logger { return slog.New(warnings{}) }

// warnings is a slog.Handler that passes records of level Warn and above to
// slog.Default()'s handler.
type warnings struct {
	attrs []slog.Attr
	group string
}

func (warnings) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && slog.Default().Handler().Enabled(ctx, l)
}

func (w warnings) Handle(ctx context.Context, r slog.Record) error {
	h := slog.Default().Handler()
	if len(w.attrs) > 0 {
		h = h.WithAttrs(w.attrs)
	}
	if w.group != "" {
		h = h.WithGroup(w.group)
	}
	return h.Handle(ctx, r)
}

func (w warnings) WithAttrs(attrs []slog.Attr) slog.Handler {
	if w.group != "" {
		// Rare: attributes inside a group; resolve against the default
		// handler now rather than keep a tree of them.
		return slog.Default().Handler().WithGroup(w.group).WithAttrs(attrs)
	}
	w.attrs = append(w.attrs[:len(w.attrs):len(w.attrs)], attrs...)
	return w
}

func (w warnings) WithGroup(name string) slog.Handler {
	if w.group != "" {
		return slog.Default().Handler().WithGroup(w.group).WithGroup(name)
	}
	w.group = name
	return w
}
