package mongodb

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/dbscan"
)

// makeRow reads document i (0-based) into a Row; problems go to Row.Err,
// naming the field.
func makeRow(i int, doc bson.Raw, tyrant bool) dbscan.Row {
	r := dbscan.Row{Where: fmt.Sprintf("document %d", i+1)}
	if id, err := doc.LookupErr("_id"); err == nil {
		r.Where = "document _id " + id.String()
	}
	name, err := str(doc, "name")
	if err != nil {
		r.Err = err
		return r
	}
	r.Name = name
	if v, err := doc.LookupErr("config"); err == nil && v.Type != bson.TypeNull {
		s, ok := v.StringValueOK()
		if !ok {
			r.Err = fmt.Errorf("config is a BSON %s, want a string", v.Type)
			return r
		}
		r.Config = []byte(s)
	}
	// ts: a BSON date, as in uWSGI; a missing ts is 0 (the config's hash
	// still tells changes apart).
	if v, err := doc.LookupErr("ts"); err == nil && v.Type != bson.TypeNull {
		ms, ok := v.DateTimeOK()
		if !ok {
			r.Err = fmt.Errorf("ts is a BSON %s, want a date", v.Type)
			return r
		}
		r.ModTime = ms * 1e6
	}
	if tyrant {
		uid, err := id(doc, "uid")
		if err != nil {
			r.Err = err
			return r
		}
		gid, err := id(doc, "gid")
		if err != nil {
			r.Err = err
			return r
		}
		r.Owner = &monitor.Owner{UID: uid, GID: gid}
	}
	return r
}

func str(doc bson.Raw, key string) (string, error) {
	v, err := doc.LookupErr(key)
	if err != nil || v.Type == bson.TypeNull {
		return "", fmt.Errorf("%s is missing", key)
	}
	s, ok := v.StringValueOK()
	if !ok {
		return "", fmt.Errorf("%s is a BSON %s, want a string", key, v.Type)
	}
	return s, nil
}

var errMissing = errors.New("is missing")

func id(doc bson.Raw, key string) (uint32, error) {
	v, err := doc.LookupErr(key)
	if err != nil || v.Type == bson.TypeNull {
		return 0, fmt.Errorf("%s %w (tyrant mode needs uid and gid)", key, errMissing)
	}
	var n float64
	switch v.Type {
	case bson.TypeInt32:
		n = float64(v.Int32())
	case bson.TypeInt64:
		n = float64(v.Int64())
	case bson.TypeDouble:
		n = v.Double()
	default:
		return 0, fmt.Errorf("%s is a BSON %s, want an integer", key, v.Type)
	}
	if n < 0 || n >= math.MaxUint32 || n != math.Trunc(n) {
		return 0, fmt.Errorf("%s %v is not a valid id", key, n)
	}
	return uint32(n), nil
}

// splitSeq yields the non-empty, trimmed items of a comma list.
func splitSeq(s string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for h := range strings.SplitSeq(s, ",") {
			if h = strings.TrimSpace(h); h != "" && !yield(h) {
				return
			}
		}
	}
}
