package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/emperor-dev/emperor/internal/usergroup"
)

// DefaultVersion is what %V expands to when Env.Version is empty.
const DefaultVersion = "2.0.30-emperor"

// Env is what magic variables and $(ENV) see. Every zero field gets a
// default, computed when a Loader call (or Resolve) starts.
type Env struct {
	// Getenv looks up $(NAME) in Resolve; default os.LookupEnv.
	Getenv func(string) (string, bool)
	// Hostname is %h; default os.Hostname().
	Hostname string
	// Version is %V; default DefaultVersion.
	Version string
	// Binary is %b; default os.Executable().
	Binary string
	// Cwd is %v, and the directory relative config names are made absolute
	// against for %p and friends; default os.Getwd().
	Cwd string
	// CPUs is %k; default runtime.NumCPU().
	CPUs int
	// Now gives %t (unix seconds) and %T (unix microseconds); default the
	// time the Loader was made by NewLoader, otherwise the time the call
	// started.
	Now time.Time
	// UID and User are %u and %U; GID and Group are %g and %G. Defaults:
	// the process's real ids and their names ("" when a name is unknown).
	UID, User, GID, Group string
}

// withDefaults returns e with every zero field filled in.
func (e Env) withDefaults() Env {
	if e.Getenv == nil {
		e.Getenv = os.LookupEnv
	}
	if e.Hostname == "" {
		e.Hostname, _ = os.Hostname()
	}
	if e.Version == "" {
		e.Version = DefaultVersion
	}
	if e.Binary == "" {
		e.Binary, _ = os.Executable()
	}
	if e.Cwd == "" {
		e.Cwd, _ = os.Getwd()
	}
	if e.CPUs == 0 {
		e.CPUs = runtime.NumCPU()
	}
	if e.Now.IsZero() {
		e.Now = time.Now()
	}
	if e.UID == "" {
		e.UID = strconv.Itoa(os.Getuid())
	}
	if uid, err := strconv.Atoi(e.UID); err == nil && e.User == "" {
		e.User, _ = usergroup.UserName(uid) // "" without a passwd entry
	}
	if e.GID == "" {
		e.GID = strconv.Itoa(os.Getgid())
	}
	if gid, err := strconv.Atoi(e.GID); err == nil && e.Group == "" {
		e.Group, _ = usergroup.GroupName(gid) // "" without a group entry
	}
	return e
}

// fileVars are the per-file magic variables of one config file.
type fileVars struct {
	o, p, s, d, c, e, n, x, i, j string
	comps                        [10]string // %0 .. %9
}

// newFileVars computes the magic variables of config file `file`, named
// `name` by the user (with section `sect`), seen from cwd.
//
// %p is absolute: a regular file is fully resolved (realpath); a symlink
// keeps its own path, made absolute against cwd.
func newFileVars(name, file, sect, cwd string) *fileVars {
	fv := &fileVars{o: name, x: sect}
	abs := file
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(cwd, abs)
	}
	abs = filepath.Clean(abs)
	fv.p = abs
	fi, err := os.Lstat(abs)
	if err == nil {
		fv.i = inodeOf(fi)
		if fi.Mode()&fs.ModeSymlink == 0 {
			if rp, err := filepath.EvalSymlinks(abs); err == nil {
				fv.p = rp
			}
		}
	}
	fv.j = fmt.Sprintf("%08x", djb33x(fv.p))

	dir, base := filepath.Split(fv.p)
	fv.s = base
	fv.d = dir
	if !strings.HasSuffix(fv.d, "/") {
		fv.d += "/"
	}
	trimmed := strings.TrimRight(dir, "/")
	fv.c = filepath.Base(trimmed)
	if trimmed == "" {
		fv.c = ""
	}
	k := 0
	for _, part := range strings.Split(trimmed, "/") {
		if part == "" {
			continue
		}
		if k == len(fv.comps) {
			break
		}
		fv.comps[k] = part
		k++
	}
	if dot := strings.LastIndexByte(base, '.'); dot >= 0 {
		fv.n, fv.e = base[:dot], base[dot+1:]
	} else {
		fv.n = base
	}
	return fv
}

// djb33x is the hash behind %j: h = h*33 ^ c, from 5381, on 32 bits.
func djb33x(s string) uint32 {
	h := uint32(5381)
	for i := 0; i < len(s); i++ {
		h = (h * 33) ^ uint32(s[i])
	}
	return h
}

// magic expands the magic variables in text, for the file described by fv,
// with frozen (possibly nil) giving the uppercase forms. The result may not
// grow beyond limit bytes; ok is false if it would.
func magic(text []byte, fv, frozen *fileVars, env *Env, limit int64) (out []byte, ok bool) {
	if fv == nil {
		fv = &fileVars{}
	}
	if frozen == nil {
		frozen = &fileVars{}
	}
	out = make([]byte, 0, min(int64(len(text)), limit))
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '%' || i+1 >= len(text) {
			out = append(out, c)
		} else {
			out = append(out, magicValue(text[i+1], fv, frozen, env)...)
			i++
		}
		if int64(len(out)) > limit {
			return nil, false
		}
	}
	return out, true
}

// magicValue is what "%" followed by c expands to.
func magicValue(c byte, fv, frozen *fileVars, env *Env) string {
	switch c {
	case '%':
		return "%"
	case '(':
		return "%("
	case '[':
		return "\x1b"
	case 'o':
		return fv.o
	case 'p':
		return fv.p
	case 's':
		return fv.s
	case 'd':
		return fv.d
	case 'c':
		return fv.c
	case 'e':
		return fv.e
	case 'n':
		return fv.n
	case 'x':
		return fv.x
	case 'i':
		return fv.i
	case 'j':
		return fv.j
	case 'O':
		return frozen.o
	case 'P':
		return frozen.p
	case 'S':
		return frozen.s
	case 'D':
		return frozen.d
	case 'C':
		return frozen.c
	case 'E':
		return frozen.e
	case 'N':
		return frozen.n
	case 'X':
		return frozen.x
	case 'I':
		return frozen.i
	case 'J':
		return frozen.j
	case 'b':
		return env.Binary
	case 'v':
		return env.Cwd
	case 'h':
		return env.Hostname
	case 't':
		return strconv.FormatInt(env.Now.Unix(), 10)
	case 'T':
		return strconv.FormatInt(env.Now.UnixMicro(), 10)
	case 'V':
		return env.Version
	case 'k':
		return strconv.Itoa(env.CPUs)
	case 'u':
		return env.UID
	case 'U':
		return env.User
	case 'g':
		return env.GID
	case 'G':
		return env.Group
	}
	if c >= '0' && c <= '9' {
		return fv.comps[c-'0']
	}
	return ""
}
