package emperor

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/capabilities"
	"github.com/emperor-dev/emperor/cgroup"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/namespaces"
	"github.com/emperor-dev/emperor/protocol"
)

// Spec is everything needed to start one vassal: a value, built from the
// monitor event and the Emperor's options, turned into a process in exactly
// one place (startProcess).
type Spec struct {
	Key  monitor.Key
	Argv []string
	// Binaries are the programs the vassal may run, in the order they are
	// tried (wrapper.go); the spawner puts the first that can run in
	// Argv[0] and says which in Ran. Empty: Argv[0] as it is.
	Binaries []binary
	Ran      binary
	// NameAt is the index in Argv of the config's name (NAME in uWSGI's
	// "FLAG NAME"). With MagicExec the spawner makes it exec://PATH when
	// the config file at ExecPath is executable (magicexec.go).
	NameAt    int
	MagicExec bool
	ExecPath  string
	// Dir is the vassal's working directory: its config's directory, so the
	// Emperor itself never changes directory (uWSGI's bug B16).
	Dir string
	// Config is the inline config text pushed over the config channel; nil
	// for file configs.
	Config []byte
	// Credential, in tyrant mode, is who the vassal runs as.
	Credential *syscall.Credential
	// OpenOnce, in tyrant mode for a config file at ConfigPath: the
	// spawner opens it once and takes the text, the directory and the
	// credential from that one open file (tyrantfile.go), following a
	// symlink entry unless NoFollow; ConfigLimit bounds the text. Owner is
	// then who it found the file to belong to.
	OpenOnce    bool
	NoFollow    bool
	ConfigLimit int
	Owner       *monitor.Owner
	// Namespaces to create; with a user namespace, the vassal's root maps to
	// HostUID and HostGID.
	Namespaces       namespaces.Set
	HostUID, HostGID int

	// Isolation beyond SysProcAttr (isolation.go); any of these but Cgroup
	// sends the spawn through the init stage.
	//
	// LimitCaps keeps only Caps (emperor-cap).
	LimitCaps bool
	Caps      capabilities.Set
	// Hostname is set in a new uts namespace (the vassal's name).
	Hostname string
	// Cgroup puts the vassal in a cgroup of its own with CgroupLimits,
	// lowered by what the [emperor] section of the config at ConfigPath
	// (or of the inline Config) asks for (resolveSpec).
	Cgroup       bool
	CgroupLimits cgroup.Limits
	ConfigPath   string
	// InitGroups: the spawner fills Credential.Groups from the group
	// database (emperor-tyrant-initgroups).
	InitGroups bool
	// Hooks are exec-as-vassal commands, run in the new namespaces before
	// the privileges are dropped; HookTimeout bounds each.
	Hooks       []string
	HookTimeout time.Duration
}

// vassalEnv derives the environment every vassal gets from the Emperor's
// (reference 0.3): UWSGI_VASSAL_xxx becomes UWSGI_xxx (replacing any existing
// value), and UWSGI_RELOADS and NOTIFY_SOCKET are removed.
//
// Deviation from uWSGI (bug B27): the Emperor's own protocol and config
// variables (UWSGI_EMPEROR*, UWSGI_VASSALS_DIR, UWSGI_BROODLORD_NUM) are not
// passed on. An Emperor configured by UWSGI_EMPEROR=... would otherwise make
// every vassal an Emperor of the same directory: a fork bomb.
func vassalEnv(env []string) []string {
	out := make([]string, 0, len(env)+2)
	rewritten := map[string]string{}
	var order []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == protocol.EnvReloads, k == protocol.EnvNotifySocket,
			k == protocol.EnvBroodlordNum, k == "UWSGI_VASSALS_DIR",
			k == "UWSGI_EMPEROR", strings.HasPrefix(k, "UWSGI_EMPEROR_"):
			continue
		case strings.HasPrefix(k, protocol.EnvVassalPrefix) && len(k) > len(protocol.EnvVassalPrefix):
			nk := "UWSGI_" + k[len(protocol.EnvVassalPrefix):]
			if _, dup := rewritten[nk]; !dup {
				order = append(order, nk)
			}
			rewritten[nk] = v
			continue
		}
		out = append(out, kv)
	}
	if len(rewritten) > 0 {
		kept := out[:0]
		for _, kv := range out {
			k, _, _ := strings.Cut(kv, "=")
			if _, replaced := rewritten[k]; !replaced {
				kept = append(kept, kv)
			}
		}
		out = kept
		for _, k := range order {
			out = append(out, k+"="+rewritten[k])
		}
	}
	return out
}

// runAs makes the vassal run as cred: as the owner mapped to root in its
// user namespace, or through the spawn's credential.
func (s *Spec) runAs(cred *syscall.Credential) {
	if s.Namespaces.Has(unix.CLONE_NEWUSER) {
		s.HostUID, s.HostGID = int(cred.Uid), int(cred.Gid)
	} else {
		s.Credential = cred
	}
}

// vassalArgv builds the command line exactly as uWSGI does (reference 2.4):
//
//	binary [--inherit T]... [--include I]... [--set K=V]... FLAG NAME [--inherit T]... [--include I]...
//
// FLAG is chosen by the name's extension; NAME is the config's file name
// (the vassal starts in its directory) or emperor://NAME for inline configs.
func vassalArgv(o *Options, ev *monitor.Event, inline bool) []string {
	argv := make([]string, 0, 3+2*(len(o.InheritBefore)+len(o.IncludeBefore)+len(o.VassalSet)+len(o.Inherit)+len(o.Include)))
	argv = append(argv, cmp.Or(o.Wrapper, o.Binary))
	for _, t := range o.InheritBefore {
		argv = append(argv, "--inherit", t)
	}
	for _, t := range o.IncludeBefore {
		argv = append(argv, "--include", t)
	}
	for _, kv := range o.VassalSet {
		argv = append(argv, "--set", kv)
	}
	name := filepath.Base(ev.Key.Name)
	if inline {
		name = protocol.EmperorScheme + ev.Key.Name
	}
	argv = append(argv, monitor.ConfigFlag(ev.Key.Name, o.ExtraExtensions), name) // at nameIndex(o)
	for _, t := range o.Inherit {
		argv = append(argv, "--inherit", t)
	}
	for _, t := range o.Include {
		argv = append(argv, "--include", t)
	}
	return argv
}

// nameIndex is where vassalArgv puts the config's name.
func nameIndex(o *Options) int {
	return 2 + 2*(len(o.InheritBefore)+len(o.IncludeBefore)+len(o.VassalSet))
}

// Validate runs the checks a Spec must pass before any fork, in order;
// each failure names the option and the rule.
func (s *Spec) Validate() error {
	userNS := s.Namespaces.Has(unix.CLONE_NEWUSER)
	switch {
	case len(s.Argv) == 0 || s.Argv[0] == "":
		return errors.New("binary-path: no vassal binary")
	case s.Credential != nil && (s.Credential.Uid == 0 || s.Credential.Gid == 0):
		return fmt.Errorf("emperor-tyrant: refusing to run as uid %d gid %d (root)", s.Credential.Uid, s.Credential.Gid)
	case userNS && (s.HostUID < 0 || s.HostGID < 0):
		return errors.New("emperor-use-clone = user: no uid/gid to map the vassal's root to")
	case s.LimitCaps && !userNS && os.Geteuid() != 0:
		return fmt.Errorf("emperor-cap: the Emperor runs as uid %d, so it cannot drop a vassal's bounding set (run it as root, or add user to emperor-use-clone)", os.Geteuid())
	case s.Hostname != "" && !s.Namespaces.Has(unix.CLONE_NEWUTS):
		return errors.New("hostname without a uts namespace would rename the host (add uts to emperor-use-clone)")
	}
	return nil
}
