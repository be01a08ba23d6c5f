// Package config is the one parser for uWSGI-style configuration, shared by
// the Emperor (for its own emperor.ini) and by the vassal runtime.
//
// It reads ini, xml, yaml and json files the way uWSGI 2.0 does: magic
// variables (%n, %d, %p, ...) are expanded in the text of each file as it is
// read, "file:section" selects a section, repeated keys are kept in order,
// the include/ini/xml/yaml/json keys load other files in place, set K=V
// adds option K, and inherit loads templates placed before a file's own
// options. uWSGI's config logic (if-exists, if-env, if-opt, for, for-glob,
// ... endif, endfor; see [IsLogicKey]) is evaluated as options are read,
// in every format and on the command line, with %(_) standing for the
// matched file, value or loop item.
//
// [Loader.Args] builds a config from a uWSGI-style command line: long
// options, uWSGI's short options ([ShortOptions]), config files given as
// bare arguments, and before them the UWSGI_* environment variables of
// [Loader.Environ] ([EnvOption]). The late passes ($(ENV), @(FILE) and
// %(placeholder)) run separately, in [Config.Resolve], once everything has
// been read.
//
// Every refusal is an [*Error] naming the file, line and option involved.
// Nothing in the package keeps state between calls, and a [Loader]'s
// methods never modify it: one Loader may serve concurrent calls as long as
// its function fields (ReadFile, Warn, Emperor, Env.Getenv) allow it.
package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Option is one key = value, in the order it was read.
type Option struct {
	Key   string
	Value string
	File  string // file it came from; "" for the command line / --set
	Line  int    // 1-based line in File; 0 when unknown
}

// Config is an ordered list of options; repeated keys are kept, in order.
// Scalar settings read the last value ([Config.Get]); list settings read
// every value ([Config.All]). A nil *Config behaves as an empty one.
type Config struct{ Options []Option }

// last returns the last option named key.
func (c *Config) last(key string) (Option, bool) {
	if c == nil {
		return Option{}, false
	}
	for i := len(c.Options) - 1; i >= 0; i-- {
		if c.Options[i].Key == key {
			return c.Options[i], true
		}
	}
	return Option{}, false
}

// Get returns the last value of key, and whether key is present at all.
func (c *Config) Get(key string) (string, bool) {
	o, ok := c.last(key)
	return o.Value, ok
}

// All returns every value of key, in order; nil when key is absent.
func (c *Config) All(key string) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, o := range c.Options {
		if o.Key == key {
			out = append(out, o.Value)
		}
	}
	return out
}

// Lookup returns every option named key, in order, with where each came
// from; nil when key is absent.
func (c *Config) Lookup(key string) []Option {
	if c == nil {
		return nil
	}
	var out []Option
	for _, o := range c.Options {
		if o.Key == key {
			out = append(out, o)
		}
	}
	return out
}

// Bool reads the last value of key as a boolean. A bare flag ("") and 1,
// true, yes, on, y, t are true; 0, false, no, off, n, f are false (case does
// not matter). An absent key is false with a nil error. Anything else is an
// *Error naming the file and line of that value.
func (c *Config) Bool(key string) (bool, error) {
	o, ok := c.last(key)
	if !ok {
		return false, nil
	}
	b, err := ParseBool(o.Value)
	return b, o.refusal(err)
}

// Int reads the last value of key as a decimal integer. An absent key gives
// def. A value that is not an integer (including a bare flag) is an *Error
// naming the file and line of that value.
func (c *Config) Int(key string, def int) (int, error) {
	o, ok := c.last(key)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(o.Value))
	if err != nil {
		return def, &Error{File: o.File, Line: o.Line, Key: key,
			Err: &causeError{msg: fmt.Sprintf("%q is not an integer", o.Value), err: err}}
	}
	return n, nil
}
