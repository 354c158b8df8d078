package main

// uploadBytes is the size of BenchmarkUpload's body.
const uploadBytes = 128 * mib

const uploadIntro = "PUT over HTTP/1.1 of a generated 128 MiB body, never held in memory by the benchmark. *allocated/op* is " +
	"what the client process allocated for one upload. With an *io.Reader without GetBody*, the body cannot be sent " +
	"twice: securehttp, bare net/http and x/oauth2 stream it (securehttp will not retry such a request), while " +
	"go-retryablehttp and resty read it whole into memory first, so that they can replay it. That row compares " +
	"streaming with buffering, not one client's overhead with another's. The like-for-like rows are those with a " +
	"*replayable body*: every client gets a body it can make again for a retry (GetBody; go-retryablehttp's " +
	"ReaderFunc), and streams it."

// uploadWhyNot says why a client has no replayable-body case, or "".
func uploadWhyNot(client string) string {
	if client == "resty" {
		return "resty v2 reads any io.Reader body into memory to give the request a GetBody, " +
			"whatever its settings: it has no way to stream a body"
	}
	return ""
}

func uploadCaseLabel(cas string) string {
	switch cas {
	case "body=reader":
		return "io.Reader without GetBody"
	case "body=replayable":
		return "replayable body (like for like)"
	}
	return cas
}

// bodyHandling says, from what the client allocated, whether it streamed
// the body or held all of it in memory.
func bodyHandling(d *results, cas, cl string) string {
	b, ok := d.median(benchUpload, cas, cl, "B/op")
	switch {
	case !ok:
		return missing
	case b >= uploadBytes:
		return "**reads it all into memory**"
	}
	return "streams it"
}

func uploadTable(p func(string, ...any), d *results) {
	p("| body | client | sends the body | time/op | MB/s | allocated/op | allocs/op |\n")
	p("| --- | --- | --- | ---: | ---: | ---: | ---: |\n")
	for _, cas := range d.cases[benchUpload] {
		for _, cl := range d.clients[benchUpload] {
			if _, ok := d.median(benchUpload, cas, cl, "B/op"); !ok {
				why := uploadWhyNot(cl)
				if why == "" {
					why = "not measured"
				}
				p("| %s | %s | %s | | | | |\n", uploadCaseLabel(cas), clientLabel(cl), why)
				continue
			}
			alloc, _ := d.median(benchUpload, cas, cl, "B/op")
			p("| %s | %s | %s | %s | %s | %s | %s |\n", uploadCaseLabel(cas), clientLabel(cl), bodyHandling(d, cas, cl),
				dur(d, benchUpload, cas, cl, "ns/op"), num(d, benchUpload, cas, cl, "MB/s", "%.0f"),
				bytesLabel(alloc), num(d, benchUpload, cas, cl, "allocs/op", "%.0f"))
		}
	}
}

// uploadAllocs is what one upload allocated, for the README's comparison
// table.
func uploadAllocs(d *results, cas, cl string) string {
	b, ok := d.median(benchUpload, cas, cl, "B/op")
	switch {
	case !ok && uploadWhyNot(cl) != "":
		return "cannot stream"
	case !ok:
		return missing
	case b >= uploadBytes:
		return bytesLabel(b) + " (buffered)"
	}
	return bytesLabel(b)
}
