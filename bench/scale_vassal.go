package main

// The scale section's vassal: a tiny C program that speaks the Emperor
// protocol and nothing else, so that ten thousand of them fit on the
// machine and the figures are the Emperors', not the vassals'.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// scaleVassalC sends 1, 5 and 17 on the control socket named by
// UWSGI_EMPEROR_FD, keeps no sockets and sends no heartbeat, and exits on
// byte 0 or 2 or when the Emperor goes away. For the bench's clock only it
// writes one line to stderr (which both Emperors pass through to their
// log) when it starts, once it sent the three bytes ("up"), and when it
// receives byte 1 or 0: "scale-vassal
// NAME EVENT NS", NS being CLOCK_REALTIME in nanoseconds at that moment.
// NAME is its config file's name without the directory and extension
// (both Emperors run it as "V --ini CONFIG").
const scaleVassalC = `#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char name[256];

static void mark(const char *ev) {
	struct timespec ts;
	char line[400];
	clock_gettime(CLOCK_REALTIME, &ts);
	int n = snprintf(line, sizeof line, "scale-vassal %s %s %lld\n", name, ev,
		(long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	if (n > 0) write(2, line, n);
}

int main(int argc, char **argv) {
	const char *cfg = argc > 1 ? argv[argc - 1] : "unnamed";
	const char *base = strrchr(cfg, '/');
	base = base ? base + 1 : cfg;
	snprintf(name, sizeof name, "%s", base);
	char *dot = strrchr(name, '.');
	if (dot) *dot = 0;
	mark("start");
	const char *env = getenv("UWSGI_EMPEROR_FD");
	if (!env) return 1;
	int fd = atoi(env);
	unsigned char hello[3] = {1, 5, 17};
	for (int i = 0; i < 3; i++)
		if (write(fd, &hello[i], 1) != 1) return 1;
	mark("up");
	for (;;) {
		unsigned char b;
		ssize_t n = read(fd, &b, 1);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return 0;
		if (b == 1) mark("1");
		if (b == 0 || b == 2) {
			mark("0");
			return 0;
		}
	}
}
`

// buildScaleVassal compiles the vassal into dir with gcc (static where
// the toolchain allows, for a smaller and faster exec) and returns its
// path.
func buildScaleVassal(dir string) (string, error) {
	src := filepath.Join(dir, "scale-vassal.c")
	bin := filepath.Join(dir, "scale-vassal")
	if err := os.WriteFile(src, []byte(scaleVassalC), 0o644); err != nil {
		return "", fmt.Errorf("scale vassal: %w", err)
	}
	out, err := exec.Command("gcc", "-O2", "-static", "-o", bin, src).CombinedOutput()
	if err != nil {
		out2, err2 := exec.Command("gcc", "-O2", "-o", bin, src).CombinedOutput()
		if err2 != nil {
			return "", fmt.Errorf("scale vassal: gcc: %v: %s%s", err2, out, out2)
		}
	}
	return bin, nil
}

// scaleMark is one line of a scale vassal: which vassal, what happened
// ("start", "1" or "0") and when, by the vassal's own clock.
type scaleMark struct {
	name, event string
	at          time.Time
}

// parseScaleMark reads one log line; ok is false for any other line.
func parseScaleMark(line string) (m scaleMark, ok bool) {
	rest, found := strings.CutPrefix(line, "scale-vassal ")
	if !found {
		return m, false
	}
	f := strings.Fields(rest)
	if len(f) != 3 {
		return m, false
	}
	ns, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return m, false
	}
	return scaleMark{name: f[0], event: f[1], at: time.Unix(0, ns)}, true
}
