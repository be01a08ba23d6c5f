package config

import (
	"errors"
	"fmt"
	"strings"
)

// Args builds a config from a uWSGI-style command line, without argv[0]:
//
//   - --KEY VALUE, --KEY=VALUE, or a bare --KEY (when followed by another
//     --option or by the end) is option KEY (a bare flag has value "");
//   - --ini F, --xml F, --yaml F (--yml), --json F (--js) load F in that
//     format; F may be "emperor://NAME", fetched with Loader.Emperor;
//   - --include F loads F in the format its suffix names;
//   - --set K=V adds option K with value V;
//   - --inherit F is deferred: F's options are placed before everything
//     else once the whole command line has been read.
//
// Options from files take the place of the flag that loaded them, so the
// result is in command-line order. Only "--" starts an option: an argument
// that does not follow a --KEY waiting for its value is refused as an
// *Error whose Key is that argument. Options from the command line have
// File "" and Line 0. Magic variables are not expanded in argument values.
func (l *Loader) Args(args []string) (*Config, error) {
	raw := make([]Option, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") || a == "--" {
			return nil, &Error{Key: a, Err: errors.New("unexpected argument"),
				Hint: "a value must follow its --option"}
		}
		name, value, inline := strings.Cut(a[2:], "=")
		if name == "" {
			return nil, &Error{Key: a, Err: errors.New("option without a name")}
		}
		if !inline && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			i++
			value = args[i]
		}
		if name == "set" {
			k, v, ok := strings.Cut(value, "=")
			if !ok || k == "" {
				return nil, &Error{Key: "set", Err: fmt.Errorf("%q is not KEY=VALUE", value),
					Hint: "use --set key=value"}
			}
			raw = append(raw, Option{Key: k, Value: v})
			continue
		}
		raw = append(raw, Option{Key: name, Value: value})
	}
	r := l.newRun()
	opts, err := r.expand(raw, 0, true)
	if err != nil {
		return nil, err
	}
	return &Config{Options: opts}, nil
}
