package monitor

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// A Factory builds a monitor from the part of its URI after "scheme://".
type Factory func(arg string, opts Options) (Monitor, error)

// registry maps schemes to factories. It is filled by init functions of the
// monitor subpackages and never changed afterwards.
var registry = map[string]Factory{}

// Register makes a scheme available to Open. It is meant to be called from
// an init function and panics on a duplicate, which is a programming error.
func Register(scheme string, f Factory) {
	if _, dup := registry[scheme]; dup {
		panic("monitor: scheme registered twice: " + scheme)
	}
	registry[scheme] = f
}

// Schemes lists the registered schemes, sorted.
func Schemes() []string {
	s := make([]string, 0, len(registry))
	for k := range registry {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

var schemeRE = regexp.MustCompile(`^([a-z][a-z0-9+.-]*)://`)

// Choose decides which monitor a --emperor VALUE selects, as uWSGI does
// (reference 3.1): a registered "scheme://" prefix selects that scheme;
// otherwise a value naming exactly one existing directory is a dir, a bad
// pattern is a dir too, and anything else is a glob (so a path that does not
// exist yet is a glob that matches nothing until it does). It returns the
// scheme and the argument after "scheme://".
//
// Unlike uWSGI, a value with an unknown "scheme://" prefix is an error rather
// than a glob that silently matches nothing.
func Choose(value string) (scheme, arg string, err error) {
	if m := schemeRE.FindStringSubmatch(value); m != nil {
		if _, ok := registry[m[1]]; !ok {
			return "", "", fmt.Errorf("emperor %q: unknown monitor scheme %q (known: %s)", value, m[1], strings.Join(Schemes(), ", "))
		}
		return m[1], value[len(m[0]):], nil
	}
	matches, err := filepath.Glob(value)
	if err != nil {
		return "dir", value, nil
	}
	if len(matches) == 1 {
		if fi, err := os.Stat(matches[0]); err == nil && fi.IsDir() {
			return "dir", matches[0], nil
		}
	}
	return "glob", value, nil
}

// Open builds the monitor for a --emperor VALUE (see Choose).
func Open(value string, opts Options) (Monitor, error) {
	scheme, arg, err := Choose(value)
	if err != nil {
		return nil, err
	}
	f, ok := registry[scheme]
	if !ok {
		return nil, fmt.Errorf("emperor %q: monitor scheme %q is not built in", value, scheme)
	}
	m, err := f(arg, opts)
	if err != nil {
		return nil, fmt.Errorf("emperor %q: %w", value, err)
	}
	return m, nil
}
