package mongodb

import (
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Defaults of uWSGI's emperor_mongodb.
const (
	DefaultAddr       = "127.0.0.1:27017"
	DefaultCollection = "uwsgi.emperor.vassals"
)

// Target is a parsed mongodb:// or mongodb2:// argument.
type Target struct {
	// Addr is host:port, or a comma list for a replica set (mongodb2://
	// with replica).
	Addr string
	// DB and Collection split uWSGI's "db.collection" at its first dot.
	DB, Collection string
	// Filter is the JSON query (empty: every document), decoded.
	JSON   string
	Filter bson.D
	// Auth: used when Username is set; AuthDB defaults to DB.
	Username, Password, AuthDB string
	// Replica is the replica set name.
	Replica string
}

// ParsePositional parses the part of mongodb://ADDR,COLLECTION,JSON after
// the scheme as uWSGI does: the first comma ends the address, the second
// the collection, and the JSON query is the rest (it may hold commas).
// Missing or empty fields take uWSGI's defaults.
func ParsePositional(arg string) (Target, error) {
	addr, rest, _ := strings.Cut(arg, ",")
	coll, js, _ := strings.Cut(rest, ",")
	return finish(Target{Addr: addr, JSON: js}, coll)
}

// ParseKeyval parses the part of mongodb2://k=v,k=v after the scheme, as
// uWSGI's keyval parser: ',' separates items, '=' key from value, and a
// backslash escapes either (or itself). Keys: addr (address, server),
// collection (coll), json, database (db, the authentication database),
// username, password, replica. predigest and defaults are refused: the Go
// driver cannot use a pre-digested password, and attributes are not
// supported.
func ParseKeyval(arg string) (Target, error) {
	items, err := splitKeyval(arg)
	if err != nil {
		return Target{}, err
	}
	var t Target
	var coll string
	for _, kv := range items {
		k, v := kv[0], kv[1]
		switch k {
		case "addr", "address", "server":
			t.Addr = v
		case "collection", "coll":
			coll = v
		case "json":
			t.JSON = v
		case "database", "db":
			t.AuthDB = v
		case "username":
			t.Username = v
		case "password":
			t.Password = v
		case "replica":
			t.Replica = v
		case "predigest", "defaults":
			return Target{}, fmt.Errorf("mongodb2 key %q is not supported", k)
		default:
			return Target{}, fmt.Errorf("mongodb2: unknown key %q (known: addr, collection, json, database, username, password, replica)", k)
		}
	}
	return finish(t, coll)
}

// splitKeyval splits "a=1,b=x\,y" into pairs, honouring backslashes.
func splitKeyval(arg string) ([][2]string, error) {
	var items [][2]string
	var key, cur strings.Builder
	inValue := false
	flush := func() error {
		if !inValue && cur.Len() == 0 {
			return nil // empty item, as between two commas
		}
		if !inValue {
			return fmt.Errorf("mongodb2: item %q has no '='", cur.String())
		}
		items = append(items, [2]string{strings.TrimSpace(key.String()), cur.String()})
		key.Reset()
		cur.Reset()
		inValue = false
		return nil
	}
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		switch {
		case c == '\\' && i+1 < len(arg):
			i++
			cur.WriteByte(arg[i])
		case c == ',':
			if err := flush(); err != nil {
				return nil, err
			}
		case c == '=' && !inValue:
			key.WriteString(cur.String())
			cur.Reset()
			inValue = true
		default:
			cur.WriteByte(c)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return items, nil
}

func finish(t Target, coll string) (Target, error) {
	t.Addr = strings.TrimSpace(t.Addr)
	if t.Addr == "" {
		t.Addr = DefaultAddr
	}
	coll = strings.TrimSpace(coll)
	if coll == "" {
		coll = DefaultCollection
	}
	db, c, ok := strings.Cut(coll, ".")
	if !ok || db == "" || c == "" {
		return Target{}, fmt.Errorf("collection %q: want DATABASE.COLLECTION", coll)
	}
	t.DB, t.Collection = db, c
	if t.AuthDB == "" {
		t.AuthDB = db
	}
	if strings.ContainsAny(t.Addr, "/@?") {
		return Target{}, fmt.Errorf("address %q: want host:port", t.Addr)
	}
	t.Filter = bson.D{}
	if js := strings.TrimSpace(t.JSON); js != "" {
		if err := bson.UnmarshalExtJSON([]byte(js), false, &t.Filter); err != nil {
			return Target{}, fmt.Errorf("json query %q: %w", js, err)
		}
	}
	if t.Password != "" && t.Username == "" {
		return Target{}, errors.New("a password needs a username")
	}
	return t, nil
}

// Display is the target for logs: no password.
func (t Target) Display(scheme string) string {
	user := ""
	if t.Username != "" {
		user = t.Username + ":xxxxx@"
	}
	return strings.TrimSpace(fmt.Sprintf("%s://%s%s/%s.%s %s", scheme, user, t.Addr, t.DB, t.Collection, t.JSON))
}
