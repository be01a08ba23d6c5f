package config

import (
	"strconv"
	"strings"
)

// Format is a config file syntax.
type Format uint8

// The config syntaxes uWSGI reads.
const (
	INI Format = iota + 1
	XML
	YAML
	JSON
	// Detect is the format of --config FILE: FILE's suffix when it names
	// one, otherwise what its text looks like (see detectFormat).
	Detect
)

// String returns "ini", "xml", "yaml" or "json".
func (f Format) String() string {
	switch f {
	case INI:
		return "ini"
	case XML:
		return "xml"
	case YAML:
		return "yaml"
	case JSON:
		return "json"
	case Detect:
		return "detect"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// valid reports whether f is one of the named formats.
func (f Format) valid() bool { return f >= INI && f <= JSON }

// FormatOf picks the format of a config name by the suffix of its file part
// (any ":section" is stripped first): .ini, .xml, .yml or .yaml, .js or
// .json. Matching is case-sensitive, as in uWSGI. ok is false for any other
// suffix.
func FormatOf(name string) (f Format, ok bool) {
	file, _ := SplitSection(name)
	switch {
	case strings.HasSuffix(file, ".ini"):
		return INI, true
	case strings.HasSuffix(file, ".xml"):
		return XML, true
	case strings.HasSuffix(file, ".yml"), strings.HasSuffix(file, ".yaml"):
		return YAML, true
	case strings.HasSuffix(file, ".js"), strings.HasSuffix(file, ".json"):
		return JSON, true
	}
	return 0, false
}

// FormatFlag maps an option name that loads a config file to its format:
// "ini", "xml" or "xmlconfig", "yaml" or "yml", "json" or "js", and
// "config" (Detect), with or without a leading "--". ok is false for
// anything else (including "include", whose format comes from the file
// name).
func FormatFlag(flag string) (f Format, ok bool) {
	switch strings.TrimPrefix(flag, "--") {
	case "ini":
		return INI, true
	case "xml", "xmlconfig":
		return XML, true
	case "yaml", "yml":
		return YAML, true
	case "json", "js":
		return JSON, true
	case "config":
		return Detect, true
	}
	return 0, false
}
