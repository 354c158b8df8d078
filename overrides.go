package securehttp

import "context"

// overrideKey keys the per-request overrides in a request's context.
type overrideKey int

const (
	noRetriesKey overrideKey = iota
	noTokenKey
)

// WithoutRetries returns a context under which a request's failures are not
// retried. Replays that authentication asks for (a 401, a DPoP nonce) still
// happen.
func WithoutRetries(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetriesKey, true)
}

// WithoutToken returns a context under which a request carries no token,
// even to a host of Config.Bearer.
func WithoutToken(ctx context.Context) context.Context {
	return context.WithValue(ctx, noTokenKey, true)
}

func retriesOff(ctx context.Context) bool { return ctx.Value(noRetriesKey) != nil }

func tokenOff(ctx context.Context) bool { return ctx.Value(noTokenKey) != nil }
