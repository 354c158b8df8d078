package main

// get -w: curl's --write-out, for the variables scripts use most.

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// writeOutVars are the -w variables get knows, as curl names them.
func writeOutVars() []string {
	return []string{"content_type", "exitcode", "http_code", "http_version", "num_redirects",
		"response_code", "size_download", "time_total", "url_effective"}
}

// writeOut is a parsed -w format: text, and a variable's name at each odd
// index.
type writeOut []string

// parseWriteOut reads a -w format: %{name} for a variable, %% for %, and
// \n, \r, \t and \\ as escapes, as curl reads them. An unknown variable is
// an error rather than curl's warning: the format is checked before the
// request.
func parseWriteOut(format string) (writeOut, error) {
	if strings.HasPrefix(format, "@") {
		return nil, errors.New("-w @FILE is not supported: give the format itself")
	}
	w := writeOut{""}
	text := func(s string) { w[len(w)-1] += s }
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch {
		case c == '%' && strings.HasPrefix(format[i:], "%%"):
			text("%")
			i++
		case c == '%' && strings.HasPrefix(format[i:], "%{"):
			end := strings.IndexByte(format[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("-w %q: %%{ without its }", format)
			}
			name := format[i+2 : i+end]
			if !slices.Contains(writeOutVars(), name) {
				return nil, fmt.Errorf("-w: unknown variable %%{%s}: know %s", name, strings.Join(writeOutVars(), ", "))
			}
			w = append(w, name, "")
			i += end
		case c == '\\' && i+1 < len(format):
			switch format[i+1] {
			case 'n':
				text("\n")
			case 'r':
				text("\r")
			case 't':
				text("\t")
			case '\\':
				text(`\`)
			default:
				text(format[i : i+2])
			}
			i++
		default:
			text(format[i : i+1])
		}
	}
	return w, nil
}

// transferStats is what -w reports of one transfer.
type transferStats struct {
	url     *url.URL       // the URL asked for
	resp    *http.Response // the last response, nil when none came
	size    int64          // bytes of the body read
	elapsed time.Duration
	exit    int
}

// render fills in the variables. What comes from the server is escaped,
// and a URL is shown without userinfo, query or fragment, which may hold
// secrets.
func (w writeOut) render(st transferStats) string {
	var b strings.Builder
	for i, part := range w {
		if i%2 == 0 {
			b.WriteString(part)
			continue
		}
		b.WriteString(st.value(part))
	}
	return b.String()
}

func (st transferStats) value(name string) string {
	resp := st.resp
	switch name {
	case "http_code", "response_code":
		if resp == nil {
			return "000"
		}
		return fmt.Sprintf("%03d", resp.StatusCode)
	case "http_version":
		switch {
		case resp == nil:
			return "0"
		case resp.ProtoMajor >= 2:
			return strconv.Itoa(resp.ProtoMajor)
		}
		return fmt.Sprintf("%d.%d", resp.ProtoMajor, resp.ProtoMinor)
	case "size_download":
		return strconv.FormatInt(st.size, 10)
	case "time_total":
		return strconv.FormatFloat(st.elapsed.Seconds(), 'f', 6, 64)
	case "content_type":
		if resp == nil {
			return ""
		}
		return escapeControls(resp.Header.Get("Content-Type"))
	case "num_redirects":
		n := 0
		if resp != nil {
			for r := resp.Request; r != nil && r.Response != nil; r = r.Response.Request {
				n++
			}
		}
		return strconv.Itoa(n)
	case "url_effective":
		switch {
		case resp != nil && resp.Request != nil:
			return escapeControls(redactURL(resp.Request.URL))
		case st.url != nil:
			return escapeControls(redactURL(st.url))
		}
		return ""
	case "exitcode":
		return strconv.Itoa(st.exit)
	}
	return ""
}
