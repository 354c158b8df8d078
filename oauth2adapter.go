package securehttp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// OAuth2Refresh adapts an oauth2.TokenSource to Bearer.Refresh. Pass one
// that fetches a new token on each call, not a caching ReuseTokenSource,
// and whose HTTP client has a Timeout, since TokenSource takes no context.
// A token endpoint's error is an *OAuthError, never its raw body.
func OAuth2Refresh(src oauth2.TokenSource) func(context.Context) (Token, error) {
	return func(ctx context.Context) (Token, error) {
		if err := ctx.Err(); err != nil {
			return Token{}, err
		}
		tok, err := src.Token()
		if err != nil {
			return Token{}, oauth2Error(err)
		}
		if tt := tok.Type(); !strings.EqualFold(tt, "Bearer") {
			return Token{}, fmt.Errorf("oauth2 token type %q is not Bearer", tt)
		}
		return Token{Value: tok.AccessToken, Expiry: tok.Expiry}, nil
	}
}

// oauth2Error keeps a token endpoint's raw response out of error text: an
// *oauth2.RetrieveError prints up to a megabyte of the response body
// verbatim, which a broken or hostile server may fill with control
// characters or with an echo of the request and its client secret. The
// error reads as the *OAuthError it is, cleaned and cut short as
// ClientCredentials reports one, with any field that quotes a credential
// of the request redacted, and errors.As still finds both. A
// *url.Error's URL loses its query and userinfo.
func oauth2Error(err error) error {
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
		oe := &OAuthError{Code: "(no OAuth error in the response)"}
		var guard *echoGuard
		if re.Response != nil {
			oe.StatusCode = re.Response.StatusCode
			// The source's secret is out of reach, but the request it
			// sent, with its credentials, is the response's.
			guard = sentCredentials(re.Response.Request)
		}
		if re.ErrorCode != "" {
			oe.Code = guard.text(re.ErrorCode, maxErrorCode)
			oe.Description = guard.text(re.ErrorDescription, maxDescription)
			oe.URI = guard.text(re.ErrorURI, maxDescription)
		}
		return &retrieveError{oauth: oe, err: re}
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		u, perr := url.Parse(ue.URL)
		if perr != nil {
			return wrap("oauth2 token request", ue.Err)
		}
		return wrap("oauth2 "+ue.Op+" "+redactURL(u), ue.Err)
	}
	return err
}

// retrieveError is an *oauth2.RetrieveError told as an *OAuthError.
type retrieveError struct {
	oauth *OAuthError
	err   *oauth2.RetrieveError
}

func (e *retrieveError) Error() string   { return e.oauth.Error() }
func (e *retrieveError) Unwrap() []error { return []error{e.oauth, e.err} }
