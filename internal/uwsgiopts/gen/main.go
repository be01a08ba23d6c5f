// Command gen writes catalogue.go from the installed uwsgi: every option
// of its core and of uwsgiopts.Plugins, with its kind (see uwsgiopts.Probe).
//
//	go generate ./internal/uwsgiopts
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/emperor-dev/emperor/internal/uwsgiopts"
)

func main() {
	out := flag.String("o", "catalogue.go", "file to write")
	binary := flag.String("uwsgi", "/usr/bin/uwsgi", "the uwsgi binary to ask")
	flag.Parse()
	opts, version, err := uwsgiopts.Probe(context.Background(), *binary, uwsgiopts.Plugins)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	src, err := uwsgiopts.Render(opts, version)
	if err == nil {
		err = os.WriteFile(*out, src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	fmt.Printf("gen: %d options of uwsgi %s\n", len(opts), version)
}
