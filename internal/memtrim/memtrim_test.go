package memtrim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// residentText is the resident KiB of the test binary's read-only mappings.
func residentText(t *testing.T) int {
	t.Helper()
	var exe unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &exe); err != nil {
		t.Fatal(err)
	}
	maps, err := readMappings("/proc/self/smaps", exe.Dev, exe.Ino)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) == 0 {
		t.Fatal("no mapping of the executable found in /proc/self/smaps")
	}
	kib := 0
	for _, m := range maps {
		if !m.writable {
			kib += m.rssKiB
		}
	}
	return kib
}

// Dropping the start-up pages leaves a program that runs as before, with
// far fewer of its pages resident until they run again.
func TestTextDropsResidentPagesAndTheProgramRunsOn(t *testing.T) {
	before := residentText(t)
	kib, err := Text()
	if err != nil {
		t.Fatal(err)
	}
	after := residentText(t)
	t.Logf("resident text and read-only data: %d KiB before, %d KiB dropped, %d KiB after", before, kib, after)
	// What was dropped is what was resident (read again inside Text, so
	// at least about as much). Reading smaps again runs code that faults
	// its pages (and, with fault-around, their neighbours) back in: in a
	// binary as small as this test's that is a good part of it, so only
	// "less than before" is certain.
	if kib < before*9/10 || after >= before {
		t.Errorf("dropped %d KiB of %d, %d resident again: want what was resident dropped", kib, before, after)
	}
	// Code and read-only data fault back in as they are used.
	b, err := json.Marshal(map[string][]int{"a": {1, 2, 3}})
	if err != nil || string(b) != `{"a":[1,2,3]}` {
		t.Errorf("after the drop: %s, %v", b, err)
	}
}

// Only private, read-only mappings of the executable with no anonymous
// page are candidates: a writable one, another file's and a relocated
// (copy-on-write) one are not.
func TestReadMappingsPicksTheExecutablesMappings(t *testing.T) {
	smaps := `00400000-00b64000 r-xp 00000000 fe:01 4242 /usr/bin/emperor
Size:               7568 kB
Rss:                5520 kB
Anonymous:             0 kB
00b64000-0135b000 r--p 00764000 fe:01 4242 /usr/bin/emperor
Rss:                5724 kB
Anonymous:            12 kB
0135b000-013f7000 rw-p 00f5b000 fe:01 4242 /usr/bin/emperor
Rss:                 496 kB
Anonymous:           200 kB
7f5196ded000-7f5196f43000 r-xp 00028000 fe:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1164 kB
Anonymous:             0 kB
7f5196f9c000-7f5196fa9000 r--s 00000000 fe:01 4242 /usr/bin/emperor
Rss:                  24 kB
`
	path := filepath.Join(t.TempDir(), "smaps")
	if err := os.WriteFile(path, []byte(smaps), 0o600); err != nil {
		t.Fatal(err)
	}
	maps, err := readMappings(path, unix.Mkdev(0xfe, 1), 4242)
	if err != nil {
		t.Fatal(err)
	}
	want := []mapping{
		{start: 0x400000, end: 0xb64000, rssKiB: 5520},
		{start: 0xb64000, end: 0x135b000, rssKiB: 5724, anonKiB: 12},
		{start: 0x135b000, end: 0x13f7000, writable: true, rssKiB: 496, anonKiB: 200},
	}
	if len(maps) != len(want) {
		t.Fatalf("mappings %+v, want %+v", maps, want)
	}
	for i := range want {
		if maps[i] != want[i] {
			t.Errorf("mapping %d: %+v, want %+v", i, maps[i], want[i])
		}
	}
}
