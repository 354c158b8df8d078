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
// slog.Default()'s handler, with the attributes and groups it was given.
type warnings struct {
	with []func(slog.Handler) slog.Handler // WithAttrs and WithGroup, in order
}

func (warnings) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && slog.Default().Handler().Enabled(ctx, l)
}

func (w warnings) Handle(ctx context.Context, r slog.Record) error {
	h := slog.Default().Handler()
	for _, f := range w.with {
		h = f(h)
	}
	return h.Handle(ctx, r)
}

func (w warnings) WithAttrs(attrs []slog.Attr) slog.Handler {
	return w.then(func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) })
}

func (w warnings) WithGroup(name string) slog.Handler {
	if name == "" {
		return w
	}
	return w.then(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

// then returns w with f applied after its own, sharing nothing it may
// change.
func (w warnings) then(f func(slog.Handler) slog.Handler) warnings {
	w.with = append(w.with[:len(w.with):len(w.with)], f)
	return w
}
