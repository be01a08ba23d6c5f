package config

import (
	"slices"
	"strings"
)

// ArgKind says whether a command-line option takes a value, as the has_arg
// of uWSGI's getopt_long table.
type ArgKind uint8

const (
	// ArgGuess: not known. The next argument is the option's value unless
	// it starts with "--" or is a cluster of short options.
	ArgGuess ArgKind = iota
	// NoArg: a flag, "--name" (value ""). "--name=VALUE" is accepted too
	// (uWSGI's getopt refuses it).
	NoArg
	// RequiredArg: "--name VALUE" or "--name=VALUE"; the next argument is
	// the value whatever it looks like.
	RequiredArg
	// OptionalArg: "--name=VALUE", or a bare "--name" with value "".
	OptionalArg
)

// ShortOption is one of uWSGI's one-letter options.
type ShortOption struct {
	Letter byte
	Name   string // the long option it stands for
	Kind   ArgKind
}

// shortOptions is uWSGI 2.0's table of short options (core options; the
// python plugin's -w, -H, -J and -O exist only with that plugin loaded and
// are not here). A letter shared by several long options stands for the
// first of them in uWSGI's table: -s socket, -p processes, -x xmlconfig,
// -C chmod-socket, -h help, -y yaml, -j json.
var shortOptions = map[byte]ShortOption{
	's': {'s', "socket", RequiredArg},
	'p': {'p', "processes", RequiredArg},
	't': {'t', "harakiri", RequiredArg},
	'x': {'x', "xmlconfig", RequiredArg},
	'S': {'S', "set", RequiredArg},
	'd': {'d', "daemonize", RequiredArg},
	'l': {'l', "listen", RequiredArg},
	'v': {'v', "max-vars", RequiredArg},
	'b': {'b', "buffer-size", RequiredArg},
	'm': {'m', "memory-report", NoArg},
	'c': {'c', "cgi-mode", NoArg},
	'a': {'a', "abstract-socket", NoArg},
	'C': {'C', "chmod-socket", OptionalArg},
	'T': {'T', "enable-threads", NoArg},
	'i': {'i', "single-interpreter", NoArg},
	'M': {'M', "master", NoArg},
	'h': {'h', "help", NoArg},
	'r': {'r', "reaper", NoArg},
	'R': {'R', "max-requests", RequiredArg},
	'z': {'z', "socket-timeout", RequiredArg},
	'A': {'A', "sharedarea", RequiredArg},
	'Q': {'Q', "spooler", RequiredArg},
	'L': {'L', "disable-logging", NoArg},
	'y': {'y', "yaml", RequiredArg},
	'j': {'j', "json", RequiredArg},
}

// ShortOptions returns uWSGI's short options that Args reads, by letter.
func ShortOptions() []ShortOption {
	out := make([]ShortOption, 0, len(shortOptions))
	for _, s := range shortOptions {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b ShortOption) int { return strings.Compare(string(a.Letter), string(b.Letter)) })
	return out
}

// shortLetters lists the letters, for messages.
func shortLetters() string {
	var b strings.Builder
	for _, s := range ShortOptions() {
		b.WriteByte(s.Letter)
	}
	return b.String()
}

// knownKinds are the long options whose kind Args knows without
// Loader.ArgKind: the long names (and aliases) of the short options, the
// keys that load files, and the config logic keys, as uWSGI declares them.
var knownKinds = func() map[string]ArgKind {
	m := map[string]ArgKind{
		"uwsgi-socket": RequiredArg, "workers": RequiredArg, "xml": RequiredArg, "chmod": OptionalArg,
		"usage": NoArg, "yml": RequiredArg, "js": RequiredArg,
		"ini": RequiredArg, "include": RequiredArg, "inherit": RequiredArg, "config": RequiredArg,
		"set-placeholder": RequiredArg, "set-ph": RequiredArg,
		"endif": OptionalArg, "end-if": OptionalArg, "endfor": OptionalArg, "end-for": OptionalArg,
		"if-reload": NoArg, "if-not-reload": NoArg,
	}
	for _, s := range shortOptions {
		m[s.Name] = s.Kind
	}
	for k := range logicKinds {
		if _, ok := m[k]; !ok {
			m[k] = RequiredArg
		}
	}
	return m
}()
