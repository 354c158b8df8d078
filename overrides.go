package securehttp

import "context"

// overrideKey keys the per-request overrides in a request's context.
type overrideKey int

const (
	noRetriesKey overrideKey = iota
	noTokenKey
)

// WithoutRetries returns a context under which a request is sent once:
// failures are not retried, whatever the RetryPolicy says. A 401 replay
// with a refreshed token, or a DPoP nonce replay, still happens: those are
// part of authenticating, not retries.
func WithoutRetries(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetriesKey, true)
}

// WithoutToken returns a context under which a request carries no bearer
// token, even to a host of Config.Bearer, and so waits for no refresh.
func WithoutToken(ctx context.Context) context.Context {
	return context.WithValue(ctx, noTokenKey, true)
}

func retriesOff(ctx context.Context) bool { return ctx.Value(noRetriesKey) != nil }

func tokenOff(ctx context.Context) bool { return ctx.Value(noTokenKey) != nil }
