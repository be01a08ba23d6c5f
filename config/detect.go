package config

import (
	"bytes"
	"regexp"
)

// --config FILE is how an Emperor starts a vassal whose config has an
// emperor-extra-extension (app.conf). uWSGI 2.0 hands FILE to the
// configurator a plugin registered for its suffix (.lua, .js with v8) and
// exits with "unable to load configuration" when none did, so a uWSGI
// vassal only reads such a file through a plugin. Ours reads it itself:
// by its suffix when that names a format, otherwise by what its text looks
// like (detectFormat).

// yamlTop is a YAML mapping key at the start of a line: "uwsgi:".
var yamlTop = regexp.MustCompile(`^[A-Za-z0-9_.-]+:(\s|$)`)

// detectFormat picks the format of a config read with --config: file's
// suffix when it is .ini, .xml, .yaml, .yml, .json or .js; otherwise by
// the first line of text that is neither blank nor a comment: '<' is XML,
// '{' JSON, "---" or "key:" (no '=') YAML, anything else ini.
func detectFormat(file string, text []byte) Format {
	if f, ok := FormatOf(file); ok {
		return f
	}
	for line := range bytes.Lines(text) {
		l := bytes.TrimSpace(line)
		if len(l) == 0 || l[0] == '#' || l[0] == ';' {
			continue
		}
		switch {
		case bytes.HasPrefix(l, []byte("---")):
			return YAML
		case l[0] == '<':
			return XML
		case l[0] == '{':
			return JSON
		case l[0] != '[' && bytes.IndexByte(l, '=') < 0 && yamlTop.Match(l):
			return YAML
		}
		return INI
	}
	return INI
}
