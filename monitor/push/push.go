// Package push is what the message-driven monitors (amqp://, zmq://) share:
// the checks a pushed name, path or config must pass, fetching http(s)
// configs off the monitor's goroutine, and the desired state those
// messages build up, kept in a journal so that it survives an Emperor
// restart.
//
// A push source says only what changed; uWSGI therefore loses a pushed
// vassal when it forgets it (bug B18). Here the monitor remembers every
// vassal it asked for, replays that set at start, and the core respawns
// what crashes.
package push

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/monitor"
)

const (
	// DefaultFetchTimeout bounds an http(s) config fetch when the
	// monitor's settings give no timeout.
	DefaultFetchTimeout = 10 * time.Second
	// MaxConfig is the largest config text accepted from a message or a
	// URL. A real uWSGI vassal reads at most 65535 bytes from a config
	// frame; our vassal takes extended frames.
	MaxConfig = 1 << 20
)

// Rules are the restrictions a host puts on what it accepts from pushes
// (emperor-push-allowed-dir, emperor-push-name-pattern) and the extensions
// that make a vassal name.
type Rules struct {
	// AllowedDirs, when not empty, are the only directories (and their
	// subdirectories) config paths may name; symlinks are resolved first.
	AllowedDirs []string
	// NamePattern, when set, must match the whole base name of every
	// pushed vassal.
	NamePattern *regexp.Regexp
	// BaseDir resolves relative names (zmq file-based touch): the first
	// allowed directory, else the working directory.
	BaseDir string
	// Extensions are extra vassal extensions (emperor-extra-extension).
	Extensions []string
}

// Settings are what the Emperor's options set for every push monitor
// (amqp://, zmq://); each scheme's settings embed them.
type Settings struct {
	// StateDir holds the journal of pushed vassals (emperor-state-dir);
	// empty: pushed vassals do not survive an Emperor restart.
	StateDir string
	// AllowedDirs restrict config paths in messages to these directories
	// (emperor-push-allowed-dir); empty: any path.
	AllowedDirs []string
	// NamePattern is a regular expression every pushed vassal's base name
	// must match in full (emperor-push-name-pattern); empty: any.
	NamePattern string
}

var _ monitor.Settings = (*Settings)(nil)

// Options lists the Emperor options that set s.
func (s *Settings) Options() []config.Setting {
	return []config.Setting{
		config.StringSetting("emperor-state-dir", "directory of the journal that keeps vassals pushed over amqp:// and zmq:// across restarts", &s.StateDir),
		config.ListSetting("emperor-push-allowed-dir", "amqp://, zmq://: accept config paths only under this directory (repeatable)", &s.AllowedDirs, ""),
		config.StringSetting("emperor-push-name-pattern", "amqp://, zmq://: a regexp every pushed vassal's base name must match in full", &s.NamePattern),
	}
}

// NewRules builds the rules from the monitor options and the push
// settings.
func NewRules(opts monitor.Options, s Settings) (Rules, error) {
	r := Rules{Extensions: opts.Extensions}
	for _, d := range s.AllowedDirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return r, fmt.Errorf("emperor-push-allowed-dir %q: %w", d, err)
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		r.AllowedDirs = append(r.AllowedDirs, abs)
	}
	if s.NamePattern != "" {
		re, err := regexp.Compile(`^(?:` + s.NamePattern + `)$`)
		if err != nil {
			return r, fmt.Errorf("emperor-push-name-pattern %q: %w", s.NamePattern, err)
		}
		r.NamePattern = re
	}
	if len(r.AllowedDirs) > 0 {
		r.BaseDir = r.AllowedDirs[0]
	} else if wd, err := os.Getwd(); err == nil {
		r.BaseDir = wd
	}
	return r, nil
}

// CheckName checks a vassal name given by a message (a routing key, a zmq
// name, a URL's base name): printable, a known extension, at most 254
// bytes, and matching the name pattern.
func (r *Rules) CheckName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if !utf8.ValidString(name) || strings.ContainsFunc(name, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return fmt.Errorf("name %q has control characters or is not UTF-8", Quote(name))
	}
	base := path.Base(name)
	if !monitor.IsVassalName(base, r.Extensions) || len(name) > monitor.MaxNameLen {
		return fmt.Errorf("name %q is not a vassal config name (a known extension, at most %d bytes)", Quote(name), monitor.MaxNameLen)
	}
	if r.NamePattern != nil && !r.NamePattern.MatchString(base) {
		return fmt.Errorf("name %q does not match emperor-push-name-pattern %s", base, r.NamePattern)
	}
	return nil
}

// CheckInlineName checks a name that carries config text: a plain name, no
// directory part.
func (r *Rules) CheckInlineName(name string) error {
	if strings.Contains(name, "/") {
		return fmt.Errorf("name %q of an inline config must not contain '/'", Quote(name))
	}
	return r.CheckName(name)
}

// CheckConfig checks config text from a message or a URL.
func CheckConfig(b []byte) error {
	if len(b) > MaxConfig {
		return fmt.Errorf("config of %d bytes is larger than the limit of %d", len(b), MaxConfig)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return errors.New("config text contains a NUL byte (binary data?)")
	}
	return nil
}

// Resolve turns a pushed config path into an absolute, clean one, relative
// names against BaseDir, and checks its name and that it lies in an
// allowed directory. It does not require the file to exist.
func (r *Rules) Resolve(p string) (string, error) {
	if err := r.CheckName(p); err != nil {
		return "", err
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(r.BaseDir, p)
	}
	p = filepath.Clean(p)
	if len(r.AllowedDirs) == 0 {
		return p, nil
	}
	real := p
	if rp, err := filepath.EvalSymlinks(p); err == nil {
		real = rp
	} else if rd, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		real = filepath.Join(rd, filepath.Base(p))
	}
	for _, d := range r.AllowedDirs {
		if rel, err := filepath.Rel(d, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return p, nil
		}
	}
	return "", fmt.Errorf("path %s is outside every emperor-push-allowed-dir (%s)", p, strings.Join(r.AllowedDirs, ", "))
}

// FileOwner returns the owner of a regular file, or an error when path is
// not one (missing, a directory, ...).
func FileOwner(p string) (*monitor.Owner, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, nil
	}
	return &monitor.Owner{UID: st.Uid, GID: st.Gid}, nil
}

// Quote shortens s for a log line: at most 80 bytes.
func Quote(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// IsURL reports whether s is an http(s) URL config.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// Fetched is the answer to a Fetch.
type Fetched struct {
	// Name is the URL, which names the vassal.
	Name string
	// Seq is the sequence number Fetch was given, so that a late answer
	// to an older message can be dropped.
	Seq uint64
	// Status is the HTTP status (0 when the request failed).
	Status int
	Config []byte
	Err    error
}

// Fetch gets url with a timeout and a size cap and sends the answer on
// out, unless ctx ends first. Run it in its own goroutine.
func Fetch(ctx context.Context, client *http.Client, url string, seq uint64, out chan<- Fetched) {
	res := Fetched{Name: url, Seq: seq}
	res.Status, res.Config, res.Err = get(ctx, client, url)
	select {
	case out <- res:
	case <-ctx.Done():
	}
}

func get(ctx context.Context, client *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxConfig+1))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if err := CheckConfig(b); err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, b, nil
}

// NewClient returns the HTTP client for config fetches: an overall
// timeout (emperor-push-fetch-timeout; zero: DefaultFetchTimeout) and no
// cookies.
func NewClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	return &http.Client{Timeout: timeout}
}

// hash is the Version.Hash of inline config text.
func hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
