package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// globMark expands pattern as glob(3) with GLOB_MARK | GLOB_NOCHECK does
// for uWSGI's for-glob: the sorted matches, each directory with a trailing
// '/', or the pattern itself when nothing matches. As in glob(3), a
// wildcard does not match a leading '.', and "[!...]" negates a class.
// At most limit names are returned.
func globMark(pattern string, limit int) ([]string, error) {
	goPattern := strings.ReplaceAll(pattern, "[!", "[^")
	matches, err := filepath.Glob(goPattern)
	if err != nil {
		return nil, fmt.Errorf("bad glob pattern %q: %w", pattern, err)
	}
	out := make([]string, 0, len(matches))
	for _, m := range matches {
		if hiddenMatch(goPattern, m) {
			continue
		}
		if isDir(m) {
			m += "/"
		}
		out = append(out, m)
		if len(out) >= limit {
			break
		}
	}
	if len(out) == 0 {
		return []string{pattern}, nil
	}
	return out, nil
}

// hiddenMatch reports whether match has a component starting with '.' that
// the pattern's component only matched through a wildcard.
func hiddenMatch(pattern, match string) bool {
	pp := strings.Split(filepath.Clean(pattern), "/")
	mp := strings.Split(filepath.Clean(match), "/")
	if len(pp) != len(mp) {
		return false
	}
	for i := range mp {
		if strings.HasPrefix(mp[i], ".") && !strings.HasPrefix(pp[i], ".") {
			return true
		}
	}
	return false
}
