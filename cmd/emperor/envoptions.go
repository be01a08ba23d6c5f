package main

import (
	"slices"
	"strings"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/internal/uwsgiopts"
	"github.com/emperor-dev/emperor/protocol"
)

// withoutEmperorOptions drops the UWSGI_* variables the Emperor read as its
// own options (config.EnvOption), keeping UWSGI_VASSAL_* (meant for the
// vassals) and the variables uWSGI never reads as options. Deviation from
// uWSGI (bug B27): uWSGI passes them all on, so an Emperor started as
// UWSGI_EMPEROR=/etc/vassals makes every vassal an Emperor of the same
// directory, a fork bomb.
func withoutEmperorOptions(env []string) []string {
	return slices.DeleteFunc(env, func(kv string) bool {
		_, isOption := config.EnvOption(kv)
		return isOption && !strings.HasPrefix(kv, protocol.EnvVassalPrefix)
	})
}

// emperorEnvOptions is the environment whose UWSGI_* variables the Emperor
// reads as options before its command line (config.EnvOptions), as uWSGI
// does: UWSGI_EMPEROR=/etc/vassals emperor. UWSGI_VASSAL_* are left out:
// they are meant for the vassals, and uWSGI's Emperor only keeps them as
// placeholders.
func emperorEnvOptions(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, protocol.EnvVassalPrefix)
	})
}

// uwsgiArgKind tells the command line's parser whether a long option takes
// a value, as uWSGI 2.0.21's getopt table says (internal/uwsgiopts), so
// "--master app.ini" reads app.ini as a config file, as uWSGI does. Our
// own options that uWSGI lacks are guessed: the next argument is the
// value unless it is an option.
func uwsgiArgKind(name string) config.ArgKind {
	o, ok := uwsgiopts.Lookup(name)
	if !ok {
		return config.ArgGuess
	}
	switch o.Arg {
	case uwsgiopts.NoArg:
		return config.NoArg
	case uwsgiopts.Optional:
		return config.OptionalArg
	}
	return config.RequiredArg
}
