package journal_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/journal"
)

func open(t *testing.T, dir string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(dir, "amqp://guest:secret@host/", "amqp://guest:xxxxx@host/")
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// reload reads the journal in dir as a restarted monitor does.
func reload(t *testing.T, dir string) journal.Recovery {
	t.Helper()
	rec, err := open(t, dir).Load()
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func touch(name string) journal.Change {
	return journal.Change{Op: monitor.Touch, Entry: journal.Entry{Name: name, Config: []byte("[uwsgi]\n# " + name + "\n"), Source: "config"}}
}

func destroy(name string) journal.Change {
	return journal.Change{Op: monitor.Destroy, Entry: journal.Entry{Name: name}}
}

func names(entries []journal.Entry) string {
	var s []string
	for _, e := range entries {
		s = append(s, e.Name)
	}
	return strings.Join(s, " ")
}

func apply(t *testing.T, j *journal.Journal, changes ...journal.Change) {
	t.Helper()
	if err := j.Apply(changes); err != nil {
		t.Fatal(err)
	}
}

func TestJournal_ApplyLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	j := open(t, dir)
	if rec, err := j.Load(); err != nil || rec.Entries != nil || rec.Damage != nil {
		t.Fatalf("a new journal: %+v, %v; want empty", rec, err)
	}
	want := []journal.Entry{
		{Name: "/srv/a.ini", Path: "/srv/a.ini", Source: "path"},
		{Name: "b.ini", Config: []byte("[uwsgi]\nsocket = :3031\n"), Owner: &monitor.Owner{UID: 1000, GID: 1000}, Source: "config"},
	}
	apply(t, j, journal.Change{Op: monitor.Touch, Entry: want[1]}, touch("gone.ini"))
	apply(t, j, journal.Change{Op: monitor.Touch, Entry: want[0]})
	apply(t, j, destroy("gone.ini"))
	if got := j.Entries(); !reflect.DeepEqual(got, want) {
		t.Errorf("in memory %+v, want %+v", got, want)
	}
	rec := reload(t, dir)
	if !reflect.DeepEqual(rec.Entries, want) || rec.Damage != nil {
		t.Errorf("loaded %+v (damage %v), want %+v", rec.Entries, rec.Damage, want)
	}
	b, _ := os.ReadFile(j.Path())
	if strings.Contains(string(b), "secret") || strings.Contains(j.Path(), "secret") {
		t.Errorf("the journal leaks the password: %s\n%s", j.Path(), b)
	}
	if !strings.Contains(string(b), `"version":2`) || !strings.Contains(string(b), "xxxxx@host") {
		t.Errorf("the journal has no readable header:\n%s", b)
	}
	fi, err := os.Stat(j.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v (%v), want 0600", fi.Mode(), err)
	}
	// Only the journal itself is left: no temporary file.
	if names, _ := os.ReadDir(dir); len(names) != 1 {
		t.Errorf("state dir holds %d files, want the journal only", len(names))
	}
	// Another monitor has its own file.
	other, _ := journal.Open(dir, "zmq://tcp://127.0.0.1:5252", "")
	if other.Path() == j.Path() {
		t.Error("two monitors share a journal file")
	}
	// A bad change is refused, and nothing of its batch is written.
	if err := j.Apply([]journal.Change{touch("c.ini"), {Op: monitor.Touch, Entry: journal.Entry{Name: "bad.ini"}}}); err == nil || !strings.Contains(err.Error(), j.Path()) {
		t.Errorf("an entry without path or config: %v, want an error naming the journal", err)
	}
	if got := names(reload(t, dir).Entries); got != "/srv/a.ini b.ini" {
		t.Errorf("after a refused batch: %s", got)
	}
}

// TestJournal_Compacts: a long stream of changes to a few vassals keeps the
// file small, and every state survives a reload.
func TestJournal_Compacts(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	for i := range 500 {
		name := fmt.Sprintf("v%d.ini", i%5)
		if i%3 == 2 {
			apply(t, j, destroy(name))
		} else {
			apply(t, j, touch(name))
		}
	}
	want := names(j.Entries())
	if got := reload(t, dir); names(got.Entries) != want || got.Damage != nil {
		t.Errorf("reloaded %q (damage %v), want %q", names(got.Entries), got.Damage, want)
	}
	b, _ := os.ReadFile(j.Path())
	if n := bytes.Count(b, []byte("\n")); n > 4*5+16+1 {
		t.Errorf("the journal holds %d records for 5 vassals: never compacted", n)
	}
}

// TestJournal_ReadsVersion1: a journal written by the previous release (one
// JSON document, push-<hash>.json) is read, and replaced by a version 2
// file at the first write.
func TestJournal_ReadsVersion1(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	legacy := strings.TrimSuffix(j.Path(), ".journal") + ".json"
	// The exact bytes the previous Save wrote for two entries.
	v1 := `{
  "monitor": "amqp://guest:xxxxx@host/",
  "entries": [
    {
      "name": "/srv/a.ini",
      "path": "/srv/a.ini",
      "source": "path"
    },
    {
      "name": "b.ini",
      "config": "W3V3c2dpXQo=",
      "owner": {
        "UID": 1000,
        "GID": 1000
      },
      "source": "config"
    }
  ]
}
`
	if err := os.WriteFile(legacy, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := j.Load()
	if err != nil || rec.Damage != nil || !rec.Legacy {
		t.Fatalf("version 1 journal: %+v, %v", rec, err)
	}
	want := []journal.Entry{
		{Name: "/srv/a.ini", Path: "/srv/a.ini", Source: "path"},
		{Name: "b.ini", Config: []byte("[uwsgi]\n"), Owner: &monitor.Owner{UID: 1000, GID: 1000}, Source: "config"},
	}
	if !reflect.DeepEqual(rec.Entries, want) {
		t.Errorf("read %+v, want %+v", rec.Entries, want)
	}
	apply(t, j, touch("c.ini"))
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("the version 1 file is still there after a write: %v", err)
	}
	if got := names(reload(t, dir).Entries); got != "/srv/a.ini b.ini c.ini" {
		t.Errorf("after migrating: %s", got)
	}
}

// asideFiles lists the files kept aside in dir.
func asideFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.corrupt-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestJournal_Damaged: a journal cut short, or with one bad record, gives
// back every other entry; the damaged file is kept aside, byte for byte,
// and the next write replaces it with a good one.
func TestJournal_Damaged(t *testing.T) {
	ten := func(t *testing.T) (string, *journal.Journal) {
		dir := t.TempDir()
		j := open(t, dir)
		for i := range 10 {
			apply(t, j, touch(fmt.Sprintf("v%d.ini", i)))
		}
		j.Close()
		return dir, j
	}
	all := "v0.ini v1.ini v2.ini v3.ini v4.ini v5.ini v6.ini v7.ini v8.ini v9.ini"
	cases := []struct {
		name   string
		damage func(b []byte) []byte
		want   string
	}{
		{"cut in the last record", func(b []byte) []byte { return b[:len(b)-7] },
			"v0.ini v1.ini v2.ini v3.ini v4.ini v5.ini v6.ini v7.ini v8.ini"},
		{"one byte flipped in v4", func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"name":"v4.ini"`))
			b[i+9] = 'w'
			return b
		}, "v0.ini v1.ini v2.ini v3.ini v5.ini v6.ini v7.ini v8.ini v9.ini"},
		{"garbage line", func(b []byte) []byte {
			i := bytes.Index(b, []byte("\n"))
			return append(b[:i+1:i+1], append([]byte("\x00\xff garbage\n"), b[i+1:]...)...)
		}, all},
		{"header lost", func(b []byte) []byte { return b[bytes.Index(b, []byte("\n"))+1:] }, all},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, j := ten(t)
			b, _ := os.ReadFile(j.Path())
			bad := c.damage(b)
			os.WriteFile(j.Path(), bad, 0o600)
			j = open(t, dir)
			rec, err := j.Load()
			if err != nil {
				t.Fatal(err)
			}
			if got := names(rec.Entries); got != c.want {
				t.Errorf("recovered %s, want %s", got, c.want)
			}
			if rec.Damage == nil || !strings.Contains(rec.Damage.Error(), j.Path()) {
				t.Errorf("damage %v, want an error naming the journal", rec.Damage)
			}
			aside := asideFiles(t, dir)
			if len(aside) != 1 || rec.Aside != aside[0] || rec.AsideErr != nil {
				t.Fatalf("kept aside %q (%v), files %q", rec.Aside, rec.AsideErr, aside)
			}
			if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, bad) {
				t.Errorf("the file kept aside is not the damaged journal")
			}
			apply(t, j, touch("new.ini"))
			rec = reload(t, dir)
			if rec.Damage != nil || len(rec.Entries) != strings.Count(c.want, " ")+2 {
				t.Errorf("after the next write: %s, damage %v", names(rec.Entries), rec.Damage)
			}
			if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, bad) {
				t.Errorf("the next write changed the file kept aside")
			}
		})
	}
}

// TestJournal_Version1Damaged: a version 1 journal cut short, or with one
// bad entry, gives back the others (the previous release started empty).
func TestJournal_Version1Damaged(t *testing.T) {
	var entries []map[string]any
	for i := range 10 {
		entries = append(entries, map[string]any{"name": fmt.Sprintf("v%d.ini", i), "path": fmt.Sprintf("/srv/v%d.ini", i)})
	}
	entries[3] = map[string]any{"name": "v3.ini"} // neither path nor config
	good, _ := json.MarshalIndent(map[string]any{"monitor": "zmq://x", "entries": entries}, "", "  ")
	cut := good[:bytes.Index(good, []byte(`"v8.ini"`))]
	for _, c := range []struct {
		name string
		doc  []byte
		want string
	}{
		{"one bad entry", good, "v0.ini v1.ini v2.ini v4.ini v5.ini v6.ini v7.ini v8.ini v9.ini"},
		{"cut short", cut, "v0.ini v1.ini v2.ini v4.ini v5.ini v6.ini v7.ini"},
	} {
		got, err := journal.Decode(c.doc)
		if names(got) != c.want || err == nil {
			t.Errorf("%s: %s, %v; want %s and an error", c.name, names(got), err, c.want)
		}
	}
}

func TestJournal_Unreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads a mode 000 file")
	}
	dir := t.TempDir()
	j := open(t, dir)
	apply(t, j, touch("a.ini"))
	os.Chmod(j.Path(), 0)
	if _, err := open(t, dir).Load(); err == nil || !strings.Contains(err.Error(), j.Path()) {
		t.Errorf("an unreadable journal: %v, want an error naming it", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"monitor":"amqp://h","entries":[{"name":"/srv/a.ini","path":"/srv/a.ini","source":"path"}]}`))
	f.Add([]byte(`{"monitor":"zmq://tcp://127.0.0.1:5252","entries":[{"name":"b.ini","config":"W3V3c2dpXQo=","owner":{"UID":1,"GID":2}}]}`))
	f.Add([]byte("{\"entries\":[{\"name\":\"a\"},"))
	dir := f.TempDir()
	j, _ := journal.Open(dir, "zmq://x", "zmq://x")
	j.Apply([]journal.Change{touch("a.ini"), touch("b.ini"), destroy("a.ini")})
	b, _ := os.ReadFile(j.Path())
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, _ := journal.Decode(b)
		for _, e := range entries {
			if e.Name == "" || (e.Path == "") == (e.Config == nil) {
				t.Fatalf("accepted a bad entry %+v", e)
			}
		}
	})
}
