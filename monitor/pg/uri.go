package pg

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultQuery is uWSGI's query when pg:// names none.
const DefaultQuery = "SELECT name,config,EXTRACT(epoch FROM ts) FROM vassals"

// Target is a parsed pg:// argument.
type Target struct {
	// ConnInfo is everything before the first ';': a libpq keyword/value
	// string or a postgres:// URL.
	ConnInfo string
	// Query is everything after it, or DefaultQuery.
	Query string
}

// ParseTarget splits the part of pg://CONNINFO;QUERY after "pg://" as uWSGI
// does: the query is everything after the first ';' (so a ';' can never be
// part of the connection string), and without one the query is
// DefaultQuery. An empty query after the ';' also means DefaultQuery. The
// connection string is checked by pgx's parser, without connecting.
func ParseTarget(arg string) (Target, error) {
	conn, query, found := strings.Cut(arg, ";")
	t := Target{ConnInfo: strings.TrimSpace(conn), Query: strings.TrimSpace(query)}
	if !found || t.Query == "" {
		t.Query = DefaultQuery
	}
	if strings.ContainsRune(t.Query, 0) {
		return Target{}, errors.New("query contains a NUL byte")
	}
	if _, err := pgconn.ParseConfig(t.ConnInfo); err != nil {
		return Target{}, fmt.Errorf("connection string: %s", redactErr(err, t.ConnInfo))
	}
	return t, nil
}

var passwordKV = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// Redact returns the connection string with any password replaced by
// "xxxxx", for logs and stats.
func Redact(conninfo string) string {
	if u, err := url.Parse(conninfo); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return passwordKV.ReplaceAllString(conninfo, "${1}xxxxx")
}

// redactErr is err's text with the connection string's password hidden
// (pgx's parse errors may quote it).
func redactErr(err error, conninfo string) string {
	msg := err.Error()
	if r := Redact(conninfo); r != conninfo {
		msg = strings.ReplaceAll(msg, conninfo, r)
	}
	return passwordKV.ReplaceAllString(msg, "${1}xxxxx")
}
