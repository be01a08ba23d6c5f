package config

import "bytes"

// parseINI collects the options of section from ini text, the way uWSGI
// reads ini files:
//
//   - lines are split on '\n' and stripped of spaces, tabs and '\r' at both
//     ends;
//   - "[name]" starts a section: its first and last characters are dropped
//     (the closing ']' is not checked);
//   - a line starting with ';' or '#' is a comment; there are no inline
//     comments, quoting or continuation lines;
//   - "key = value" is split at the first '=' and both sides are trimmed; a
//     line without '=' is a key with an empty value (a flag);
//   - every repeated key adds one option; options before the first section
//     header belong to no section.
//
// found reports whether the section header appeared at all.
func parseINI(c *collector, text []byte, section string) (found bool, err error) {
	current := ""
	inSection := false
	line := 0
	for len(text) > 0 {
		line++
		var raw []byte
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			raw, text = text[:i], text[i+1:]
		} else {
			raw, text = text, nil
		}
		l := bytes.Trim(raw, " \t\r")
		if len(l) == 0 || l[0] == ';' || l[0] == '#' {
			continue
		}
		if l[0] == '[' {
			if len(l) >= 2 {
				current = string(l[1 : len(l)-1])
			} else {
				current = ""
			}
			inSection = current == section
			if inSection {
				found = true
			}
			continue
		}
		if !inSection {
			continue
		}
		key, value := l, []byte(nil)
		if eq := bytes.IndexByte(l, '='); eq >= 0 {
			key, value = bytes.Trim(l[:eq], " \t\r"), bytes.Trim(l[eq+1:], " \t\r")
		}
		if err := c.add(string(key), string(value), line); err != nil {
			return found, err
		}
	}
	return found, nil
}
