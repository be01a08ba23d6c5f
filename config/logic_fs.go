package config

import (
	"fmt"
	"os"
	"regexp"
)

// isRegular reports whether path is a regular file, following symlinks
// (uWSGI's if-file test).
func isRegular(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// isDir reports whether path is a directory, following symlinks (uWSGI's
// if-dir test).
func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// compileRegexp compiles the pattern of if-hostname-match. uWSGI uses PCRE;
// this is Go's RE2 syntax, which covers the patterns hostnames need.
func compileRegexp(pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("bad regular expression %q: %w", pattern, err)
	}
	return re, nil
}
