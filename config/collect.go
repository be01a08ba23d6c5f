package config

import "fmt"

// optionOverhead is what each option costs against the byte budget on top
// of its key and value, so that a flood of empty options is bounded too.
const optionOverhead = 32

// collector gathers the options one parser finds in one file, charging each
// against the byte budget of the call chain.
type collector struct {
	file   string
	opts   []Option
	budget *int64
	warn   func(string)
}

// add appends key = value read at line. An option without a name is
// dropped with a warning.
func (c *collector) add(key, value string, line int) error {
	if key == "" {
		c.warnf("%s:%d: option without a name ignored", c.file, line)
		return nil
	}
	cost := int64(len(key) + len(value) + optionOverhead)
	if *c.budget < cost {
		return &Error{File: c.file, Line: line, Key: key, Err: errTooLarge,
			Hint: "raise Loader.MaxBytes if this is intended"}
	}
	*c.budget -= cost
	c.opts = append(c.opts, Option{Key: key, Value: value, File: c.file, Line: line})
	return nil
}

// warnf reports a non-fatal problem.
func (c *collector) warnf(format string, args ...any) {
	if c.warn != nil {
		c.warn(fmt.Sprintf(format, args...))
	}
}

// errf is an *Error at line of this collector's file.
func (c *collector) errf(line int, key, format string, args ...any) *Error {
	return &Error{File: c.file, Line: line, Key: key, Err: fmt.Errorf(format, args...)}
}
