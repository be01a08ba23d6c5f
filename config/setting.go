package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A Setting is one option a program reads from its command line and config
// files: its name, its line of --help and how one occurrence applies to the
// variable it sets. The constructors below cover the usual kinds of value;
// ApplyOption applies an Option to a Setting and names where a bad value
// came from.
type Setting struct {
	Name string
	Help string
	// Set applies one occurrence's value. Its error says what is wrong with
	// the value; it may be an *Error carrying a Hint, whose File, Line and
	// Key ApplyOption fills in.
	Set func(value string) error
}

// StringSetting sets *p to the value, trimmed of space.
func StringSetting(name, help string, p *string) Setting {
	return Setting{Name: name, Help: help, Set: func(v string) error {
		*p = strings.TrimSpace(v)
		return nil
	}}
}

// ListSetting appends prefix plus the value, trimmed of space, to *p: the
// option is repeatable. An empty value is refused.
func ListSetting(name, help string, p *[]string, prefix string) Setting {
	return Setting{Name: name, Help: help, Set: func(v string) error {
		v = strings.TrimSpace(v)
		if v == "" {
			return fmt.Errorf("needs a value")
		}
		*p = append(*p, prefix+v)
		return nil
	}}
}

// BoolSetting sets *p as ParseBool reads the value.
func BoolSetting(name, help string, p *bool) Setting {
	return Setting{Name: name, Help: help, Set: func(v string) error {
		b, err := ParseBool(v)
		if err != nil {
			return err
		}
		*p = b
		return nil
	}}
}

// IntSetting sets *p to the value, a decimal integer.
func IntSetting(name, help string, p *int) Setting {
	return Setting{Name: name, Help: help, Set: func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		*p = n
		return nil
	}}
}

// DurationSetting sets *p to the value, a non-negative whole number of
// units (time.Second for an option in seconds, time.Millisecond in ms).
func DurationSetting(name, help string, p *time.Duration, unit time.Duration) Setting {
	return Setting{Name: name, Help: help, Set: func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not a non-negative integer", v)
		}
		*p = time.Duration(n) * unit
		return nil
	}}
}

// ApplyOption applies o to s. A refusal is an *Error naming o's file, line
// and key.
func ApplyOption(s Setting, o Option) error { return o.refusal(s.Set(o.Value)) }

// refusal places err, when not nil, at o: an *Error naming o's file, line
// and key, keeping the hint of an *Error err.
func (o Option) refusal(err error) error {
	if err == nil {
		return nil
	}
	e, ok := err.(*Error)
	if !ok {
		e = &Error{Err: err}
	}
	return &Error{File: o.File, Line: o.Line, Key: o.Key, Err: e.Err, Hint: e.Hint}
}

// ParseBool reads a boolean as uWSGI does: a bare flag ("") and 1, true,
// yes, on, y, t are true; 0, false, no, off, n, f are false; case does not
// matter. Anything else is an *Error with a hint and no location.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "1", "true", "yes", "on", "y", "t":
		return true, nil
	case "0", "false", "no", "off", "n", "f":
		return false, nil
	}
	return false, &Error{Err: fmt.Errorf("%q is not a boolean", v), Hint: "use true or false"}
}
