// Package journal keeps the desired state of a push monitor (amqp://,
// zmq://) on disk, so that vassals pushed by messages survive an Emperor
// restart: uWSGI forgets them (reference 3.6, 3.7, bug B18).
//
// # Format
//
// A journal (version 2) is a text file of records, one a line:
//
//	CRC32C SP JSON LF
//
// where CRC32C is the Castagnoli checksum of JSON as eight hex digits. The
// first record is a header ({"version":2,"monitor":"..."}); every other
// record is a change: {"op":"touch","entry":{...}} or
// {"op":"destroy","name":"..."}. The state is the header's empty set with
// the changes applied in order. A line whose checksum, JSON or entry is bad
// costs that record only: Load skips it, keeps the whole file aside and
// reports it.
//
// Version 1 journals (one JSON document {"monitor":...,"entries":[...]},
// push-<hash>.json, written by earlier releases) are still read, entry by
// entry, and replaced by a version 2 file at the first write.
//
// # Durability
//
// Apply appends the records of a batch of changes with one write and an
// fsync, and returns only once they are on disk: a caller applies or
// acknowledges a change after Apply returned nil, never before. When the
// file holds more than a few times as many records as there are entries, or
// after any failed write, the next Apply compacts instead: it writes the
// whole state to a temporary file beside the journal, fsyncs it, renames it
// over the journal and fsyncs the directory, so a crash at any point leaves
// the old or the new file, never a torn one. Appending is one fsync per
// change whatever the number of vassals; the state is rewritten only every
// so many changes. A crash in the middle of an append leaves at most a
// partial last line, which was never acknowledged.
package journal

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/emperor-dev/emperor/monitor"
)

// Version is the format Apply writes.
const Version = 2

// Entry is one pushed vassal as last asked for.
type Entry struct {
	// Name is the vassal's name within its monitor.
	Name string `json:"name"`
	// Path is the config file, for file-based entries.
	Path string `json:"path,omitempty"`
	// Config is the config text, for inline entries (direct configs and
	// fetched URLs).
	Config []byte `json:"config,omitempty"`
	// Owner is the uid/gid the message gave (tyrant mode).
	Owner *monitor.Owner `json:"owner,omitempty"`
	// Source says where it came from, for logs: "path", "url", "config".
	Source string `json:"source,omitempty"`
}

// check says what is wrong with e, if anything.
func (e *Entry) check() error {
	if e.Name == "" {
		return errors.New("entry has no name")
	}
	if (e.Path == "") == (e.Config == nil) {
		return fmt.Errorf("entry %q needs exactly one of path and config", e.Name)
	}
	return nil
}

// Change is one change of the desired state.
type Change struct {
	// Op is monitor.Touch (Entry is wanted, replacing any entry of its
	// name) or monitor.Destroy (the entry named Entry.Name is not).
	Op    monitor.Op
	Entry Entry
}

// record is one line of a version 2 journal.
type record struct {
	Version int    `json:"version,omitempty"` // header only
	Monitor string `json:"monitor,omitempty"` // header only
	Op      string `json:"op,omitempty"`      // "touch" or "destroy"
	Entry   *Entry `json:"entry,omitempty"`   // touch
	Name    string `json:"name,omitempty"`    // destroy
}

// legacyFormat is a version 1 journal.
type legacyFormat struct {
	Monitor string  `json:"monitor"`
	Entries []Entry `json:"entries"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Journal is the state file of one monitor. It is used by one goroutine.
type Journal struct {
	path    string
	legacy  string // the version 1 file of the same monitor
	display string

	// entries is the state the file on disk holds.
	entries map[string]Entry
	// f is the journal open for appending at its end, nil when the next
	// Apply must compact (at first, and after any failed write).
	f       *os.File
	size    int64 // bytes of f known to be whole records
	records int   // records in f, header included
	// damaged holds the bytes of a journal Load could not read in full
	// and did not manage to keep aside yet; compaction keeps them aside
	// first, so that they are never overwritten.
	damaged []byte
	// damagedPath is where those bytes came from.
	damagedPath string
}

// Open returns the journal of the monitor whose ID is id, in dir, creating
// dir (mode 0700) if needed. The file name is a hash of the ID, which may
// hold credentials; display (the redacted form) is written inside the file
// for people. Open reads nothing: call Load.
func Open(dir, id, display string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal directory %s: %w", dir, err)
	}
	sum := sha256.Sum256([]byte(id))
	base := filepath.Join(dir, "push-"+hex.EncodeToString(sum[:8]))
	return &Journal{path: base + ".journal", legacy: base + ".json", display: display, entries: map[string]Entry{}}, nil
}

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Recovery is what Load found.
type Recovery struct {
	// Entries are the entries read, sorted by name.
	Entries []Entry
	// Damage describes what could not be read (records skipped, a torn
	// end); nil when the file was read in full.
	Damage error
	// Aside is where the damaged file was kept for the operator; empty
	// when nothing was damaged or keeping it failed (AsideErr).
	Aside    string
	AsideErr error
	// Legacy is true when the entries came from a version 1 file.
	Legacy bool
}

// Load reads the journal: the version 2 file, else a version 1 one, else
// nothing (an empty journal). A damaged file costs only the records that
// cannot be read; it is kept aside, renamed with a timestamp suffix, and
// reported in the Recovery. The error is for a file that cannot be read at
// all (permissions, I/O): the caller must not start over it.
func (j *Journal) Load() (Recovery, error) {
	path := j.path
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		path = j.legacy
		b, err = os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return Recovery{}, nil
		}
	}
	if err != nil {
		return Recovery{}, fmt.Errorf("journal %s: %w", path, err)
	}
	entries, damage := Decode(b)
	rec := Recovery{Entries: entries, Legacy: path == j.legacy}
	j.entries = make(map[string]Entry, len(entries))
	for _, e := range entries {
		j.entries[e.Name] = e
	}
	j.closeFile()
	if damage != nil {
		rec.Damage = fmt.Errorf("journal %s: %w", path, damage)
		j.damaged, j.damagedPath = b, path
		rec.Aside, rec.AsideErr = j.keepAside()
	}
	return rec, nil
}

// keepAside keeps the damaged bytes in a file named after their journal
// with a timestamp suffix, durably, and returns its name.
func (j *Journal) keepAside() (string, error) {
	if j.damaged == nil {
		return "", nil
	}
	name := j.damagedPath + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000000000Z")
	// A hard link costs no space; its content is the file Load read,
	// since only this goroutine writes the journal.
	err := os.Link(j.damagedPath, name)
	if err != nil {
		err = writeNew(name, j.damaged)
	}
	if err == nil {
		err = syncDir(filepath.Dir(name))
	}
	if err != nil {
		return "", fmt.Errorf("keep damaged journal %s aside as %s: %w", j.damagedPath, name, err)
	}
	j.damaged, j.damagedPath = nil, ""
	return name, nil
}

// Entries returns the state the journal holds on disk, sorted by name.
func (j *Journal) Entries() []Entry {
	return sorted(j.entries)
}

// Apply makes changes durable, in order: when it returns nil they are on
// disk and Entries includes them. On an error nothing of the batch counts
// as written; the next Apply (the same batch again, with or without more)
// rewrites the whole file.
func (j *Journal) Apply(changes []Change) error {
	next := make(map[string]Entry, len(j.entries)+len(changes))
	for k, e := range j.entries {
		next[k] = e
	}
	var buf bytes.Buffer
	for _, c := range changes {
		var r record
		switch c.Op {
		case monitor.Touch:
			if err := c.Entry.check(); err != nil {
				return fmt.Errorf("journal %s: %w", j.path, err)
			}
			e := c.Entry
			next[e.Name] = e
			r = record{Op: "touch", Entry: &e}
		case monitor.Destroy:
			delete(next, c.Entry.Name)
			r = record{Op: "destroy", Name: c.Entry.Name}
		default:
			return fmt.Errorf("journal %s: change of %s %q: unknown op", j.path, c.Op, c.Entry.Name)
		}
		if err := appendRecord(&buf, r); err != nil {
			return fmt.Errorf("journal %s: %w", j.path, err)
		}
	}
	if j.f == nil || j.records+len(changes) > 4*len(next)+16 {
		if err := j.compact(next); err != nil {
			return err
		}
		j.entries = next
		return nil
	}
	if err := j.append(buf.Bytes()); err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	j.size += int64(buf.Len())
	j.records += len(changes)
	j.entries = next
	return nil
}

// append writes b at the end of the journal and fsyncs it. After an error
// the file may hold part of b: it is cut back to its whole records (so a
// restart meanwhile reads no torn record) and closed, and the next Apply
// replaces it with a fresh file, since after a failed fsync the kernel may
// have dropped pages it reported written.
func (j *Journal) append(b []byte) error {
	_, err := j.f.Write(b)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr == nil {
			j.f.Sync()
		}
		j.closeFile()
	}
	return err
}

// Save replaces the journal with exactly entries, durably.
func (j *Journal) Save(entries []Entry) error {
	next := make(map[string]Entry, len(entries))
	for _, e := range entries {
		if err := e.check(); err != nil {
			return fmt.Errorf("journal %s: %w", j.path, err)
		}
		next[e.Name] = e
	}
	if err := j.compact(next); err != nil {
		return err
	}
	j.entries = next
	return nil
}

// compact writes state as a fresh journal (temporary file, fsync, rename,
// fsync of the directory) and keeps it open for appending. A damaged file
// not yet kept aside is kept aside first; a version 1 file is removed
// once the new one is in place.
func (j *Journal) compact(state map[string]Entry) error {
	j.closeFile()
	if _, err := j.keepAside(); err != nil {
		return err
	}
	var buf bytes.Buffer
	err := appendRecord(&buf, record{Version: Version, Monitor: j.display})
	for _, e := range sorted(state) {
		if err == nil {
			err = appendRecord(&buf, record{Op: "touch", Entry: &e})
		}
	}
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	f, err := writeAtomic(j.path, buf.Bytes())
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	j.f, j.size, j.records = f, int64(buf.Len()), 1+len(state)
	if err := os.Remove(j.legacy); err == nil {
		// Best effort: a version 1 file left behind is never read while
		// the version 2 file exists.
		syncDir(filepath.Dir(j.legacy))
	}
	return nil
}

// Close closes the journal's file. The journal stays usable: the next
// Apply rewrites the file.
func (j *Journal) Close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	return nil
}

func (j *Journal) closeFile() {
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}

func sorted(m map[string]Entry) []Entry {
	list := make([]Entry, 0, len(m))
	for _, e := range m {
		list = append(list, e)
	}
	sort.Slice(list, func(a, b int) bool { return list[a].Name < list[b].Name })
	return list
}

// appendRecord adds r to buf as one checksummed line.
func appendRecord(buf *bytes.Buffer, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Fprintf(buf, "%08x ", crc32.Checksum(b, castagnoli))
	buf.Write(b)
	buf.WriteByte('\n')
	return nil
}

// Decode reads a journal, version 2 or 1, and returns every entry it could
// read, sorted by name, and an error describing what it could not (nil
// when the whole journal was good). It never panics on bad input.
func Decode(b []byte) ([]Entry, error) {
	state := map[string]Entry{}
	var err error
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		err = decodeLegacy(b, state)
	} else {
		err = decodeRecords(b, state)
	}
	if len(state) == 0 {
		return nil, err
	}
	return sorted(state), err
}

// decodeRecords applies every good record of a version 2 journal to state.
func decodeRecords(b []byte, state map[string]Entry) error {
	var bad []string
	header := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		r, err := decodeRecord(line)
		switch {
		case err != nil:
		case r.Version != 0:
			if r.Version != Version {
				err = fmt.Errorf("version %d, want %d", r.Version, Version)
			}
			header = true
		case r.Op == "touch" && r.Entry != nil:
			if err = r.Entry.check(); err == nil {
				state[r.Entry.Name] = *r.Entry
			}
		case r.Op == "destroy" && r.Name != "":
			delete(state, r.Name)
		default:
			err = errors.New("neither a header nor a touch or destroy")
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("line %d: %v", n, err))
		}
	}
	if !header && len(bad) == 0 {
		bad = append(bad, "no header")
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		bad = append(bad, "the last line is cut short")
	}
	if len(bad) == 0 {
		return nil
	}
	if len(bad) > 3 {
		bad = append(bad[:3], fmt.Sprintf("and %d more", len(bad)-3))
	}
	return fmt.Errorf("%d unreadable record(s): %s", len(bad), joinSemi(bad))
}

func joinSemi(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(x)
	}
	return b.String()
}

// decodeRecord checks one line's checksum and parses it.
func decodeRecord(line []byte) (record, error) {
	var r record
	if len(line) < 10 || line[8] != ' ' {
		return r, errors.New("not a checksummed record")
	}
	sum, err := strconv.ParseUint(string(line[:8]), 16, 32)
	if err != nil {
		return r, errors.New("not a checksummed record")
	}
	body := line[9:]
	if crc32.Checksum(body, castagnoli) != uint32(sum) {
		return r, errors.New("checksum mismatch")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, err
	}
	return r, nil
}

// decodeLegacy reads a version 1 journal entry by entry into state: a bad
// entry costs that entry, a document cut short the entries after the cut.
func decodeLegacy(b []byte, state map[string]Entry) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	var bad []string
	fail := func(err error) error {
		return fmt.Errorf("version 1 journal: %s", joinSemi(append(bad, err.Error())))
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fail(errors.New("not a JSON object"))
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		switch t {
		case "monitor":
			var s string
			if err := dec.Decode(&s); err != nil {
				return fail(fmt.Errorf("monitor: %w", err))
			}
		case "entries":
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return fail(errors.New("entries is not a list"))
			}
			for i := 0; dec.More(); i++ {
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					return fail(fmt.Errorf("entry %d: %w", i, err))
				}
				var e Entry
				d := json.NewDecoder(bytes.NewReader(raw))
				d.DisallowUnknownFields()
				err := d.Decode(&e)
				if err == nil {
					err = e.check()
				}
				if err != nil {
					bad = append(bad, fmt.Sprintf("entry %d: %v", i, err))
					continue
				}
				state[e.Name] = e
			}
			if _, err := dec.Token(); err != nil {
				return fail(err)
			}
		default:
			bad = append(bad, fmt.Sprintf("unknown field %v", t))
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fail(err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return fail(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		bad = append(bad, "data after the document")
	}
	if len(bad) > 0 {
		return fmt.Errorf("version 1 journal: %s", joinSemi(bad))
	}
	return nil
}

// writeAtomic writes data to a temporary file beside path, fsyncs it,
// renames it over path and fsyncs the directory. It returns the file, open
// and positioned at its end, for appending.
func writeAtomic(path string, data []byte) (_ *os.File, err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return nil, err
	}
	if _, err = tmp.Write(data); err != nil {
		return nil, err
	}
	if err = tmp.Sync(); err != nil {
		return nil, err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return nil, err
	}
	if err = syncDir(dir); err != nil {
		// The rename may not be durable: the caller compacts again.
		return nil, err
	}
	return tmp, nil
}

// writeNew creates path (which must not exist) with data, fsynced.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
