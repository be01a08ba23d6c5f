package files

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/emperor-dev/emperor/monitor"
)

// NewGlob builds the glob://PATTERN monitor: every vassal config the shell
// pattern matches (filepath.Match syntax in each path element, and as in
// glob(3) a leading dot must be matched explicitly). The pattern is cleaned
// (filepath.Clean); a relative pattern is resolved against the working
// directory at the time of this call, once, and the working directory is
// never changed afterwards.
//
// Vassal names are the matched paths spelled as the pattern is: relative for
// a relative pattern, as filepath.Glob would return them. Event.Path is
// absolute. A pattern that matches nothing is fine: new matches, including
// ones in directories created later (glob://apps/app*/app*.ini), are seen as
// they appear.
func NewGlob(arg string, opts monitor.Options) (monitor.Monitor, error) {
	uri := "glob://" + arg
	if arg == "" {
		return nil, &openError{uri: uri, msg: "empty pattern"}
	}
	cwd := ""
	if !filepath.IsAbs(arg) {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("%s: working directory: %w", uri, err)
		}
		cwd = wd
	}
	l, err := parsePattern(arg, cwd)
	if err != nil {
		return nil, &openError{uri: uri, msg: err.Error(), err: err}
	}
	return newFileMonitor(uri, l, opts), nil
}

// hasMeta reports whether a path element contains glob syntax.
func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// parsePattern splits a pattern into its literal base directory (every
// leading element without glob syntax, except the last element) and the
// elements matched level by level below it. cwd anchors a relative pattern.
func parsePattern(pattern, cwd string) (layout, error) {
	p := filepath.Clean(pattern)
	abs := filepath.IsAbs(p)
	elems := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if p == "/" || p == "." || elems[len(elems)-1] == ".." {
		return layout{}, fmt.Errorf("pattern can only match directories")
	}
	for _, e := range elems {
		if _, err := filepath.Match(e, ""); err != nil {
			return layout{}, fmt.Errorf("bad pattern element %q: %w", e, err)
		}
	}
	n := 0
	for n < len(elems)-1 && !hasMeta(elems[n]) {
		n++
	}
	base := strings.Join(elems[:n], "/")
	var l layout
	if abs {
		l.baseName = "/" + base
		l.baseAbs = l.baseName
	} else {
		l.baseName = base
		l.baseAbs = filepath.Join(cwd, base)
	}
	l.comps = elems[n:]
	return l, nil
}
