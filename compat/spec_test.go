package compat_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// programEnv is the environment a service manager gives a daemon.
var programEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}

// number is the corpus number of the case ("01", "03-argv" for the pair).
func (c corpusCase) number() string {
	n, _, _ := strings.Cut(c.file, "-")
	if strings.HasSuffix(c.file, ".argv") && hasSibling(c) {
		return n + "-argv"
	}
	return n
}

// hasSibling reports whether another case shares this case's number.
func hasSibling(c corpusCase) bool {
	n, _, _ := strings.Cut(c.file, "-")
	count := 0
	for _, o := range corpusCases {
		if strings.HasPrefix(o.file, n+"-") {
			count++
		}
	}
	return count > 1
}

// spec is the host a case runs in, with program (a path inside the host) in
// place of the argv[0] the config was written for.
func (c corpusCase) spec(corpus, program string) (hostSpec, error) {
	spec := hostSpec{
		Users:  corpusUsers,
		Dirs:   c.dirs,
		Files:  append([]hostFile(nil), c.files...),
		Env:    append(append([]string(nil), programEnv...), c.env...),
		Cwd:    c.cwd,
		Settle: int64(settle),
		Logs:   c.logs,
	}
	if spec.Cwd == "" {
		spec.Cwd = "/"
	}
	config := c.config
	var args []string
	switch filepath.Ext(c.file) {
	case ".argv":
		argv, err := readArgv(filepath.Join(corpus, c.file))
		if err != nil {
			return spec, err
		}
		args = argv[1:]
	case ".ini", ".json":
		config = c.file
		arg := c.arg
		if arg == "" {
			arg = c.at
		}
		args = []string{"--" + strings.TrimPrefix(filepath.Ext(c.file), "."), arg}
	default:
		return spec, fmt.Errorf("%s: not an .argv, .ini or .json file", c.file)
	}
	if config != "" {
		if c.at == "" {
			return spec, fmt.Errorf("%s: no path for its config %s", c.file, config)
		}
		data, err := os.ReadFile(filepath.Join(corpus, config))
		if err != nil {
			return spec, err
		}
		spec.Files = append(spec.Files, hostFile{Path: c.at, Data: string(data), Mode: 0o644})
	}
	if c.probe != "" {
		// Owned by an account, not root: a tyrant Emperor runs a vassal
		// as its file's owner and refuses root's.
		owner := 2901
		if strings.HasPrefix(c.probe, "/home/cheshire/") {
			owner = 2905
		}
		spec.Files = append(spec.Files,
			hostFile{Path: c.probe, Data: probeVassal, Mode: 0o644, UID: owner, GID: owner},
			hostFile{Path: probeWorker, Data: "#!/bin/sh\nexec sleep 3600\n", Mode: 0o755})
		spec.Probe, spec.ProbeGrace = probeSocket, int64(probeGrace)
	}
	spec.Argv = append([]string{program}, args...)
	return spec, nil
}

// readArgv reads an argv vector: one argument per line, argv[0] first.
func readArgv(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	argv := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(argv) < 2 || argv[0] == "" {
		return nil, fmt.Errorf("%s: not an argv vector (argv[0] and at least one argument, one a line)", path)
	}
	return argv, nil
}
