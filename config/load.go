package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/emperor-dev/emperor/internal/regular"
)

// Defaults of the Loader fields.
const (
	DefaultSection  = "uwsgi"
	DefaultMaxDepth = 16
	DefaultMaxBytes = 16 << 20
)

// Loader reads configs. The zero value is usable: every zero field gets the
// default given in its comment. A Loader holds no state between calls; its
// methods never modify it.
type Loader struct {
	// Env is what magic variables and $(ENV) see.
	Env Env
	// Section is the section read when a name carries none; default
	// "uwsgi". For xml it is the id of the <uwsgi> element, and the default
	// "uwsgi" means "the first <uwsgi> element".
	Section string
	// ReadFile reads a config file (and @(FILE) in Resolve); default: read
	// the file, bounded by MaxBytes, refusing anything but a regular file
	// without blocking on it (a FIFO is refused, never waited on).
	ReadFile func(path string) ([]byte, error)
	// Warn receives non-fatal warnings, such as a missing section; default:
	// ignore them.
	Warn func(msg string)
	// MaxDepth limits how deeply include, ini, xml, yaml, json and inherit
	// may nest; default 16.
	MaxDepth int
	// Emperor fetches the text of "emperor://NAME" from the Emperor's config
	// channel. When nil, such names are refused.
	Emperor func(name string) ([]byte, error)
	// Exec, when set, produces the text of "exec://COMMAND" instead of
	// running COMMAND (see exec.go); ExecTimeout bounds a COMMAND that is
	// run, default 30 s.
	Exec        func(command string) ([]byte, error)
	ExecTimeout time.Duration
	// MaxBytes bounds the config text one call may read and produce, after
	// magic expansion, counting every included file and option, and the size
	// of the values Resolve produces; default 16 MiB.
	MaxBytes int
	// Environ is the environment whose UWSGI_* variables Args reads as
	// options before the command line (see EnvOptions); nil reads none.
	Environ []string
	// Reload says the configuration is read again for a reload: if-reload
	// blocks are taken and if-not-reload ones skipped. A first start is
	// never a reload.
	Reload bool
	// ArgKind tells Args whether a long option takes a value, for options
	// the package does not know (see ArgKind); nil guesses.
	ArgKind func(name string) ArgKind
}

// NewLoader returns a Loader with the defaults, whose %t and %T are the time
// of this call.
func NewLoader() *Loader {
	return &Loader{Env: Env{Now: time.Now()}}
}

// run is the state of one Load, Parse or Args call chain.
type run struct {
	l        *Loader
	env      Env
	section  string
	maxDepth int
	budget   int64     // bytes left
	frozen   *fileVars // per-file variables of the first main file, for %O %N ...
	lastINI  string    // last ini file read, for ":section"
	logic    logicState
}

// newRun starts a call chain.
func (l *Loader) newRun() *run {
	r := &run{l: l, env: l.Env.withDefaults(), section: l.Section, maxDepth: l.MaxDepth, budget: int64(l.MaxBytes)}
	if r.section == "" {
		r.section = DefaultSection
	}
	if r.maxDepth <= 0 {
		r.maxDepth = DefaultMaxDepth
	}
	if r.budget <= 0 {
		r.budget = DefaultMaxBytes
	}
	return r
}

// Load reads the config file name, which may carry ":section", in the given
// format. Magic variables are expanded in its text; include, ini, xml, yaml
// and json keys load their files in place; inherit keys load their files
// before the file's own options. The late passes are not run: see Resolve.
//
// A name "emperor://NAME" is fetched with Loader.Emperor. Relative names are
// opened relative to the process's working directory. A missing section is
// only a warning.
func (l *Loader) Load(format Format, name string) (*Config, error) {
	r := l.newRun()
	opts, err := r.loadName(format, name, 0, true, nil)
	if err != nil {
		return nil, err
	}
	r.finishLogic()
	return &Config{Options: opts}, nil
}

// Parse is Load for config text that did not come from a file, such as
// "emperor://NAME" text from the Emperor's config channel. name (which may
// carry ":section") is what %o expands to and what options name as their
// file; the other per-file magic variables expand to "".
func (l *Loader) Parse(format Format, name string, text []byte) (*Config, error) {
	r := l.newRun()
	file, sect := SplitSection(name)
	fv := &fileVars{o: name}
	r.frozen = fv
	opts, err := r.parse(format, file, sect, fv, text, 0)
	if err != nil {
		return nil, err
	}
	r.finishLogic()
	return &Config{Options: opts}, nil
}

// blame builds the *Error for a problem with loading file: at the option
// that asked for it when there is one, otherwise at file itself.
func blame(from *Option, file string, err error, hint string) *Error {
	if from != nil {
		return &Error{File: from.File, Line: from.Line, Key: from.Key, Err: err, Hint: hint}
	}
	return &Error{File: file, Err: err, Hint: hint}
}

// loadName reads and parses the config name. depth is its nesting level;
// main marks a config given with --ini/--xml/--yaml/--json or to Load,
// whose variables the uppercase magic variables freeze; from is the option
// that asked for it (nil at the top).
func (r *run) loadName(format Format, name string, depth int, main bool, from *Option) ([]Option, error) {
	if !format.valid() && format != Detect {
		return nil, blame(from, name, fmt.Errorf("unknown config format %v", format), "use ini, xml, yaml or json")
	}
	if depth > r.maxDepth {
		return nil, blame(from, name, errors.New("include nesting too deep (cycle?)"),
			fmt.Sprintf("at most %d levels", r.maxDepth))
	}
	file, sect := SplitSection(name)
	if file == "" {
		if sect == "" || format != INI || r.lastINI == "" {
			return nil, blame(from, name, errors.New("no config file named"), "")
		}
		file = r.lastINI
	}

	var (
		text []byte
		fv   *fileVars
		err  error
	)
	switch sch := scheme(file); sch {
	case "emperor":
		vassal := strings.TrimPrefix(file, "emperor://")
		if r.l.Emperor == nil {
			return nil, &Error{File: file, Err: errors.New("not a vassal of an emperor with a config channel")}
		}
		text, err = r.l.Emperor(vassal)
		if err != nil {
			return nil, blame(from, file, fmt.Errorf("cannot read %s: %w", file, err), "")
		}
		fv = &fileVars{o: name}
	case "exec":
		command := strings.TrimPrefix(file, "exec://")
		text, err = r.runConfigCommand(command, r.budget)
		if err != nil {
			return nil, blame(from, file, fmt.Errorf("exec://%s: %w", command, err),
				"exec:// runs the command and reads the config from its standard output")
		}
		fv = &fileVars{o: name}
	case "":
		text, err = r.read(file)
		if err != nil {
			return nil, blame(from, file, err, "")
		}
		fv = newFileVars(name, file, sect, r.env.Cwd)
	default:
		return nil, blame(from, file, fmt.Errorf("cannot read %s: scheme %s:// is not supported", file, sch), "use a file, emperor:// or exec://")
	}
	if main && r.frozen == nil {
		r.frozen = fv
	}
	if format == Detect {
		format = detectFormat(file, text)
	}
	return r.parse(format, file, sect, fv, text, depth)
}

// read reads a config file within the byte budget.
func (r *run) read(file string) ([]byte, error) {
	text, err := readFile(r.l.ReadFile, file, r.budget)
	if err != nil {
		return nil, err
	}
	return text, nil
}

// readFile reads path with custom (when not nil) or, by default, as a
// regular file opened without blocking (a FIFO, a device or a directory is
// refused), refusing anything longer than limit bytes. Errors name the
// file.
func readFile(custom func(string) ([]byte, error), path string, limit int64) ([]byte, error) {
	if custom != nil {
		b, err := custom(path)
		if err != nil {
			return nil, readError(path, err)
		}
		if int64(len(b)) > limit {
			return nil, fmt.Errorf("cannot read %s: %w", path, errTooLarge)
		}
		return b, nil
	}
	// Never a plain open: an include naming a FIFO would block the
	// vassal forever.
	f, err := regular.Open(path)
	if err != nil {
		return nil, readError(path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, readError(path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("cannot read %s: %w", path, errTooLarge)
	}
	return b, nil
}

// readError says which file could not be read, without repeating the path
// a *fs.PathError already carries.
func readError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &causeError{msg: fmt.Sprintf("cannot read %s: %v", path, pe.Err), err: err}
	}
	return fmt.Errorf("cannot read %s: %w", path, err)
}

// parse expands magic variables in text, parses the section of it and
// processes its include and inherit keys.
func (r *run) parse(format Format, file, sect string, fv *fileVars, text []byte, depth int) ([]Option, error) {
	if !format.valid() {
		return nil, &Error{File: file, Err: fmt.Errorf("unknown config format %v", format), Hint: "use ini, xml, yaml or json"}
	}
	if int64(len(text)) > r.budget {
		return nil, &Error{File: file, Err: errTooLarge, Hint: "raise Loader.MaxBytes if this is intended"}
	}
	expanded, ok := magic(text, fv, r.frozen, &r.env, r.budget)
	if !ok {
		return nil, &Error{File: file, Err: errTooLarge, Hint: "magic variables expand beyond Loader.MaxBytes"}
	}
	r.budget -= int64(len(expanded))

	section := sect
	if section == "" {
		section = r.section
	}
	c := &collector{file: file, budget: &r.budget, warn: r.l.Warn}
	var (
		found bool
		err   error
	)
	switch format {
	case INI:
		r.lastINI = file
		found, err = parseINI(c, expanded, section)
	case XML:
		id := sect
		if id == "" && r.section != DefaultSection {
			id = r.section
		}
		found, err = parseXML(c, expanded, id)
		if err == nil && !found {
			if id == "" {
				c.warnf("%s: no <uwsgi> element found", file)
			} else {
				c.warnf("%s: no <uwsgi id=%q> element found", file, id)
			}
			found = true
		}
	case YAML:
		found, err = parseYAML(c, expanded, section)
	case JSON:
		found, err = parseJSON(c, expanded, section)
	}
	if err != nil {
		return nil, err
	}
	if !found {
		c.warnf("%s: section [%s] not found", file, section)
	}
	return r.expand(c.opts, depth+1, false)
}

// expand processes the options of one file (or of the command line), in
// order: config logic decides which of them are added (logic.go); the
// include, ini, xml, yaml and json keys are replaced by the options of the
// files they name; set K=V becomes option K; the files of inherit keys are
// read last and placed before everything else. depth is the nesting level
// of those files; main says whether the ini/xml/yaml/json keys name main
// configs (command line).
func (r *run) expand(raw []Option, depth int, main bool) ([]Option, error) {
	x := &expansion{depth: depth, main: main, out: make([]Option, 0, len(raw))}
	for _, o := range raw {
		if err := r.admit(x, o); err != nil {
			return nil, err
		}
	}
	if len(x.inherits) == 0 {
		return x.out, nil
	}
	var pre []Option
	for i := range x.inherits {
		o := &x.inherits[i]
		format, err := formatByName(o)
		if err != nil {
			return nil, err
		}
		sub, err := r.loadName(format, o.Value, depth, false, o)
		if err != nil {
			return nil, err
		}
		pre = append(pre, sub...)
	}
	return append(pre, x.out...), nil
}

// expansion is what expand gathers from one list of options.
type expansion struct {
	depth    int
	main     bool
	out      []Option
	inherits []Option
}

// admit reads one option the way uWSGI's add_exported_option does: an end
// key closes the open block; inside a block, the block decides which copies
// of the option are added; otherwise the option is added.
func (r *run) admit(x *expansion, o Option) error {
	if r.logic.running == 0 {
		if endKeys[o.Key] {
			r.closeBlock()
			r.logic.record(o)
			return nil
		}
		if b := r.logic.block; b != nil {
			copies, err := r.through(b, o)
			if err != nil {
				return err
			}
			r.logic.running++
			defer func() { r.logic.running-- }()
			for _, c := range copies {
				if err := r.add(x, c); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return r.add(x, o)
}

// add adds one option: a logic key opens its block, set, include and the
// format keys are acted on at once, inherit is deferred.
func (r *run) add(x *expansion, o Option) error {
	r.logic.record(o)
	if kind, ok := logicKinds[o.Key]; ok {
		return r.openBlock(kind, o)
	}
	if endKeys[o.Key] {
		return nil // inside a block's options: ignored, as in uWSGI
	}
	switch o.Key {
	case "inherit":
		x.inherits = append(x.inherits, o)
		return nil
	case "set":
		k, v, ok := strings.Cut(o.Value, "=")
		if !ok || k == "" {
			return &Error{File: o.File, Line: o.Line, Key: "set", Err: fmt.Errorf("%q is not KEY=VALUE", o.Value),
				Hint: "use set = key=value"}
		}
		// As in uWSGI, the new option is read like any other: set =
		// ini=FILE loads FILE.
		return r.add(x, Option{Key: k, Value: v, File: o.File, Line: o.Line})
	}
	format, isLoad := FormatFlag(o.Key)
	if !isLoad && o.Key != "include" {
		x.out = append(x.out, o)
		return nil
	}
	if !isLoad {
		var err error
		if format, err = formatByName(&o); err != nil {
			return err
		}
	}
	sub, err := r.loadName(format, o.Value, x.depth, x.main && isLoad, &o)
	if err != nil {
		return err
	}
	x.out = append(x.out, sub...)
	return nil
}

// formatByName picks the format of the file an include or inherit option
// names, by its suffix.
func formatByName(o *Option) (Format, error) {
	if f, ok := FormatOf(o.Value); ok {
		return f, nil
	}
	if o.Value == "" {
		return 0, &Error{File: o.File, Line: o.Line, Key: o.Key, Err: errors.New("no config file named")}
	}
	return 0, &Error{File: o.File, Line: o.Line, Key: o.Key,
		Err:  fmt.Errorf("cannot tell the format of %q", o.Value),
		Hint: "name it .ini, .xml, .yaml, .yml, .json or .js"}
}
