package monitor

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/emperor-dev/emperor/config"
)

// A Factory builds a monitor from the part of its URI after "scheme://".
type Factory func(arg string, opts Options) (Monitor, error)

// A Scheme is what a monitor package registers: its URI scheme, its
// factory and, when its monitors read settings of their own, where those
// settings come from. The Emperor learns a scheme's options from here, so a
// new monitor touches neither this package nor cmd/emperor.
type Scheme struct {
	// Name is the URI scheme, without "://".
	Name string
	// New builds a monitor of the scheme.
	New Factory
	// Settings, when not nil, returns a new value of the scheme's own
	// settings at their defaults (see Settings and SettingsOf).
	Settings func() Settings
}

// Settings are a scheme's own settings: a struct of the monitor's package
// that the Emperor's options set, one value shared by every monitor of the
// scheme (emperor-pg-channel for pg://).
type Settings interface {
	// Options lists the Emperor options that set these settings, each
	// writing into this value. Names are uWSGI-style, without "--".
	Options() []config.Setting
}

// registry maps schemes to their registrations. It is filled by init
// functions of the monitor subpackages and never changed afterwards.
var registry = map[string]Scheme{}

// Register makes a scheme available to Open. It is meant to be called from
// an init function and panics on a duplicate scheme, a nil factory or an
// option whose help differs from that of another scheme reading the same
// option: each is a programming error.
func Register(s Scheme) {
	if _, dup := registry[s.Name]; dup {
		panic("monitor: scheme registered twice: " + s.Name)
	}
	if s.New == nil {
		panic("monitor: scheme without a factory: " + s.Name)
	}
	registry[s.Name] = s
	if _, err := mergeOptions(NewSettings()); err != nil {
		panic("monitor: scheme " + s.Name + ": " + err.Error())
	}
}

// Schemes lists the registered schemes, sorted.
func Schemes() []string {
	s := make([]string, 0, len(registry))
	for k := range registry {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// SchemeSettings holds the settings of each scheme, by scheme name. A
// scheme missing from it runs with its defaults.
type SchemeSettings map[string]Settings

// NewSettings returns the settings of every registered scheme that has
// any, at their defaults, for the Emperor's options to set (see Options)
// and Open to hand to the monitors (through Options.Settings).
func NewSettings() SchemeSettings {
	ss := SchemeSettings{}
	for name, s := range registry {
		if s.Settings != nil {
			ss[name] = s.Settings()
		}
	}
	return ss
}

// Options lists the Emperor options of every scheme in ss, sorted by name.
// An option several schemes read (emperor-max-removals: pg://, mongodb://)
// appears once and sets them all.
func (ss SchemeSettings) Options() []config.Setting {
	opts, _ := mergeOptions(ss)
	return opts
}

// mergeOptions lists the options of ss by name, merging same-named ones;
// it refuses two with different help, which would be two meanings of one
// name.
func mergeOptions(ss SchemeSettings) ([]config.Setting, error) {
	byName := map[string]*config.Setting{}
	var names []string
	for _, scheme := range slices.Sorted(maps.Keys(ss)) {
		for _, o := range ss[scheme].Options() {
			m, seen := byName[o.Name]
			if !seen {
				byName[o.Name] = &o
				names = append(names, o.Name)
				continue
			}
			if m.Help != o.Help {
				return nil, fmt.Errorf("option %s: help %q differs from another scheme's %q", o.Name, o.Help, m.Help)
			}
			first, also := m.Set, o.Set
			m.Set = func(v string) error {
				if err := first(v); err != nil {
					return err
				}
				return also(v)
			}
		}
	}
	sort.Strings(names)
	out := make([]config.Setting, len(names))
	for i, n := range names {
		out[i] = *byName[n]
	}
	return out, nil
}

// SettingsOf returns the settings of scheme that opts carries, or the
// scheme's defaults when it carries none. A factory calls it with its own
// scheme and settings type; any other type is an error.
func SettingsOf[S Settings](opts Options, scheme string) (S, error) {
	var zero S
	v, ok := opts.Settings[scheme]
	if !ok {
		r, registered := registry[scheme]
		if !registered || r.Settings == nil {
			return zero, fmt.Errorf("monitor scheme %q has no settings", scheme)
		}
		v = r.Settings()
	}
	s, ok := v.(S)
	if !ok {
		return zero, fmt.Errorf("monitor scheme %q: settings are a %T, want a %T", scheme, v, zero)
	}
	return s, nil
}

var schemeRE = regexp.MustCompile(`^([a-z][a-z0-9+.-]*)://`)

// Choose decides which monitor a --emperor VALUE selects, as uWSGI does
// (reference 3.1): a registered "scheme://" prefix selects that scheme;
// otherwise a value naming exactly one existing directory is a dir, a bad
// pattern is a dir too, and anything else is a glob (so a path that does not
// exist yet is a glob that matches nothing until it does). It returns the
// scheme and the argument after "scheme://".
//
// Unlike uWSGI, a value with an unknown "scheme://" prefix is an error rather
// than a glob that silently matches nothing.
func Choose(value string) (scheme, arg string, err error) {
	if m := schemeRE.FindStringSubmatch(value); m != nil {
		if _, ok := registry[m[1]]; !ok {
			return "", "", fmt.Errorf("emperor %q: unknown monitor scheme %q (known: %s)", value, m[1], strings.Join(Schemes(), ", "))
		}
		return m[1], value[len(m[0]):], nil
	}
	matches, err := filepath.Glob(value)
	if err != nil {
		return "dir", value, nil
	}
	if len(matches) == 1 {
		if fi, err := os.Stat(matches[0]); err == nil && fi.IsDir() {
			return "dir", matches[0], nil
		}
	}
	return "glob", value, nil
}

// Open builds the monitor for a --emperor VALUE (see Choose).
func Open(value string, opts Options) (Monitor, error) {
	scheme, arg, err := Choose(value)
	if err != nil {
		return nil, err
	}
	r, ok := registry[scheme]
	if !ok {
		return nil, fmt.Errorf("emperor %q: monitor scheme %q is not built in", value, scheme)
	}
	m, err := r.New(arg, opts)
	if err != nil {
		return nil, fmt.Errorf("emperor %q: %w", value, err)
	}
	return m, nil
}
