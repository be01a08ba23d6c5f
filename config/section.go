package config

import "strings"

// SplitSection splits a config name such as "app.ini:zerg" into its file
// and section at the LAST ':'. For a name with a scheme (emperor://x,
// http://host/x, exec://x) only a ':' after the last '/' counts, so a port
// or the scheme itself is never taken for a section. A name without a
// section gives section "". An empty file part (":zerg") is returned as "".
func SplitSection(name string) (file, section string) {
	start := 0
	if hasScheme(name) {
		start = strings.LastIndexByte(name, '/') + 1
	}
	i := strings.LastIndexByte(name[start:], ':')
	if i < 0 {
		return name, ""
	}
	return name[:start+i], name[start+i+1:]
}

// hasScheme reports whether name starts with "scheme://", where scheme is a
// letter followed by letters, digits, '+', '-' or '.'.
func hasScheme(name string) bool {
	i := strings.Index(name, "://")
	if i <= 0 {
		return false
	}
	for j := 0; j < i; j++ {
		c := name[j]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// scheme returns the scheme of name ("emperor" for "emperor://x"), or "".
func scheme(name string) string {
	if !hasScheme(name) {
		return ""
	}
	return name[:strings.Index(name, "://")]
}
