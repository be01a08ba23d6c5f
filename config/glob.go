package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// glob expands pattern as glob(3) does with GLOB_MARK | GLOB_NOCHECK, the
// flags uWSGI's for-glob uses: matches sorted in byte order (the C
// locale's), each directory with a trailing '/', names starting with '.'
// (. and .. too) only matched by a pattern that starts with '.', no brace
// expansion, and the pattern itself when nothing matches (a malformed one,
// such as "[", matches nothing). It refuses more than limit matches, or
// reading more than ten times limit directory entries. A directory is opened without blocking
// and without following a FIFO or device in its place.
func glob(pattern string, limit int) ([]string, error) {
	g := &globber{limit: limit, budget: 10 * limit}
	trailing := strings.HasSuffix(pattern, "/")
	p := strings.TrimRight(pattern, "/")
	prefix := ""
	if strings.HasPrefix(pattern, "/") {
		prefix = "/"
	}
	var comps []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			comps = append(comps, c)
		}
	}
	if len(comps) == 0 {
		return []string{pattern}, nil // "" or "/"
	}
	if err := g.walk(prefix, comps, trailing); err != nil {
		return nil, err
	}
	if len(g.out) == 0 {
		return []string{pattern}, nil
	}
	slices.Sort(g.out) // as glob(3) sorts: whole paths, marks included
	return g.out, nil
}

// globber holds the state of one glob.
type globber struct {
	limit  int
	budget int // directory entries still allowed
	out    []string
}

// walk matches comps below prefix (a path as written, "" for the current
// directory).
func (g *globber) walk(prefix string, comps []string, dirsOnly bool) error {
	if len(comps) == 0 {
		fi, err := os.Stat(prefixPath(prefix))
		if err != nil {
			if _, lerr := os.Lstat(prefixPath(prefix)); lerr != nil || dirsOnly {
				return nil // absent, or a dangling link where a directory is asked for
			}
			return g.add(prefix)
		}
		switch {
		case fi.IsDir():
			return g.add(prefix + "/")
		case dirsOnly:
			return nil
		}
		return g.add(prefix)
	}
	c := comps[0]
	if !hasGlobMeta(c) {
		return g.walk(join(prefix, unescapeGlob(c)), comps[1:], dirsOnly)
	}
	names, err := g.readDir(prefixPath(prefix))
	if err != nil {
		return err
	}
	if c[0] == '.' && names != nil {
		names = append(names, ".", "..") // readdir(3) lists them too
	}
	match := strings.ReplaceAll(c, "[!", "[^") // glob(3)'s negated class, in Go's spelling
	for _, name := range names {
		if name[0] == '.' && c[0] != '.' {
			continue
		}
		if ok, _ := filepath.Match(match, name); !ok {
			continue
		}
		if err := g.walk(join(prefix, name), comps[1:], dirsOnly); err != nil {
			return err
		}
	}
	return nil
}

// add appends one match.
func (g *globber) add(path string) error {
	if len(g.out) >= g.limit {
		return fmt.Errorf("more than %d matches", g.limit)
	}
	g.out = append(g.out, path)
	return nil
}

// readDir lists the names in dir (not empty when it could be read, though
// maybe empty), sorted; a path that is not a directory lists nil.
func (g *globber) readDir(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil // glob(3) without GLOB_ERR skips what it cannot read
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names := []string{}
	for {
		batch, err := f.Readdirnames(256)
		names = append(names, batch...)
		if len(names) > g.budget {
			return nil, fmt.Errorf("more than %d directory entries to read", 10*g.limit)
		}
		if err != nil || len(batch) == 0 {
			break
		}
	}
	g.budget -= len(names)
	slices.Sort(names)
	return names, nil
}

// prefixPath is the path to open for prefix.
func prefixPath(prefix string) string {
	if prefix == "" {
		return "."
	}
	return prefix
}

// join appends name to a prefix as written.
func join(prefix, name string) string {
	switch prefix {
	case "":
		return name
	case "/":
		return "/" + name
	}
	return prefix + "/" + name
}

// hasGlobMeta reports whether c holds a wildcard.
func hasGlobMeta(c string) bool { return strings.ContainsAny(c, "*?[") }

// unescapeGlob drops the backslashes of a component without wildcards.
func unescapeGlob(c string) string {
	if !strings.Contains(c, `\`) {
		return c
	}
	var b strings.Builder
	for i := 0; i < len(c); i++ {
		if c[i] == '\\' && i+1 < len(c) {
			i++
		}
		b.WriteByte(c[i])
	}
	return b.String()
}
