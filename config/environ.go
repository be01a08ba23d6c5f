package config

import "strings"

// envNotOptions are the UWSGI_* variables uWSGI never reads as options:
// they carry its own process state (core/utils.c parse_sys_envs).
var envNotOptions = map[string]bool{
	"UWSGI_RELOADS":            true,
	"UWSGI_VASSALS_DIR":        true,
	"UWSGI_EMPEROR_FD":         true,
	"UWSGI_BROODLORD_NUM":      true,
	"UWSGI_EMPEROR_FD_CONFIG":  true,
	"UWSGI_EMPEROR_PROXY":      true,
	"UWSGI_JAIL_PID":           true,
	"UWSGI_ORIGINAL_PROC_NAME": true,
}

// EnvOption reads one "NAME=VALUE" environment entry the way uWSGI does
// before its command line: a variable UWSGI_SOME_THING is option
// some-thing (the name after UWSGI_ lowercased, '_' made '-'), with the
// value as it is (no magic variables). ok is false for any other variable
// and for the ones uWSGI keeps for its own state: UWSGI_RELOADS,
// UWSGI_VASSALS_DIR, UWSGI_EMPEROR_FD, UWSGI_BROODLORD_NUM,
// UWSGI_EMPEROR_FD_CONFIG, UWSGI_EMPEROR_PROXY, UWSGI_JAIL_PID and
// UWSGI_ORIGINAL_PROC_NAME. The option's File is "$NAME", so a refusal
// says which variable to fix.
func EnvOption(kv string) (o Option, ok bool) {
	name, value, hasValue := strings.Cut(kv, "=")
	if !hasValue || !strings.HasPrefix(name, "UWSGI_") || len(name) == len("UWSGI_") || envNotOptions[name] {
		return Option{}, false
	}
	key := strings.ReplaceAll(strings.ToLower(name[len("UWSGI_"):]), "_", "-")
	return Option{Key: key, Value: value, File: "$" + name}, true
}

// EnvOptions returns the options environ (as os.Environ gives it) sets
// through UWSGI_* variables, in its order; see EnvOption.
func EnvOptions(environ []string) []Option {
	var out []Option
	for _, kv := range environ {
		if o, ok := EnvOption(kv); ok {
			out = append(out, o)
		}
	}
	return out
}
