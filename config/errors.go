package config

import (
	"errors"
	"strconv"
	"strings"
)

// Error is a refusal a user reads. It names where the problem is and, when
// it helps, what to do about it:
//
//	app.ini:12: socket: bad value (hint)
//
// File is the config file the problem is in, or "" for the command line (and
// --set), which Error prints as "command line". Line is 1-based and 0 when
// unknown. Key is the option involved, if any. Err is the cause and is
// returned by Unwrap, so errors.Is and errors.As see through an *Error.
type Error struct {
	File string
	Line int
	Key  string
	Err  error
	Hint string
}

// Error formats the refusal as "file:line: key: cause (hint)", leaving out
// the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	} else {
		b.WriteString("command line")
	}
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("invalid configuration")
	}
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteByte(')')
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// causeError is a cause whose message is rewritten (for example to drop a
// line number that *Error already prints) while the original error stays
// reachable through Unwrap.
type causeError struct {
	msg string
	err error
}

func (c *causeError) Error() string { return c.msg }
func (c *causeError) Unwrap() error { return c.err }

// errTooLarge is the cause when a call chain would read or produce more than
// Loader.MaxBytes.
var errTooLarge = errors.New("configuration too large")
