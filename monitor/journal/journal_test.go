package journal_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/journal"
)

func TestJournal_SaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	j, err := journal.Open(dir, "amqp://guest:secret@host/", "amqp://guest:xxxxx@host/")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := j.Load(); err != nil || got != nil {
		t.Fatalf("a new journal: %v, %v; want empty", got, err)
	}
	want := []journal.Entry{
		{Name: "/srv/a.ini", Path: "/srv/a.ini", Source: "path"},
		{Name: "b.ini", Config: []byte("[uwsgi]\nsocket = :3031\n"), Owner: &monitor.Owner{UID: 1000, GID: 1000}, Source: "config"},
	}
	if err := j.Save([]journal.Entry{want[1], want[0]}); err != nil {
		t.Fatal(err)
	}
	got, err := j.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded %+v, want %+v", got, want)
	}
	b, _ := os.ReadFile(j.Path())
	if strings.Contains(string(b), "secret") || strings.Contains(j.Path(), "secret") {
		t.Errorf("the journal leaks the password: %s\n%s", j.Path(), b)
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
}

func TestJournal_Corrupt(t *testing.T) {
	dir := t.TempDir()
	j, _ := journal.Open(dir, "zmq://x", "zmq://x")
	for _, bad := range []string{"{", `{"entries":[{"name":""}]}`, `{"entries":[{"name":"a.ini"}]}`, `{"bogus":1}`} {
		os.WriteFile(j.Path(), []byte(bad), 0o600)
		if _, err := j.Load(); err == nil || !strings.Contains(err.Error(), "journal") {
			t.Errorf("%q: error %v, want one naming the journal", bad, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"monitor":"amqp://h","entries":[{"name":"/srv/a.ini","path":"/srv/a.ini","source":"path"}]}`))
	f.Add([]byte(`{"monitor":"zmq://tcp://127.0.0.1:5252","entries":[{"name":"b.ini","config":"W3V3c2dpXQo=","owner":{"UID":1,"GID":2}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := journal.Decode(b)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Name == "" || (e.Path == "") == (e.Config == nil) {
				t.Fatalf("accepted a bad entry %+v", e)
			}
		}
	})
}
