package config

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// parseXML collects the options of an xml config, the way uWSGI reads one:
//
//   - the block is the root element if it is <uwsgi>, otherwise the first
//     <uwsgi> child of the root;
//   - with a section id, the first such element with id="ID" is chosen, and
//     option elements whose id attribute differs from ID are skipped;
//   - each child element of the block is an option named after the element;
//     its text, trimmed, is the value, and an empty element is a flag.
//
// The whole document must be well-formed. found reports whether a block was
// chosen.
func parseXML(c *collector, text []byte, id string) (found bool, err error) {
	dec := xml.NewDecoder(bytes.NewReader(text))
	dec.Strict = true
	dec.CharsetReader = xmlCharsetReader

	var (
		depth       int  // elements currently open
		seenRoot    bool // the root element has started
		rootIsUwsgi bool
		block       = -1 // depth of the chosen <uwsgi>, -1 outside it
		inOpt       bool
		skipOpt     bool
		optKey      string
		optLine     int
		optText     strings.Builder
	)
	for {
		line, _ := dec.InputPos()
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return found, xmlError(c.file, line, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				if seenRoot {
					return found, c.errf(line, "", "xml: extra element <%s> after the root element", t.Name.Local)
				}
				seenRoot = true
				rootIsUwsgi = t.Name.Local == "uwsgi"
				if rootIsUwsgi && xmlIDMatches(t, id) {
					block, found = 1, true
				}
			case depth == 2 && !rootIsUwsgi && !found && t.Name.Local == "uwsgi" && xmlIDMatches(t, id):
				block, found = 2, true
			case block > 0 && depth == block+1:
				inOpt, optKey, optLine = true, t.Name.Local, line
				optText.Reset()
				skipOpt = false
				if id != "" {
					if v, ok := xmlAttr(t, "id"); ok && v != id {
						skipOpt = true
					}
				}
			}
		case xml.CharData:
			if depth == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return found, c.errf(line, "", "xml: text outside the root element")
				}
			} else if inOpt && !skipOpt {
				optText.Write(t)
			}
		case xml.EndElement:
			if inOpt && depth == block+1 {
				inOpt = false
				if !skipOpt {
					if err := c.add(optKey, strings.TrimSpace(optText.String()), optLine); err != nil {
						return found, err
					}
				}
			}
			if depth == block {
				block = -1
			}
			depth--
		}
	}
	if !seenRoot {
		return false, c.errf(1, "", "xml: no root element")
	}
	return found, nil
}

// xmlIDMatches reports whether a <uwsgi> element is the one asked for: any
// when id is "", otherwise the one with id="ID".
func xmlIDMatches(t xml.StartElement, id string) bool {
	if id == "" {
		return true
	}
	v, ok := xmlAttr(t, "id")
	return ok && v == id
}

// xmlAttr returns the attribute name of t.
func xmlAttr(t xml.StartElement, name string) (string, bool) {
	for _, a := range t.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value, true
		}
	}
	return "", false
}

// xmlError turns a decoder error into an *Error carrying the line.
func xmlError(file string, line int, err error) *Error {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return &Error{File: file, Line: se.Line, Err: &causeError{msg: "xml: " + se.Msg, err: err}}
	}
	return &Error{File: file, Line: line, Err: fmt.Errorf("xml: %w", err)}
}

// xmlCharsetReader lets a document declare the single-byte encodings uWSGI
// configs are sometimes written in; utf-8 is handled by the decoder itself.
func xmlCharsetReader(charset string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin1", "latin-1":
		return &latin1Reader{r: input}, nil
	}
	return nil, fmt.Errorf("unsupported encoding %q (use utf-8)", charset)
}

// latin1Reader converts ISO-8859-1 bytes to UTF-8.
type latin1Reader struct {
	r   io.Reader
	buf []byte
}

func (l *latin1Reader) Read(p []byte) (int, error) {
	if len(p) < utf8.UTFMax {
		return 0, io.ErrShortBuffer
	}
	n := len(p) / 2
	if cap(l.buf) < n {
		l.buf = make([]byte, n)
	}
	m, err := l.r.Read(l.buf[:n])
	out := 0
	for _, b := range l.buf[:m] {
		out += utf8.EncodeRune(p[out:], rune(b))
	}
	return out, err
}
