package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// maxPlaceholderDepth bounds how deeply placeholders may refer to
// placeholders.
const maxPlaceholderDepth = 64

// Resolve runs uWSGI's late passes over every value, in place, in this
// order, each pass over all options before the next:
//
//  1. $(NAME) becomes the environment variable NAME (l.Env.Getenv); unknown
//     names stay as text.
//  2. @(PATH) becomes the content of file PATH, less one trailing newline;
//     a file that cannot be read is an *Error.
//  3. %(NAME) becomes the last value of option NAME in c (the value Get
//     reads; uWSGI itself takes the first), itself resolved: placeholders
//     inside placeholder values are expanded. Unknown names stay as text,
//     as in uWSGI. As in uWSGI 2.0, a placeholder holding
//     spaces is an expression: its words are concatenated, where a word is
//     a number, an option name (unknown names count as ""), or an operator
//     + - * / applying integer arithmetic to the next word, or ++ / --
//     incrementing or decrementing the result so far. A cycle of
//     placeholders is an *Error naming the option and its file:line.
//
// A nil l behaves as a zero Loader. On error, c may be partly resolved.
func (c *Config) Resolve(l *Loader) error {
	if c == nil {
		return nil
	}
	if l == nil {
		l = &Loader{}
	}
	getenv := l.Env.Getenv
	if getenv == nil {
		getenv = l.Env.withDefaults().Getenv
	}
	limit := int64(l.MaxBytes)
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	budget := limit

	// charge counts the text a pass adds to the option o, whose value
	// becomes v.
	charge := func(o *Option, v string) error {
		if v == o.Value {
			return nil
		}
		budget -= int64(len(v))
		if budget < 0 {
			return &Error{File: o.File, Line: o.Line, Key: o.Key, Err: errTooLarge,
				Hint: "resolved values grow beyond Loader.MaxBytes"}
		}
		return nil
	}

	// Pass 1: environment.
	for i := range c.Options {
		o := &c.Options[i]
		v, err := substitute(o.Value, '$', func(name string) (string, bool, error) {
			val, ok := getenv(name)
			return val, ok, nil
		})
		if err != nil {
			return err
		}
		if err := charge(o, v); err != nil {
			return err
		}
		o.Value = v
	}

	// Pass 2: file contents.
	for i := range c.Options {
		o := &c.Options[i]
		v, err := substitute(o.Value, '@', func(path string) (string, bool, error) {
			b, err := readFile(l.ReadFile, path, max(budget, 0))
			if err != nil {
				return "", false, &Error{File: o.File, Line: o.Line, Key: o.Key, Err: err}
			}
			s := strings.TrimSuffix(string(b), "\n")
			return strings.TrimSuffix(s, "\r"), true, nil
		})
		if err != nil {
			return err
		}
		if err := charge(o, v); err != nil {
			return err
		}
		o.Value = v
	}

	// Pass 3: placeholders. Every lookup sees the values as they were
	// before this pass; the results are written back at the end.
	p := &placeholders{c: c, limit: limit, last: map[string]int{}, memo: map[string]string{}, active: map[string]bool{}}
	for i, o := range c.Options {
		p.last[o.Key] = i
	}
	values := make([]string, len(c.Options))
	for i := range c.Options {
		o := &c.Options[i]
		var v string
		var err error
		if p.last[o.Key] == i {
			// The value others see as %(KEY): resolve it once, as such.
			v, _, err = p.option(o.Key, 0)
		} else {
			v, err = substitute(o.Value, '%', func(name string) (string, bool, error) {
				return p.lookup(name, 1)
			})
		}
		if err != nil {
			var pe *placeholderError
			if errors.As(err, &pe) {
				return &Error{File: o.File, Line: o.Line, Key: o.Key, Err: err, Hint: pe.hint}
			}
			return err
		}
		if err := charge(o, v); err != nil {
			return err
		}
		values[i] = v
	}
	for i := range c.Options {
		c.Options[i].Value = values[i]
	}
	return nil
}

// substitute replaces each SYM(KEY) in v by hook(KEY). KEY runs to the
// matching ')' (parentheses nest); "SYM()" and an unclosed "SYM(" are left
// alone, and so is SYM(KEY) when hook reports KEY unknown. The replacement
// text is not scanned again.
func substitute(v string, sym byte, hook func(string) (string, bool, error)) (string, error) {
	if !strings.Contains(v, string([]byte{sym, '('})) {
		return v, nil
	}
	var b strings.Builder
	i := 0
	for i < len(v) {
		j := strings.Index(v[i:], string([]byte{sym, '('}))
		if j < 0 {
			break
		}
		start := i + j
		b.WriteString(v[i:start])
		end := closingParen(v, start+2)
		if end < 0 {
			b.WriteString(v[start:])
			return b.String(), nil
		}
		key := v[start+2 : end]
		if key == "" {
			b.WriteString(v[start : end+1])
			i = end + 1
			continue
		}
		val, ok, err := hook(key)
		if err != nil {
			return "", err
		}
		if ok {
			b.WriteString(val)
		} else {
			b.WriteString(v[start : end+1])
		}
		i = end + 1
	}
	b.WriteString(v[i:])
	return b.String(), nil
}

// closingParen returns the index of the ')' closing the '(' just before
// from, or -1.
func closingParen(v string, from int) int {
	depth := 0
	for k := from; k < len(v); k++ {
		switch v[k] {
		case '(':
			depth++
		case ')':
			if depth == 0 {
				return k
			}
			depth--
		}
	}
	return -1
}

// placeholders resolves %(NAME) against one config, remembering each
// resolved name so every value is computed once.
type placeholders struct {
	c      *Config
	limit  int64             // bytes all resolved placeholders may add up to
	last   map[string]int    // option name → index of its last value
	memo   map[string]string // option name → resolved last value
	active map[string]bool   // names being resolved, to catch cycles
	stack  []string          // the chain being resolved, for messages
	size   int64             // bytes produced so far
	work   int64             // bytes expressions have gone through so far
}

// placeholderError is a cycle or runaway nesting among placeholders.
type placeholderError struct {
	msg  string
	hint string
}

func (e *placeholderError) Error() string { return e.msg }

// lookup resolves the placeholder NAME (or expression) at nesting depth.
func (p *placeholders) lookup(name string, depth int) (string, bool, error) {
	if strings.Contains(name, " ") {
		return p.expression(name, depth)
	}
	return p.option(name, depth)
}

// option resolves the last value of option name at nesting depth; ok is
// false when there is no such option.
func (p *placeholders) option(name string, depth int) (string, bool, error) {
	idx, ok := p.last[name]
	if !ok {
		return "", false, nil
	}
	if v, ok := p.memo[name]; ok {
		return v, true, nil
	}
	if p.active[name] {
		chain := append(append([]string(nil), p.stack...), name)
		return "", false, &placeholderError{
			msg:  "placeholder cycle: " + strings.Join(chain, " -> "),
			hint: "a placeholder cannot refer to itself, directly or through others",
		}
	}
	if depth > maxPlaceholderDepth {
		return "", false, &placeholderError{
			msg:  fmt.Sprintf("placeholders nested more than %d deep", maxPlaceholderDepth),
			hint: "simplify the chain of %(...) references",
		}
	}
	p.active[name] = true
	p.stack = append(p.stack, name)
	v, err := substitute(p.c.Options[idx].Value, '%', func(k string) (string, bool, error) {
		return p.lookup(k, depth+1)
	})
	p.stack = p.stack[:len(p.stack)-1]
	delete(p.active, name)
	if err != nil {
		return "", false, err
	}
	if p.size+int64(len(v)) > p.limit {
		return "", false, &placeholderError{msg: "placeholder %(" + name + ") expands to too much text"}
	}
	p.size += int64(len(v))
	p.memo[name] = v
	return v, true, nil
}

// expression evaluates a uWSGI 2.0 placeholder expression such as
// "%(processes cores + 2)".
func (p *placeholders) expression(expr string, depth int) (string, bool, error) {
	type op uint8
	const (
		concat op = iota
		add
		sub
		mul
		div
	)
	state := concat
	var cur strings.Builder // the result so far
	has := false            // whether there is a result yet
	set := func(n int64) {
		cur.Reset()
		cur.WriteString(strconv.FormatInt(n, 10))
		has = true
	}
	for _, w := range strings.Split(expr, " ") {
		if w == "" {
			continue
		}
		var val string
		switch {
		case isDigits(w):
			val = w
		case w == "+":
			state = add
			continue
		case w == "-":
			state = sub
			continue
		case w == "*":
			state = mul
			continue
		case w == "/":
			state = div
			continue
		case w == "++", w == "--":
			if has {
				if w == "++" {
					set(leadingInt(cur.String()) + 1)
				} else {
					set(leadingInt(cur.String()) - 1)
				}
			}
			state = concat
			continue
		default:
			v, ok, err := p.lookup(w, depth+1)
			if err != nil {
				return "", false, err
			}
			if ok {
				val = v
			}
		}
		p.work += int64(len(val))
		if state != concat {
			p.work += int64(cur.Len())
		}
		if p.work > 4*p.limit {
			return "", false, &placeholderError{msg: "placeholder expressions take too much work"}
		}
		if state == concat {
			if int64(cur.Len()+len(val)) > p.limit {
				return "", false, &placeholderError{msg: "placeholder %(" + expr + ") expands to too much text"}
			}
			cur.WriteString(val)
			has = true
			continue
		}
		a, b := leadingInt(cur.String()), leadingInt(val)
		switch state {
		case add:
			set(a + b)
		case sub:
			set(a - b)
		case mul:
			set(a * b)
		case div:
			if b == 0 {
				set(0)
			} else {
				set(a / b)
			}
		}
		state = concat
	}
	if !has {
		return "", false, nil
	}
	return cur.String(), true, nil
}

// isDigits reports whether s is all ASCII digits.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// leadingInt reads the integer at the start of s the way C's strtoll does:
// leading white space, an optional sign, then digits; 0 when there are
// none, clamped on overflow.
func leadingInt(s string) int64 {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var n uint64
	overflow := false
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if n > (math.MaxUint64-d)/10 {
			overflow = true
			break
		}
		n = n*10 + d
	}
	switch {
	case neg && (overflow || n > 1<<63):
		return math.MinInt64
	case neg:
		return -int64(n)
	case overflow || n > math.MaxInt64:
		return math.MaxInt64
	}
	return int64(n)
}
