package config

import (
	"errors"
	"fmt"
	"strings"
)

// maxLoopItems bounds the items of one for, for-glob, for-times or
// for-readline block, so that "for-times = 1000000000" is a clear refusal
// rather than a process eating the machine. uWSGI has no such bound.
const maxLoopItems = 100000

// endKeys close the open block.
var endKeys = map[string]bool{"end": true, "endif": true, "endfor": true, "end-if": true, "end-for": true}

// logicKinds are the opening keys: what each one tests or loops over.
var logicKinds = map[string]logicKind{
	"if-exists": ifExists, "ifexists": ifExists, "if-not-exists": ifNotExists,
	"if-file": ifFile, "if-not-file": ifNotFile,
	"if-dir": ifDir, "ifdir": ifDir, "if-directory": ifDir, "if-not-dir": ifNotDir,
	"if-env": ifEnv, "ifenv": ifEnv, "if-not-env": ifNotEnv,
	"if-opt": ifOpt, "if-not-opt": ifNotOpt,
	"if-reload": ifReload, "if-not-reload": ifNotReload,
	"if-hostname": ifHostname, "if-not-hostname": ifNotHostname,
	"if-hostname-match": ifHostnameMatch, "if-not-hostname-match": ifNotHostnameMatch,
	"if-plugin": ifPlugin, "ifplugin": ifPlugin, "if-not-plugin": ifNotPlugin,
	"for": forWords, "for-glob": forGlob, "for-times": forTimes, "for-readline": forReadline,
}

// IsLogicKey reports whether key is one of uWSGI's config logic keys, which
// Load, Parse and Args evaluate as options are read and never return as
// options. They work as in uWSGI 2.0 (core/config.c):
//
//   - an opening key starts a block that takes every option read after it
//     (from this file, the files it loads, later files and the command
//     line) until an end key (endif, end-if, endfor, end-for, end; any
//     value) closes it. For each option inside, the block decides whether
//     it is added, and how many times, with every "%(_)" in its value
//     replaced as listed below;
//   - blocks do not nest, as in uWSGI: an opening key that a block lets
//     through is refused, one it drops is dropped, and the first end key
//     closes the outer block;
//   - the options of a file loaded from inside a block (include = %(_))
//     are all added as they are, and an end key among them is ignored;
//   - an end key with no block open is ignored; a block still open when
//     everything has been read is closed with a warning;
//   - a loop has at most 100000 items, and the options it adds count
//     against Loader.MaxBytes.
//
// The opening keys:
//
//   - if-exists (ifexists) PATH: PATH is readable; if-not-exists PATH;
//   - if-file PATH: a regular file; if-not-file PATH;
//   - if-dir (ifdir, if-directory) PATH: a directory; if-not-dir PATH;
//   - if-hostname NAME, if-not-hostname NAME (Env.Hostname);
//   - if-hostname-match RE, if-not-hostname-match RE (Go regexp syntax);
//   - if-plugin (ifplugin) NAME never holds and if-not-plugin NAME always
//     does: no uWSGI plugin is ever loaded here. In all of the above %(_)
//     is the argument;
//   - if-env (ifenv) NAME or NAME=VALUE (Env.Getenv), if-not-env;
//   - if-opt NAME or NAME=VALUE (the first value of an option read
//     before), if-not-opt. %(_) is the value found, and stays "%(_)" when
//     there is none;
//   - if-reload, if-not-reload (Loader.Reload); %(_) is not replaced;
//   - for WORDS (split at spaces), for-times N (1 to N), for-glob PATTERN
//     (glob(3) order, directories with a trailing '/', the pattern itself
//     when nothing matches), for-readline FILE (one item per line): each
//     option inside is added once per item, %(_) being the item, before
//     the next option is read.
func IsLogicKey(key string) bool {
	_, ok := logicKinds[key]
	return ok || endKeys[key]
}

// logicKind is what an opening key does.
type logicKind uint8

const (
	ifExists logicKind = iota + 1
	ifNotExists
	ifFile
	ifNotFile
	ifDir
	ifNotDir
	ifEnv
	ifNotEnv
	ifOpt
	ifNotOpt
	ifReload
	ifNotReload
	ifHostname
	ifNotHostname
	ifHostnameMatch
	ifNotHostnameMatch
	ifPlugin
	ifNotPlugin
	forWords
	forGlob
	forTimes
	forReadline
)

// logicBlock is the open block.
type logicBlock struct {
	kind  logicKind
	at    Option   // the opening option: key, argument, where
	items []string // loop items, computed at the first option inside
	ready bool     // items computed
}

// logicState is the config logic of one call chain.
type logicState struct {
	block   *logicBlock
	running int               // > 0 while a block's options are being added
	seen    map[string]string // first value of every option added, for if-opt
}

// subst is one copy of an option a block lets through: every "%(_)" of its
// value becomes with, unless keep.
type subst struct {
	with string
	keep bool
}

// record notes an added option for if-opt, which sees the first value. A
// placeholder set with set-placeholder (set-ph) K=V is seen as K too, as
// in uWSGI.
func (s *logicState) record(o Option) {
	if s.seen == nil {
		s.seen = map[string]string{}
	}
	if _, ok := s.seen[o.Key]; !ok {
		s.seen[o.Key] = o.Value
	}
	if o.Key == "set-placeholder" || o.Key == "set-ph" {
		if k, v, ok := strings.Cut(o.Value, "="); ok && k != "" {
			s.record(Option{Key: k, Value: v})
		}
	}
}

// open starts the block o opens, refusing a block inside a block.
func (r *run) openBlock(kind logicKind, o Option) error {
	if b := r.logic.block; b != nil {
		return &Error{File: o.File, Line: o.Line, Key: o.Key,
			Err:  fmt.Errorf("config logic cannot nest: %s is inside the %s block opened at %s", o.Key, b.at.Key, position(b.at)),
			Hint: "close the outer block first; uWSGI refuses this too (recursive logic)"}
	}
	if kind == forTimes {
		if n := leadingInt(o.Value); n > maxLoopItems {
			return &Error{File: o.File, Line: o.Line, Key: o.Key,
				Err: fmt.Errorf("%d iterations is more than the %d allowed", n, maxLoopItems)}
		}
	}
	r.logic.block = &logicBlock{kind: kind, at: o}
	return nil
}

// closeBlock ends the open block, if any, at end key o.
func (r *run) closeBlock() { r.logic.block = nil }

// finishLogic warns about a block still open when everything has been read.
func (r *run) finishLogic() {
	if b := r.logic.block; b != nil && r.l.Warn != nil {
		r.l.Warn(fmt.Sprintf("%s: %s = %s: block not closed (no endif/endfor); it ran to the end of the configuration",
			position(b.at), b.at.Key, b.at.Value))
	}
	r.logic.block = nil
}

// position formats where o was read.
func position(o Option) string {
	if o.File == "" {
		return "command line"
	}
	if o.Line > 0 {
		return fmt.Sprintf("%s:%d", o.File, o.Line)
	}
	return o.File
}

// through returns the copies of o the open block lets through: none, one,
// or one per loop item.
func (r *run) through(b *logicBlock, o Option) ([]Option, error) {
	subs, err := r.decide(b)
	if err != nil {
		return nil, err
	}
	out := make([]Option, 0, len(subs))
	for _, s := range subs {
		c := o
		if !s.keep {
			c.Value = strings.ReplaceAll(o.Value, "%(_)", s.with)
		}
		if len(subs) > 1 || c.Value != o.Value {
			// Copies a loop makes count against the budget too.
			cost := int64(len(c.Key) + len(c.Value) + optionOverhead)
			if r.budget < cost {
				return nil, &Error{File: b.at.File, Line: b.at.Line, Key: b.at.Key, Err: errTooLarge,
					Hint: "the loop produces more than Loader.MaxBytes"}
			}
			r.budget -= cost
		}
		out = append(out, c)
	}
	return out, nil
}

// decide evaluates the open block for one option inside it.
func (r *run) decide(b *logicBlock) ([]subst, error) {
	arg := b.at.Value
	one := func(ok bool, with string) []subst {
		if !ok {
			return nil
		}
		return []subst{{with: with}}
	}
	switch b.kind {
	case ifExists, ifNotExists:
		return one(readable(arg) == (b.kind == ifExists), arg), nil
	case ifFile, ifNotFile:
		return one(isRegular(arg) == (b.kind == ifFile), arg), nil
	case ifDir, ifNotDir:
		return one(isDir(arg) == (b.kind == ifDir), arg), nil
	case ifEnv, ifNotEnv:
		name, want, hasWant := strings.Cut(arg, "=")
		v, set := r.env.Getenv(name)
		return ifValue(b.kind == ifEnv, v, set, want, hasWant), nil
	case ifOpt, ifNotOpt:
		name, want, hasWant := strings.Cut(arg, "=")
		v, set := r.logic.seen[name]
		return ifValue(b.kind == ifOpt, v, set, want, hasWant), nil
	case ifReload, ifNotReload:
		// No %(_) here: uWSGI adds the option as it is.
		if r.l.Reload == (b.kind == ifReload) {
			return []subst{{keep: true}}, nil
		}
		return nil, nil
	case ifHostname, ifNotHostname:
		return one((r.env.Hostname == arg) == (b.kind == ifHostname), arg), nil
	case ifHostnameMatch, ifNotHostnameMatch:
		re, err := compileRegexp(arg)
		if err != nil {
			return nil, &Error{File: b.at.File, Line: b.at.Line, Key: b.at.Key, Err: err}
		}
		return one(re.MatchString(r.env.Hostname) == (b.kind == ifHostnameMatch), arg), nil
	case ifPlugin, ifNotPlugin:
		// This runtime loads no uWSGI plugins: none is ever loaded.
		return one(b.kind == ifNotPlugin, arg), nil
	}
	if !b.ready {
		items, err := r.loopItems(b)
		if err != nil {
			return nil, err
		}
		b.items, b.ready = items, true
	}
	subs := make([]subst, len(b.items))
	for i, it := range b.items {
		subs[i] = subst{with: it}
	}
	return subs, nil
}

// ifValue decides if-env/if-opt (positive) and their if-not forms, given
// the value v found (set says whether it was) and the value asked for with
// NAME=VALUE (hasWant). %(_) is the value found; when nothing was found it
// stays "%(_)", as in uWSGI.
func ifValue(positive bool, v string, set bool, want string, hasWant bool) []subst {
	match := set && (!hasWant || v == want)
	if match != positive {
		return nil
	}
	if !set {
		return []subst{{keep: true}}
	}
	return []subst{{with: v}}
}

// loopItems computes the items of a for block.
func (r *run) loopItems(b *logicBlock) ([]string, error) {
	arg := b.at.Value
	var items []string
	switch b.kind {
	case forWords:
		for _, w := range strings.Split(arg, " ") {
			if w != "" {
				items = append(items, w)
			}
		}
	case forTimes:
		n := leadingInt(arg)
		for i := int64(1); i <= n; i++ {
			items = append(items, fmt.Sprint(i))
		}
	case forGlob:
		var err error
		if items, err = glob(arg, maxLoopItems+1); err != nil {
			return nil, &Error{File: b.at.File, Line: b.at.Line, Key: b.at.Key, Err: err}
		}
	case forReadline:
		text, err := readFile(r.l.ReadFile, arg, r.budget)
		if err != nil {
			// As uWSGI: the file is reported and the block adds nothing.
			if r.l.Warn != nil {
				r.l.Warn(fmt.Sprintf("%s: %s: %v", position(b.at), b.at.Key, err))
			}
			return nil, nil
		}
		for line := range strings.Lines(string(text)) {
			items = append(items, strings.TrimRight(line, "\r\n"))
		}
	}
	if len(items) > maxLoopItems {
		return nil, &Error{File: b.at.File, Line: b.at.Line, Key: b.at.Key,
			Err: errors.New("more than " + fmt.Sprint(maxLoopItems) + " items")}
	}
	return items, nil
}
