package config

import (
	"errors"
	"fmt"
	"strings"
)

// Args builds a config from a uWSGI-style command line, without argv[0],
// read as uWSGI 2.0 reads it with getopt_long:
//
//   - first the UWSGI_* variables of Loader.Environ (see EnvOptions);
//   - --KEY=VALUE, --KEY VALUE, or a bare --KEY (a flag, value ""). Whether
//     the next argument is KEY's value depends on KEY: for the options in
//     uWSGI's short-option table, the config logic keys and the keys that
//     load files it is uWSGI's rule (see ArgKind); for any other KEY it is
//     Loader.ArgKind's answer, or else the next argument is the value
//     unless it starts with "--" or is a cluster of short options;
//   - uWSGI's short options (see ShortOptions): -M, -s VALUE, -sVALUE, and
//     clusters such as -ML or -MLs VALUE; an unknown letter is refused;
//   - --ini F, --xml F (--xmlconfig, -x), --yaml F (--yml, -y), --json F
//     (--js, -j) load F in that format; F may be "emperor://NAME", fetched
//     with Loader.Emperor; --include F loads F in the format its suffix
//     names; --set K=V (-S) adds option K with value V; --inherit F is
//     deferred: F's options are placed before everything else once the
//     whole command line has been read;
//   - an argument that is not an option nor an option's value, and every
//     argument after "--", names a config file loaded by its suffix (.ini,
//     .xml, .yaml, .yml, .json, .js) after all the options, as getopt
//     permutes them: "emperor app.ini --master" is "--master --ini
//     app.ini". An argument starting with '[' is skipped, as in uWSGI;
//     any other suffix is refused;
//   - config logic (if-env, for, ... endif) works across all of it, as in
//     files.
//
// Options from files take the place of the flag that loaded them. Options
// from the command line have File "" and Line 0; those from the
// environment have File "$UWSGI_NAME". Magic variables are not expanded in
// argument or environment values.
func (l *Loader) Args(args []string) (*Config, error) {
	raw := EnvOptions(l.Environ)
	var bare []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			bare = append(bare, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			o, used, err := l.longOption(a, args[i+1:])
			if err != nil {
				return nil, err
			}
			i += used
			raw = append(raw, o)
		case len(a) > 1 && a[0] == '-':
			opts, used, err := shortCluster(a, args[i+1:])
			if err != nil {
				return nil, err
			}
			i += used
			raw = append(raw, opts...)
		default:
			bare = append(bare, a)
		}
	}
	for _, a := range bare {
		if strings.HasPrefix(a, "[") {
			continue
		}
		if _, ok := FormatOf(a); !ok {
			return nil, &Error{Key: a, Err: fmt.Errorf("cannot load configuration from %q", a),
				Hint: "an argument that is not an option names a .ini, .xml, .yaml, .yml, .json or .js file"}
		}
		raw = append(raw, Option{Key: "include", Value: a})
	}
	r := l.newRun()
	opts, err := r.expand(raw, 0, true)
	if err != nil {
		return nil, err
	}
	r.finishLogic()
	return &Config{Options: opts}, nil
}

// longOption reads "--NAME[=VALUE]" and, when NAME takes it, its value from
// rest; used is how many arguments of rest it took.
func (l *Loader) longOption(a string, rest []string) (o Option, used int, err error) {
	name, value, inline := strings.Cut(a[2:], "=")
	if name == "" {
		return o, 0, &Error{Key: a, Err: errors.New("option without a name")}
	}
	o = Option{Key: name, Value: value}
	if inline {
		return o, 0, nil
	}
	switch l.argKind(name) {
	case NoArg, OptionalArg:
		return o, 0, nil
	case RequiredArg:
		if len(rest) == 0 {
			return o, 0, &Error{Key: name, Err: errors.New("needs a value"), Hint: "use --" + name + " VALUE"}
		}
		o.Value = rest[0]
		return o, 1, nil
	}
	if len(rest) > 0 && !looksLikeOption(rest[0]) {
		o.Value = rest[0]
		return o, 1, nil
	}
	return o, 0, nil
}

// looksLikeOption reports whether a, following an option of unknown kind,
// is another option rather than its value: it starts with "--", or it is a
// cluster of uWSGI's short options such as -M or -ML.
func looksLikeOption(a string) bool {
	if strings.HasPrefix(a, "--") {
		return true
	}
	if len(a) < 2 || a[0] != '-' {
		return false
	}
	for i := 1; i < len(a); i++ {
		s, ok := shortOptions[a[i]]
		if !ok {
			return false
		}
		if s.Kind != NoArg {
			return true // the rest is that option's value
		}
	}
	return true
}

// shortCluster reads "-abc": each letter a short option; the first letter
// that takes a value takes the rest of the cluster, or else (when it
// requires one) the next argument.
func shortCluster(a string, rest []string) (opts []Option, used int, err error) {
	for i := 1; i < len(a); i++ {
		s, ok := shortOptions[a[i]]
		if !ok {
			return nil, 0, &Error{Key: "-" + string(a[i]), Err: errors.New("unknown short option"),
				Hint: "uWSGI's short options are -" + shortLetters()}
		}
		o := Option{Key: s.Name}
		switch s.Kind {
		case NoArg:
			opts = append(opts, o)
			continue
		case OptionalArg:
			o.Value = a[i+1:]
		case RequiredArg:
			switch {
			case i+1 < len(a):
				o.Value = a[i+1:]
			case len(rest) > 0:
				o.Value, used = rest[0], 1
			default:
				return nil, 0, &Error{Key: "-" + string(a[i]),
					Err: fmt.Errorf("needs a value (-%c is --%s)", a[i], s.Name)}
			}
		}
		return append(opts, o), used, nil
	}
	return opts, 0, nil
}

// argKind is Loader.ArgKind's answer for name, except for the options
// whose kind the package knows.
func (l *Loader) argKind(name string) ArgKind {
	if k, ok := knownKinds[name]; ok {
		return k
	}
	if l.ArgKind != nil {
		return l.ArgKind(name)
	}
	return ArgGuess
}
