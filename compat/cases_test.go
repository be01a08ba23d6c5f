package compat_test

// The host each corpus config expects: where its file lives, the directory
// it is started from, the directories and files it names. Each entry follows
// the config's source as SOURCES.md describes it (its package's paths, its
// service unit, its repository layout). Files the configs include but the
// corpus does not hold are created only where SOURCES.md says a test has to
// create them; an optional include (28) stays absent.

// The accounts the configs name, added to the host's /etc/passwd and
// /etc/group when absent. uid = gid; the numbers are the test's own.
var corpusUsers = []hostUser{
	{"www-data", 33}, // Debian, Quantrade, the Django docs' vassal-set
	{"uwsgi", 2901},  // Alpine, PLD, NixOS, Fedora
	{"http", 2902},   // Arch
	{"_www", 2903},   // macOS (Homebrew)
	{"nginx", 2904},  // Fedora's gid
	{"cheshire", 2905},
}

const (
	uidUwsgi = 2901
)

// corpusCase is one run of the corpus: one .argv, or one config file run as
// --ini FILE (--json for .json).
type corpusCase struct {
	file    string // the corpus file this case runs
	config  string // the corpus config file the host holds, if any
	at      string // where the host holds it
	arg     string // how the argv names it when not by `at` (a relative path)
	cwd     string // the directory it is started from ("/" when empty)
	dirs    []hostDir
	files   []hostFile
	env     []string
	logs    []string // files a daemonized run writes its errors to
	leftOut string   // why this config is not run
	// waits says why ours must not spawn the probe where uWSGI 2.0 does:
	// the config asks vassals to wait for a command (an option uWSGI 2.0
	// ignores).
	waits string
	// probe is where the host holds a probe vassal, in the place the
	// Emperor watches ("" where it cannot hold one: a database, a ZeroMQ
	// socket, a glob no file name of ours matches).
	probe string
}

// The probe vassal: a config both uWSGI and our vassal run, binding a unix
// socket in the host's /tmp, its worker a script that sleeps (uWSGI execs
// worker-exec as one program with no arguments; ours runs the command). The
// socket appearing means the Emperor found the config where the user's
// config says to look and spawned it: a stronger "started" than a running
// Emperor.
const (
	probeSocket = "/tmp/compat-probe.sock"
	probeWorker = "/usr/local/bin/compat-probe-worker"
	probeVassal = "[uwsgi]\nsocket = " + probeSocket + "\nworker-exec = " + probeWorker + "\n"
)

func dir(path string) hostDir { return hostDir{Path: path, Mode: 0o755} }

func owned(path string, uid, gid int, mode uint32) hostDir {
	return hostDir{Path: path, UID: uid, GID: gid, Mode: mode}
}

func empty(path string) hostFile { return hostFile{Path: path, Data: "[uwsgi]\n", Mode: 0o644} }

var corpusCases = []corpusCase{
	{file: "01-debian-uwsgi-emperor-emperor.ini", probe: "/etc/uwsgi-emperor/vassals/compat-probe.ini", at: "/etc/uwsgi-emperor/emperor.ini",
		// RuntimeDirectory=uwsgi, Group=www-data, RuntimeDirectoryMode=0775 (02's unit).
		dirs: []hostDir{dir("/etc/uwsgi-emperor/vassals"), owned("/run/uwsgi", 0, 33, 0o775)}},
	{file: "02-debian-uwsgi-emperor-uwsgi-emperor.service.argv", probe: "/etc/uwsgi-emperor/vassals/compat-probe.ini",
		config: "01-debian-uwsgi-emperor-emperor.ini", at: "/etc/uwsgi-emperor/emperor.ini",
		dirs: []hostDir{dir("/etc/uwsgi-emperor/vassals"), owned("/run/uwsgi", 0, 33, 0o775)}},
	{file: "03-alpinelinux-aports-uwsgi.ini", probe: "/etc/uwsgi/conf.d/compat-probe.ini", at: "/etc/uwsgi/uwsgi.ini",
		dirs: []hostDir{dir("/etc/uwsgi/conf.d")}},
	{file: "03-alpinelinux-aports-uwsgi.initd.argv", probe: "/etc/uwsgi/conf.d/compat-probe.ini",
		config: "03-alpinelinux-aports-uwsgi.ini", at: "/etc/uwsgi/uwsgi.ini",
		dirs: []hostDir{dir("/etc/uwsgi/conf.d")}},
	{file: "04-pld-linux-uwsgi-emperor.ini", probe: "/etc/uwsgi/vassals/compat-probe.ini", at: "/etc/uwsgi/emperor.ini",
		dirs: []hostDir{dir("/etc/uwsgi/vassals")}},
	{file: "05-gentoo-gentoo-uwsgi.initd-r7.argv", probe: "/etc/uwsgi.d/compat-probe.ini",
		dirs: []hostDir{dir("/etc/uwsgi.d"), dir("/run/uwsgi")}},
	{file: "06-freebsd-freebsd-ports-uwsgi.in.argv", probe: "/usr/local/etc/uwsgi/vassals/compat-probe.ini",
		dirs: []hostDir{dir("/usr/local/etc/uwsgi/vassals")}, logs: []string{"/var/log/uwsgi.log"}},
	{file: "07-Homebrew-homebrew-core-uwsgi.rb.argv", probe: "/opt/homebrew/etc/uwsgi/apps-enabled/compat-probe.ini",
		dirs: []hostDir{dir("/opt/homebrew/etc/uwsgi/apps-enabled"), dir("/opt/homebrew/var/log")},
		logs: []string{"/opt/homebrew/var/log/uwsgi.log"}},
	{file: "08-NixOS-nixpkgs-uwsgi.nix.argv", probe: "/nix/store/HASH-vassals/compat-probe.ini",
		// The module's preStart makes runDir and chowns it; its server.json is
		// builtins.toJSON {uwsgi = {emperor = <vassals>;};} for an emperor
		// instance with no other attributes (uwsgi.nix at 045d702e).
		dirs: []hostDir{dir("/nix/store/HASH-vassals"), owned("/run/uwsgi", uidUwsgi, uidUwsgi, 0o755)},
		files: []hostFile{{Path: "/nix/store/HASH-server/server.json", Mode: 0o444,
			Data: `{"uwsgi":{"emperor":"/nix/store/HASH-vassals"}}`}}},
	{file: "09-unbit-uwsgi.it-emperor.ini", leftOut: "hook-as-root runs iptables -t nat -F/-A and writes " +
		"/proc/sys/kernel/dmesg_restrict: rewrites the host's firewall and a global sysctl"},
	{file: "10-unbit-uwsgi.it-containers.ini", leftOut: "hook-as-root writes /proc/sys/kernel/dmesg_restrict, " +
		"vm/oom_kill_allocating_task, vm/oom_dump_tasks, kernel/yama/ptrace_scope: global sysctls no namespace isolates"},
	{file: "11-Subscribie-subscribie-emperor.ini", probe: "/srv/subscribie/vassals/probe/compat-probe.ini", at: "/srv/subscribie/emperor.ini", arg: "emperor.ini",
		cwd: "/srv/subscribie", dirs: []hostDir{dir("/srv/subscribie/vassals")},
		files: []hostFile{empty("/srv/subscribie/vassals-inject-config.ini")}},
	{file: "12-smn-uwsgi-emperor-example-emperor.ini", probe: "/srv/uwsgi-emperor-example/uwsgi/compat-probe.ini", at: "/srv/uwsgi-emperor-example/emperor.ini",
		dirs: []hostDir{dir("/srv/uwsgi-emperor-example/uwsgi")}},
	{file: "13-KarmaComputing-high-availability-web-services-emperor.ini", probe: "/etc/uwsgi/vassals/probe/compat-probe.ini", at: "/etc/uwsgi/emperor.ini",
		dirs: []hostDir{dir("/etc/uwsgi/vassals")}},
	// "run from project top level directory: uwsgi uwsgi/emperor.ini"
	{file: "14-muccg-yabi-emperor.ini", probe: "/srv/yabi/uwsgi/vassals/compat-probe.ini", at: "/srv/yabi/uwsgi/emperor.ini", arg: "uwsgi/emperor.ini",
		cwd: "/srv/yabi", dirs: []hostDir{dir("/srv/yabi/uwsgi/vassals")}},
	{file: "15-kriberg-salt-armada-emperor.ini", probe: "/etc/uwsgi/apps-enabled/compat-probe.ini", at: "/etc/uwsgi/emperor.ini",
		dirs: []hostDir{dir("/etc/uwsgi/apps-enabled"), dir("/var/log/uwsgi")}},
	{file: "16-TalaikisInc-Quantrade-emperor.ini", probe: "/home/quantrade/uwsgi/uwsgi/compat-probe.ini", at: "/home/quantrade/uwsgi/emperor.ini",
		dirs: []hostDir{dir("/home/quantrade/uwsgi/uwsgi"), dir("/home/quantrade/logs")},
		logs: []string{"/home/quantrade/logs/uwsgi_emperor.log"}},
	{file: "17-davidrios-systemd-python-emperor.ini", probe: "/etc/uwsgi/apps-enabled/compat-probe.ini", at: "/etc/uwsgi/emperor.ini",
		dirs:  []hostDir{dir("/etc/uwsgi/apps-enabled"), dir("/var/log/uwsgi")},
		files: []hostFile{empty("/etc/uwsgi/vassals-default.ini"), {Path: "/usr/local/bin/vassals-create-dirs.py", Data: "#!/bin/sh\n", Mode: 0o755}},
		logs:  []string{"/var/log/uwsgi/emperor.log"}},
	{file: "18-skopjehacklab-vps-config-files-emperor.ini", probe: "/srv/vps/uwsgi/vassals/compat-probe.ini", at: "/srv/vps/uwsgi/emperor.ini",
		dirs: []hostDir{dir("/srv/vps/uwsgi/vassals"), dir("/srv/vps/var"), dir("/var/log/uwsgi")},
		logs: []string{"/var/log/uwsgi/emperor.log"}},
	{file: "19-digitaldem-docker-azure-uwsgi-uwsgi-emperor.ini", probe: "/etc/uwsgi/vassals/compat-probe.ini", at: "/etc/uwsgi/uwsgi-emperor.ini",
		dirs: []hostDir{dir("/etc/uwsgi/vassals")}, files: []hostFile{empty("/etc/uwsgi/vassal.ini")}},
	{file: "20-iamanikeev-uwsgi-config-uwsgi-emperor.ini", probe: "/etc/uwsgi/vassals/compat-probe.ini", at: "/etc/uwsgi/uwsgi-emperor.ini",
		dirs: []hostDir{dir("/etc/uwsgi/vassals"), dir("/var/log/uwsgi")},
		logs: []string{"/var/log/uwsgi/emperor.log"}},
	// A Heroku-style app: the platform sets PORT.
	{file: "21-hadiasghari-calledearth-django-uwsgi-emperor.ini", probe: "/srv/calledearth/vassals/compat-probe.ini", at: "/srv/calledearth/uwsgi-emperor.ini",
		arg: "uwsgi-emperor.ini", cwd: "/srv/calledearth", env: []string{"PORT=8000"},
		dirs: []hostDir{dir("/srv/calledearth/vassals")}},
	{file: "22-mdhowle-configs-emperor.ini", probe: "/etc/uwsgi/vassals/compat-probe.ini", at: "/etc/uwsgi/emperor.ini",
		dirs: []hostDir{dir("/etc/uwsgi/vassals"), dir("/var/log/httpd")},
		logs: []string{"/var/log/httpd/uwsgi.log"}},
	{file: "23-pystars-bumerang-emperor.ini", at: "/srv/bumerang/emperor.ini",
		dirs: []hostDir{dir("/etc/uwsgi")}},
	{file: "24-cheshire3-archiveshub-emperor.ini", probe: "/home/cheshire/archiveshub/www/uwsgi/apps/compat-probe.ini", at: cheshireIni, dirs: cheshireDirs, files: cheshireFiles,
		logs: []string{"/home/cheshire/archiveshub/www/uwsgi/logs/emperor.log"}},
	{file: "25-cheshire3-archiveshub-start.sh.argv", probe: "/home/cheshire/archiveshub/www/uwsgi/apps/compat-probe.ini", dirs: cheshireDirs, files: cheshireFiles,
		logs: []string{"/home/cheshire/archiveshub/www/uwsgi/archiveshub.log"}},
	{file: "26-cheshire3-archiveshub-upstart-archiveshub.conf.argv", probe: "/home/cheshire/archiveshub/www/uwsgi/apps/compat-probe.ini",
		config: "24-cheshire3-archiveshub-emperor.ini", at: cheshireIni, dirs: cheshireDirs, files: cheshireFiles,
		logs: []string{"/home/cheshire/archiveshub/www/uwsgi/logs/emperor.log"}},
	// Fedora's tmpfiles.d: d /run/uwsgi 0775 uwsgi uwsgi.
	{file: "27-Kwpolska-ansible-nginx-uwsgi-uwsgi.ini", probe: "/etc/uwsgi.d/compat-probe.ini", at: "/etc/uwsgi.ini",
		dirs: []hostDir{dir("/etc/uwsgi.d"), owned("/run/uwsgi", uidUwsgi, uidUwsgi, 0o775)}},
	{file: "28-mitodl-uwsgi-formula-emperor.ini", probe: "/etc/uwsgi/vassals/compat-probe.ini", at: "/etc/uwsgi/emperor.ini",
		dirs: []hostDir{dir("/etc/uwsgi/vassals")}},
	{file: "29-gdamjan-ansible-uwsgi-emperor.ini", probe: "/etc/uwsgi/vassals/compat-probe.ini", at: "/etc/uwsgi/emperor.ini",
		dirs: []hostDir{dir("/etc/uwsgi/vassals")}},
	{file: "30-WeirdCarrotMonster-forest-emperor.py-zmq.argv", cwd: "/srv/forest",
		dirs: []hostDir{dir("/srv/forest/bin")}},
	{file: "31-WeirdCarrotMonster-forest-emperor.py-dir.argv", probe: "/srv/forest/vassals/compat-probe.ini", cwd: "/srv/forest",
		dirs: []hostDir{dir("/srv/forest/bin"), dir("/srv/forest/vassals")}},
	{file: "32-WilliamFCipriano-QTmsg.io-emperor.uwsgi.service.argv", probe: "/var/www/QTmsg.io/uwsgi.ini",
		dirs: []hostDir{dir("/var/www/QTmsg.io"), dir("/run/uwsgi")}},
	{file: "33-c3g-chord_singularity-start_script.bash.argv", probe: "/chord/vassals/compat-probe.ini",
		dirs: []hostDir{dir("/chord/vassals"), dir("/chord/tmp/uwsgi")}},
	{file: "34-unbit-uwsgi-it.unbit.uwsgi.emperor.plist.argv",
		dirs: []hostDir{dir("/Users/roberta/Library/uwsgi")}},
	{file: "35-unbit-uwsgi-docs-Broodlord.rst.argv", probe: "/etc/vassals/compat-probe.ini", dirs: []hostDir{dir("/etc/vassals")}},
	{file: "36-unbit-uwsgi-docs-EmperorSubscriptions.rst.ini", probe: "/etc/uwsgi/vassals/compat-probe.ini", at: "/etc/uwsgi/emperor.ini",
		dirs:  []hostDir{dir("/etc/uwsgi/vassals")},
		waits: "emperor-wait-for-command (uWSGI 2.1; 2.0 ignores it): new vassals wait for a start command"},
	{file: "37-unbit-uwsgi-docs-Changelog-1.9.18.rst.ini", probe: "/etc/uwsgi/vassals/compat-probe.ini", at: "/etc/uwsgi/emperor.ini",
		dirs: []hostDir{dir("/etc/uwsgi/vassals")}},
	{file: "38-unbit-uwsgi-docs-ForkServer.rst.ini", probe: "/etc/uwsgi/vassals/compat-probe.ini", at: "/etc/uwsgi/emperor.ini",
		dirs: []hostDir{dir("/etc/uwsgi/vassals")}, files: []hostFile{empty("/etc/uwsgi/vassals/perlbase.ini")}},
	{file: "39-unbit-uwsgi-docs-ImperialMonitors.rst-pg.argv"},
	{file: "40-unbit-uwsgi-docs-PHP.rst.argv", probe: "/srv/php/phpvassals/compat-probe.ini", cwd: "/srv/php", dirs: []hostDir{dir("/srv/php/phpvassals")}},
}

// The cheshire3 archive hub lives in ~cheshire (its upstart job's home).
const cheshireIni = "/home/cheshire/archiveshub/www/uwsgi/emperor.ini"

var (
	cheshireDirs = []hostDir{
		owned("/home/cheshire", 2905, 2905, 0o755),
		dir("/home/cheshire/archiveshub/www/uwsgi/apps"),
		dir("/home/cheshire/archiveshub/www/uwsgi/logs"),
	}
	cheshireFiles = []hostFile{
		empty("/home/cheshire/archiveshub/www/uwsgi/apps-include.ini"),
		empty("/home/cheshire/archiveshub/www/uwsgi/vassals.ini"),
	}
)
