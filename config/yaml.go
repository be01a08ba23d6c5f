package config

import (
	"fmt"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// maxYAMLMerge bounds how deeply "<<" merge keys may nest.
const maxYAMLMerge = 8

// parseYAML collects the options of section from a yaml config: each
// top-level key is a section whose value is a mapping of options. A scalar
// value is the option's text (null is ""), a sequence of scalars gives one
// option per element, and "<<: *anchor" merges another mapping in place.
// Repeated keys are kept in order. found reports whether the section key
// appeared.
func parseYAML(c *collector, text []byte, section string) (found bool, err error) {
	var doc yaml.Node
	if err := unmarshalYAML(text, &doc); err != nil {
		return false, yamlError(c.file, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return false, nil
		}
		root = root.Content[0]
	}
	root = yamlDeref(root)
	switch {
	case root == nil || root.Kind == 0:
		return false, nil
	case root.Kind == yaml.ScalarNode && root.Tag == "!!null":
		return false, nil
	case root.Kind != yaml.MappingNode:
		return false, c.errf(root.Line, "", "yaml: the top level must be a mapping of sections")
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := yamlDeref(root.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode || k.Value != section {
			continue
		}
		found = true
		if err := yamlOptions(c, section, root.Content[i+1], 0); err != nil {
			return found, err
		}
	}
	return found, nil
}

// unmarshalYAML parses text into a node tree. The yaml library is third
// party code fed with user input; should it ever panic, that becomes an
// error here rather than a crash of the Emperor.
func unmarshalYAML(text []byte, doc *yaml.Node) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("yaml: parser failure: %v", p)
		}
	}()
	return yaml.Unmarshal(text, doc)
}

// yamlOptions adds the options of the mapping m (the value of a section).
func yamlOptions(c *collector, section string, m *yaml.Node, depth int) error {
	m = yamlDeref(m)
	if m == nil {
		return nil
	}
	switch m.Kind {
	case yaml.MappingNode:
	case yaml.ScalarNode:
		if m.Tag == "!!null" {
			return nil
		}
		return c.errf(m.Line, "", "yaml: section %q must be a mapping of options", section)
	default:
		return c.errf(m.Line, "", "yaml: section %q must be a mapping of options", section)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := yamlDeref(m.Content[i]), yamlDeref(m.Content[i+1])
		if k == nil || v == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			return c.errf(k.Line, "", "yaml: option names must be scalars")
		}
		if k.Tag == "!!merge" {
			if depth >= maxYAMLMerge {
				return c.errf(k.Line, k.Value, "yaml: merges nested too deeply")
			}
			if v.Kind == yaml.SequenceNode {
				for _, e := range v.Content {
					if err := yamlOptions(c, section, e, depth+1); err != nil {
						return err
					}
				}
				continue
			}
			if err := yamlOptions(c, section, v, depth+1); err != nil {
				return err
			}
			continue
		}
		switch v.Kind {
		case yaml.ScalarNode:
			if err := c.add(k.Value, yamlScalar(v), k.Line); err != nil {
				return err
			}
		case yaml.SequenceNode:
			for _, e := range v.Content {
				e = yamlDeref(e)
				if e == nil || e.Kind != yaml.ScalarNode {
					line := v.Line
					if e != nil {
						line = e.Line
					}
					return c.errf(line, k.Value, "yaml: list items must be scalars")
				}
				if err := c.add(k.Value, yamlScalar(e), e.Line); err != nil {
					return err
				}
			}
		default:
			return c.errf(v.Line, k.Value, "yaml: a mapping is not an option value")
		}
	}
	return nil
}

// yamlScalar is the option text of a scalar node: its text, or "" for null.
func yamlScalar(n *yaml.Node) string {
	if n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

// yamlDeref follows aliases to the node they name.
func yamlDeref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 16 {
			return nil
		}
		n = n.Alias
	}
	return n
}

// yamlLineRE finds the line number yaml errors carry.
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError turns a yaml error into an *Error carrying the line.
func yamlError(file string, err error) *Error {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = "yaml: " + msg[len(m[0]):]
	}
	return &Error{File: file, Line: line, Err: &causeError{msg: msg, err: err}}
}
