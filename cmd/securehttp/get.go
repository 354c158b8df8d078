package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/securehttp/securehttp"
)

const getUsage = "get [options] URL"

// getFlags holds get's options.
type getFlags struct {
	cacert, tokenFile, output, method, maxTime, cert, key string
	signKey, signKeyID, verifyKey                         string
	pins, headers, connectTo, allowHosts                  []string
	data                                                  []dataArg
	include, location, fail, failWithBody                 bool
	blockPrivate                                          bool
	verbose                                               bool
	silent, showError                                     bool
	writeOut                                              writeOut
	token                                                 tokenFlags
	refused                                               refusedFlags
}

// dataArg is one -d or --data-binary value.
type dataArg struct {
	value  string
	binary bool // --data-binary: a file's bytes are sent as they are
}

func getOptions(f *getFlags, stdout, stderr io.Writer) *options {
	o := newOptions("get", getUsage,
		"Sends one request through securehttp.NewClient, as curl would: https only, the chain always\n"+
			"verified, the URL's host pinned with --pin, a bearer token from --token-file, or one\n"+
			"obtained with --client-id, sent to that host only. The response body goes to stdout,\n"+
			"whatever its status, which fails the command only with --fail or --fail-with-body.", stdout, stderr)
	o.footer = writeExitCodes
	o.str(&f.cacert, "", "cacert", "FILE", "trust the roots in this PEM file instead of the system roots")
	f.refused.addInsecure(o)
	o.str(&f.cert, "E", "cert", "FILE", "present the client certificate (PEM, leaf first) in FILE, as curl --cert;\n"+
		"its key may follow it in FILE or come from --key")
	o.str(&f.key, "", "key", "FILE", "the private key of --cert (PEM: PKCS #8, PKCS #1 or SEC 1, not encrypted)")
	o.fn("", "pin", "PIN", "accept the URL's host only if its verified chain has this pin: sha256/<base64>,\n"+
		"curl's sha256//<base64>, or a SHA-256 certificate fingerprint; repeat it, or join\n"+
		"pins with ; (as curl does) or with commas, to give a backup pin", func(v string) error {
		for p := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ';' || r == ',' }) {
			if p = strings.TrimSpace(p); p != "" {
				f.pins = append(f.pins, p)
			}
		}
		return nil
	})
	o.str(&f.tokenFile, "", "token-file", "FILE", "send the bearer token kept in this file (mode 0600) to the URL's host and port, and to no other")
	addTokenOptions(o, &f.token)
	f.refused.addClientSecret(o)
	o.fn("H", "header", "'NAME: VALUE'", "add a request header; repeatable. 'NAME:' removes a header the client would send", func(v string) error {
		f.headers = append(f.headers, v)
		return nil
	})
	o.str(&f.method, "X", "request", "METHOD", "use this method instead of GET (or POST with -d)")
	o.fn("d", "data", "DATA", "send DATA as the body of a POST (application/x-www-form-urlencoded);\n"+
		"@FILE reads it from FILE without its newlines, @- from stdin; repeated values are joined by &", func(v string) error {
		f.data = append(f.data, dataArg{value: v})
		return nil
	})
	o.fn("", "data-binary", "DATA", "like -d, but @FILE is sent byte for byte", func(v string) error {
		f.data = append(f.data, dataArg{value: v, binary: true})
		return nil
	})
	o.boolean(&f.include, "i", "include", "print the status line and the response headers before the body")
	o.boolean(&f.silent, "s", "silent", "print no error message and no progress bar (the exit code tells); -w still prints")
	o.boolean(&f.showError, "S", "show-error", "with -s, print the error message all the same")
	o.fn("w", "write-out", "FORMAT", "after the transfer, print FORMAT to stdout with its %{variables} filled in:\n"+
		strings.Join(writeOutVars(), ", ")+";\n"+
		"\\n, \\r and \\t are escapes, %% is %", func(v string) error {
		w, err := parseWriteOut(v)
		f.writeOut = w
		return err
	})
	o.boolean(&f.location, "L", "location", "follow redirects (off by default, as in curl); the token, and an Authorization or\n"+
		"Cookie header given with -H, still go to the URL's host and port only; hops carry no\n"+
		"Referer but one given with -H")
	o.str(&f.maxTime, "m", "max-time", "SECONDS", "give up on the whole transfer after this many seconds (decimals allowed)")
	o.fn("", "connect-to", "HOST1:PORT1:HOST2:PORT2", "connect to HOST2:PORT2 for requests to HOST1:PORT1, as curl does: the\n"+
		"certificate, the pins and the token are still judged on HOST1. An empty HOST1 or PORT1\n"+
		"matches any; an empty HOST2 or PORT2 keeps the original; repeatable", func(v string) error {
		if _, err := parseConnectTo(v); err != nil {
			return err
		}
		f.connectTo = append(f.connectTo, v)
		return nil
	})
	o.boolean(&f.fail, "f", "fail", "on a status of 400 or more, print no body and exit with 22")
	o.boolean(&f.failWithBody, "", "fail-with-body", "on a status of 400 or more, print the body and exit with 22")
	o.str(&f.output, "o", "output", "FILE", "write the body to FILE instead of stdout; - means stdout. A regular file is\n"+
		"replaced only once complete and keeps its mode; a device or FIFO is written directly.\n"+
		"With --fail or --fail-with-body, an error response leaves FILE as it was, and with\n"+
		"--fail-with-body its body goes to stderr")
	o.fn("", "allow-host", "HOST", "contact only this host (api.example.com, *.example.com, **.example.com or an\n"+
		"IP), redirect hops included; repeat it to allow several", func(v string) error {
		f.allowHosts = append(f.allowHosts, v)
		return nil
	})
	o.boolean(&f.blockPrivate, "", "block-private", "refuse to connect to loopback, private, link-local (cloud metadata) and other\n"+
		"non-public addresses, judged on the address dialled after DNS")
	o.str(&f.signKey, "", "sign-key", "FILE", "sign the request (RFC 9421, as FAPI 2.0 asks) with the private key in FILE (PEM, readable by you only:\n"+
		"Ed25519, ECDSA P-256 or P-384, or RSA), for the URL's host and port only; needs --sign-keyid")
	o.str(&f.signKeyID, "", "sign-keyid", "ID", "the keyid the server knows --sign-key by")
	o.str(&f.verifyKey, "", "verify-key", "FILE", "refuse a response not signed by the public key (or certificate) in FILE (PEM),\n"+
		"and a body that does not match its Content-Digest; needs --sign-key")
	o.boolean(&f.verbose, "v", "verbose", "log the client's warnings and debug events to stderr (never a token)")
	return o
}

func runGet(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	// The client may log from its own goroutines (-v) while this one
	// writes errors or the progress bar.
	stderr = &lockedWriter{w: stderr}
	var f getFlags
	o := getOptions(&f, stdout, stderr)
	positional, code, ok := o.parse(args)
	if !ok {
		return code
	}
	if code, refused := f.refused.check(o); refused {
		return code
	}
	switch len(positional) {
	case 0:
		fmt.Fprintf(stderr, "securehttp get: missing the URL\nusage: securehttp %s\n", getUsage)
		return exitUsage
	case 1:
	default:
		return o.refuse(positional[1], "get takes one URL; quote a URL holding spaces or &, and put flags before or after it")
	}
	rep := &reporter{w: stderr, silent: f.silent, showError: f.showError}
	fail := rep.fail
	if f.fail && f.failWithBody {
		return fail(exitUsage, "--fail and --fail-with-body contradict each other: choose one")
	}
	stdinTaken := slices.ContainsFunc(f.data, func(d dataArg) bool { return d.value == "@-" })
	if err := f.token.check(f.tokenFile, f.cert != "", stdinTaken); err != nil {
		return fail(exitUsage, "%v", err)
	}
	u, err := parseAbsoluteURL(positional[0])
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	roots, err := loadRoots(f.cacert)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	var timeout time.Duration
	if f.maxTime != "" {
		secs, err := strconv.ParseFloat(f.maxTime, 64)
		if err != nil || secs <= 0 || secs > 1e9 {
			return fail(exitUsage, "--max-time %q: want a positive number of seconds, such as 30 or 2.5", f.maxTime)
		}
		timeout = time.Duration(secs * float64(time.Second))
	}
	// --max-time bounds the whole transfer, the token's request included,
	// and names itself as the cause when it runs out.
	ctx, cancel := withMaxTime(ctx, timeout)
	defer cancel()
	body, err := readData(f.data, stdin)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	method := f.method
	if method == "" {
		method = http.MethodGet
		if body != nil {
			method = http.MethodPost
		}
	}
	var bodyReader io.Reader
	if body != nil {
		bodyReader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bodyReader)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if err := applyHeaders(req, f.headers); err != nil {
		return fail(exitUsage, "%v", err)
	}

	cfg := securehttp.Config{RootCAs: roots, AllowHosts: f.allowHosts, BlockPrivateNetworks: f.blockPrivate}
	if len(f.pins) > 0 {
		cfg.Pins = []securehttp.PinSet{{Host: u.Hostname(), Pins: f.pins}}
	}
	cfg.Logger = clientLogger(f.verbose, f.silent, stderr)
	if f.key != "" && f.cert == "" {
		return fail(exitUsage, "--key needs --cert")
	}
	if f.cert != "" {
		keyFile := f.key
		if keyFile == "" {
			keyFile = f.cert // as curl: the key may follow the certificate in one file
		}
		cert, err := securehttp.LoadClientCert(f.cert, keyFile)
		if err != nil {
			return fail(exitError, "--cert: %v", err) // matches securehttp.ErrClientCert
		}
		defer cert.Close()
		cfg.GetClientCertificate = cert.GetClientCertificate
	}
	if len(f.connectTo) > 0 {
		var rules []connectRule
		for _, v := range f.connectTo {
			r, _ := parseConnectTo(v) // checked when the flag was parsed
			rules = append(rules, r)
		}
		cfg.DialContext = connectToDialer(rules)
	}
	cfg.Bearer, err = f.token.bearer(ctx, u, f.tokenFile, stdin)
	if ue, ok := errors.AsType[*usageError](err); ok {
		return fail(exitUsage, "%v", ue)
	} else if err != nil {
		return fail(exitError, "%v", err)
	}
	if cfg.Signatures, err = signatures(&f, u); err != nil {
		return fail(exitUsage, "%v", err)
	}
	client, err := securehttp.NewClient(cfg)
	if msg, ok := f.token.explain(err); ok {
		return fail(exitUsage, "%s", msg)
	} else if err != nil {
		return fail(exitUsage, "%v", err) // a *ConfigError: a bad --pin, say
	}
	defer client.CloseIdleConnections()
	if f.location {
		client.CheckRedirect = keepCredentials(originOf(u))
	} else {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}

	// The destination is opened before the request, so that a missing
	// directory costs no request, and a failure leaves nothing behind.
	out, err := openOutput(f.output, stdout)
	if err != nil {
		return fail(exitError, "-o: %v", err)
	}
	defer out.abort()

	// -w reports on the transfer whatever its outcome, as curl does.
	st := transferStats{url: u, size: -1}
	if f.writeOut != nil {
		start := time.Now()
		defer func() {
			st.elapsed, st.exit = time.Since(start), code
			st.size = max(st.size, 0)
			io.WriteString(stdout, f.writeOut.render(st))
		}()
	}

	resp, err := client.Do(req)
	if err != nil {
		code, msg := requestFailure(ctx, err, f.maxTime, -1)
		return fail(code, "%s", msg)
	}
	defer resp.Body.Close()
	st.resp, st.size = resp, 0

	// As with curl, a status of 400 or more is an answer like any other,
	// unless --fail or --fail-with-body asks to fail on it.
	failed := resp.StatusCode >= 400 && (f.fail || f.failWithBody)
	dst := io.Writer(out)
	if failed {
		// An error body never replaces a file: with -o it goes to stderr.
		out.abort()
		dst = stdout
		if out.file {
			dst = stderr
		}
		if f.fail {
			dst = io.Discard
		}
	}
	if f.include && !(failed && f.fail) {
		writeHead(dst, resp)
	}
	// stdout gets the body byte for byte, as with curl; an error body on
	// stderr, the terminal that stdout is not with -o, is escaped.
	var escaped *escaper
	if failed && out.file && !f.fail {
		escaped = &escaper{w: dst, lines: true}
		dst = escaped
	}
	var progress io.Writer
	if out.file && !failed && !f.silent && isTerminal(stderr) {
		progress = stderr
	}
	err = copyBody(dst, &countingReader{r: resp.Body, n: &st.size}, resp.ContentLength, progress)
	if escaped != nil {
		escaped.flush()
	}
	if err != nil {
		code, msg := requestFailure(ctx, err, f.maxTime, st.size)
		return fail(code, "%s", msg)
	}
	if failed {
		return fail(exitHTTP, "%s: HTTP %s", redactURL(resp.Request.URL), resp.Status)
	}
	if err := out.commit(); err != nil {
		return fail(exitError, "-o: %v", err)
	}
	return exitOK
}

// countingReader counts the bytes read through it, for -w and for the
// message of a transfer cut short.
type countingReader struct {
	r io.Reader
	n *int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// maxRedirects is net/http's own limit, kept when -L replaces its
// CheckRedirect.
const maxRedirects = 10

// keepCredentials is -L's CheckRedirect. As curl does, the credentials
// given for the URL (an Authorization or Cookie header given with -H) go to
// its scheme, host and port only: net/http alone forwards them to the same
// host on another port, which may be another service, and to its
// subdomains. As curl does too, a hop carries no Referer but one given
// with -H: the previous URL tells the next server nothing it needs.
func keepCredentials(origin string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		if err := asciiHost(req.URL); err != nil {
			return err
		}
		if len(via[0].Header["Referer"]) == 0 {
			req.Header.Del("Referer")
		}
		if originOf(req.URL) != origin {
			for _, h := range []string{"Authorization", "Cookie", "Cookie2", "Proxy-Authorization"} {
				req.Header.Del(h)
			}
		}
		return nil
	}
}

// originOf is u's scheme, host and port, the port made explicit, in one
// spelling: a redirect hop is judged the same origin only if it names the
// same one.
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	return scheme + "://" + net.JoinHostPort(host, port)
}

// readData builds the request body from -d and --data-binary values, as
// curl does: values joined by "&", "@FILE" read from FILE ("@-" from stdin),
// with newlines removed for -d. It returns nil when there is no data.
func readData(args []dataArg, stdin io.Reader) ([]byte, error) {
	if len(args) == 0 {
		return nil, nil
	}
	var body []byte
	for i, a := range args {
		part := []byte(a.value)
		if name, ok := strings.CutPrefix(a.value, "@"); ok {
			var err error
			if name == "-" {
				part, err = io.ReadAll(stdin)
			} else {
				part, err = os.ReadFile(name)
			}
			if err != nil {
				return nil, fmt.Errorf("reading the request body: %w", err)
			}
			if !a.binary {
				part = bytes.ReplaceAll(bytes.ReplaceAll(part, []byte("\r"), nil), []byte("\n"), nil)
			}
		}
		if i > 0 {
			body = append(body, '&')
		}
		body = append(body, part...)
	}
	return body, nil
}

// applyHeaders applies -H values: "Name: value" adds a header, "Name:"
// removes one, "Host: h" sets the request's Host.
func applyHeaders(req *http.Request, headers []string) error {
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
			return fmt.Errorf("-H %q: want 'Name: value'", h)
		}
		switch {
		case value == "":
			req.Header.Del(name)
		case strings.EqualFold(name, "Host"):
			req.Host = value
		default:
			req.Header.Add(name, value)
		}
	}
	return nil
}

// writeHead writes the status line and headers, as curl -i does, their
// control characters escaped: net/http accepts a reason phrase holding an
// escape sequence, and C1 controls in header values.
func writeHead(w io.Writer, resp *http.Response) {
	fmt.Fprintf(w, "%s\r\n", escapeControls(statusLine(resp)))
	for _, k := range slices.Sorted(maps.Keys(resp.Header)) {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(w, "%s: %s\r\n", escapeControls(k), escapeControls(v))
		}
	}
	io.WriteString(w, "\r\n")
}

// statusLine is the status line as curl prints it: "HTTP/2 200", since
// HTTP/2 and 3 carry no reason phrase (net/http makes one up), and
// "HTTP/1.1 200 OK" with the server's own.
func statusLine(resp *http.Response) string {
	if resp.ProtoMajor >= 2 {
		return fmt.Sprintf("HTTP/%d %d", resp.ProtoMajor, resp.StatusCode)
	}
	return resp.Proto + " " + resp.Status
}

// copyBody copies body to dst, with a progress bar on progress when set.
func copyBody(dst io.Writer, body io.Reader, size int64, progress io.Writer) error {
	var bar *progressBar
	if progress != nil {
		bar = newProgressBar(progress, size, time.Now)
		dst = io.MultiWriter(dst, bar)
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
	return nil
}

// connectRule is one --connect-to value; an empty field matches, or keeps,
// anything.
type connectRule struct {
	fromHost, fromPort, toHost, toPort string
}

// parseConnectTo reads HOST1:PORT1:HOST2:PORT2, where an IPv6 address is
// written in brackets.
func parseConnectTo(v string) (connectRule, error) {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ':':
			if depth == 0 {
				parts = append(parts, v[start:i])
				start = i + 1
			}
		}
	}
	parts = append(parts, v[start:])
	if len(parts) != 4 {
		return connectRule{}, fmt.Errorf("%q: want HOST1:PORT1:HOST2:PORT2, such as api.example.com:443:127.0.0.1:8443", v)
	}
	for _, i := range []int{1, 3} {
		if p := parts[i]; p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return connectRule{}, fmt.Errorf("%q: port %q is not a number from 1 to 65535", v, p)
			}
		}
	}
	unbracket := func(h string) string { return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]") }
	return connectRule{unbracket(parts[0]), parts[1], unbracket(parts[2]), parts[3]}, nil
}

// connectToDialer dials the address the first matching rule names. The
// URL is untouched, so TLS still sends and verifies the URL's host name,
// and pins and tokens follow it.
func connectToDialer(rules []connectRule) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			if (r.fromHost == "" || strings.EqualFold(r.fromHost, host)) && (r.fromPort == "" || r.fromPort == port) {
				if r.toHost != "" {
					host = r.toHost
				}
				if r.toPort != "" {
					port = r.toPort
				}
				addr = net.JoinHostPort(host, port)
				break
			}
		}
		return dialer.DialContext(ctx, network, addr)
	}
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
