// Command pslgen writes the table of names below which a public suffix
// lies, from the public suffix list of the golang.org/x/net version that
// go.mod requires. Run it through go generate in the module's root.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/securehttp/securehttp/internal/pslgen"
)

func main() {
	out := flag.String("o", "", "file to write")
	pkg := flag.String("pkg", "securehttp", "package of the file")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: pslgen -o FILE")
		os.Exit(2)
	}
	src, err := pslgen.Generate("", *pkg)
	if err == nil {
		err = os.WriteFile(*out, src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pslgen:", err)
		os.Exit(1)
	}
}
