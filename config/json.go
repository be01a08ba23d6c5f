package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// parseJSON collects the options of section from a json config: the
// top-level object's member SECTION must be an object of options. Strings
// are used as is, true is "1", false and null are "0", numbers keep their
// text, and an array gives one option per element. Nested objects (and
// arrays inside arrays) are refused. Duplicate keys are kept in order.
// found reports whether the section member appeared.
func parseJSON(c *collector, text []byte, section string) (found bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	p := &jsonParser{c: c, dec: dec, lines: lineCounter{text: text}}

	tok, err := p.token()
	if err != nil {
		return false, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return false, c.errf(p.line(), "", "json: the top level must be an object of sections")
	}
	for dec.More() {
		tok, err := p.token()
		if err != nil {
			return found, err
		}
		key, _ := tok.(string)
		if key != section {
			if err := p.skip(); err != nil {
				return found, err
			}
			continue
		}
		found = true
		if err := p.section(section); err != nil {
			return found, err
		}
	}
	if _, err := p.token(); err != nil { // the closing '}'
		return found, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return found, c.errf(p.line(), "", "json: unexpected data after the top-level object")
	}
	return found, nil
}

// jsonParser walks a json config token by token.
type jsonParser struct {
	c     *collector
	dec   *json.Decoder
	lines lineCounter
}

// line is the line the decoder has reached.
func (p *jsonParser) line() int { return p.lines.at(p.dec.InputOffset()) }

// token reads the next token; a syntax error names its line.
func (p *jsonParser) token() (json.Token, error) {
	tok, err := p.dec.Token()
	if err == nil {
		return tok, nil
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return nil, &Error{File: p.c.file, Line: p.lines.at(se.Offset), Err: &causeError{msg: "json: " + se.Error(), err: err}}
	case err == io.EOF, errors.Is(err, io.ErrUnexpectedEOF):
		return nil, &Error{File: p.c.file, Line: p.lines.at(int64(len(p.lines.text))), Err: &causeError{msg: "json: unexpected end of input", err: err}}
	}
	return nil, &Error{File: p.c.file, Line: p.line(), Err: fmt.Errorf("json: %w", err)}
}

// section reads the object of options of the chosen section.
func (p *jsonParser) section(name string) error {
	tok, err := p.token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return p.c.errf(p.line(), "", "json: section %q must be an object of options", name)
	}
	for p.dec.More() {
		tok, err := p.token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		line := p.line()
		tok, err = p.token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('['):
			for p.dec.More() {
				tok, err := p.token()
				if err != nil {
					return err
				}
				if _, ok := tok.(json.Delim); ok {
					return p.c.errf(p.line(), key, "json: list items must be strings, numbers, booleans or null")
				}
				if err := p.c.add(key, jsonScalar(tok), p.line()); err != nil {
					return err
				}
			}
			if _, err := p.token(); err != nil { // ']'
				return err
			}
		case json.Delim('{'):
			return p.c.errf(line, key, "json: an object is not an option value")
		default:
			if err := p.c.add(key, jsonScalar(tok), line); err != nil {
				return err
			}
		}
	}
	_, err = p.token() // '}'
	return err
}

// skip reads past one value of any shape.
func (p *jsonParser) skip() error {
	depth := 0
	for {
		tok, err := p.token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			default:
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// jsonScalar is the option text of a scalar token.
func jsonScalar(tok json.Token) string {
	switch v := tok.(type) {
	case string:
		return v
	case bool:
		if v {
			return "1"
		}
		return "0"
	case nil:
		return "0"
	case json.Number:
		return v.String()
	}
	return fmt.Sprint(tok)
}

// lineCounter maps byte offsets of text to 1-based line numbers, counting
// incrementally for offsets that only grow.
type lineCounter struct {
	text []byte
	off  int64
	line int
}

// at returns the line of byte offset off.
func (l *lineCounter) at(off int64) int {
	off = max(0, min(off, int64(len(l.text))))
	if off < l.off || l.line == 0 {
		l.off, l.line = 0, 1
	}
	l.line += bytes.Count(l.text[l.off:off], []byte{'\n'})
	l.off = off
	return l.line
}
