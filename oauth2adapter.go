package securehttp

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/oauth2"
)

// OAuth2Refresh adapts an oauth2.TokenSource, such as a client-credentials
// or refresh-token flow from golang.org/x/oauth2, to Bearer.Refresh. The
// token's expiry is kept.
//
// Pass a source that fetches a new token on each call: a caching
// oauth2.ReuseTokenSource hands back its cached token until its own expiry,
// even after a server refused it (the Transport then logs a warning once).
// The source's own HTTP client bounds the call, since TokenSource takes no
// context: give it a client with a Timeout. For client credentials, prefer
// Bearer.ClientCredentials, which needs neither.
func OAuth2Refresh(src oauth2.TokenSource) func(context.Context) (Token, error) {
	return func(ctx context.Context) (Token, error) {
		if err := ctx.Err(); err != nil {
			return Token{}, err
		}
		tok, err := src.Token()
		if err != nil {
			return Token{}, err
		}
		if tt := tok.Type(); !strings.EqualFold(tt, "Bearer") {
			return Token{}, fmt.Errorf("oauth2 token type %q is not Bearer", tt)
		}
		return Token{Value: tok.AccessToken, Expiry: tok.Expiry}, nil
	}
}
