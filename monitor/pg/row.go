package pg

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/dbscan"
)

// checkColumns says whether a result with n columns can describe vassals:
// name, config and a modification time, plus uid and gid in tyrant mode.
func checkColumns(n int, tyrant bool) error {
	switch {
	case n < 3:
		return fmt.Errorf("the query returns %d columns; it needs name, config and a modification time (and uid, gid in tyrant mode)", n)
	case tyrant && n < 5:
		return fmt.Errorf("the query returns %d columns; tyrant mode needs uid and gid as the 4th and 5th", n)
	}
	return nil
}

// makeRow turns the values of result row i (0-based) into a Row. Problems
// are recorded in Row.Err, naming the column.
func makeRow(i int, vals []any, tyrant bool) dbscan.Row {
	r := dbscan.Row{Where: fmt.Sprintf("row %d", i+1)}
	var err error
	if r.Name, err = text(vals[0]); err != nil {
		r.Err = fmt.Errorf("name (column 1): %w", err)
		return r
	}
	r.Where += " (" + strconv.Quote(r.Name) + ")"
	if vals[1] != nil {
		s, err := text(vals[1])
		if err != nil {
			r.Err = fmt.Errorf("config (column 2): %w", err)
			return r
		}
		r.Config = []byte(s)
	}
	if r.ModTime, err = modTime(vals[2]); err != nil {
		r.Err = fmt.Errorf("modification time (column 3): %w", err)
		return r
	}
	if tyrant {
		uid, err := id(vals[3])
		if err != nil {
			r.Err = fmt.Errorf("uid (column 4): %w", err)
			return r
		}
		gid, err := id(vals[4])
		if err != nil {
			r.Err = fmt.Errorf("gid (column 5): %w", err)
			return r
		}
		r.Owner = &monitor.Owner{UID: uid, GID: gid}
	}
	return r
}

var errNull = errors.New("is NULL")

// text reads a text column.
func text(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", errNull
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	}
	return "", fmt.Errorf("is a %T, want text", v)
}

// modTime reads a modification time in nanoseconds since the epoch: a
// timestamp, or a number of seconds (integer or fractional, as
// EXTRACT(epoch FROM ts) gives).
func modTime(v any) (int64, error) {
	switch v := v.(type) {
	case nil:
		return 0, errNull
	case time.Time:
		return v.UnixNano(), nil
	case int64:
		return secondsToNanos(float64(v))
	case int32:
		return int64(v) * int64(time.Second), nil
	case int16:
		return int64(v) * int64(time.Second), nil
	case float64:
		return secondsToNanos(v)
	case float32:
		return secondsToNanos(float64(v))
	case pgtype.Numeric:
		return numericNanos(v)
	case string:
		return parseSeconds(v)
	case []byte:
		return parseSeconds(string(v))
	case pgtype.InfinityModifier:
		return 0, fmt.Errorf("is %v, want a finite time", v)
	}
	return 0, fmt.Errorf("is a %T, want a timestamp or UNIX seconds", v)
}

func parseSeconds(s string) (int64, error) {
	var n pgtype.Numeric
	if err := n.Scan(strings.TrimSpace(s)); err != nil {
		return 0, fmt.Errorf("%q is not a number of seconds", s)
	}
	return numericNanos(n)
}

// numericNanos converts a numeric number of seconds exactly (EXTRACT(epoch
// FROM ts) is numeric since PostgreSQL 14; a float would lose nanoseconds).
func numericNanos(n pgtype.Numeric) (int64, error) {
	if !n.Valid || n.NaN || n.InfinityModifier != pgtype.Finite || n.Int == nil {
		return 0, fmt.Errorf("numeric %v is not a number of seconds", n)
	}
	e := int64(n.Exp) + 9
	if e > 30 || e < -40 {
		return 0, fmt.Errorf("numeric %v is out of range", n)
	}
	v := new(big.Int).Set(n.Int)
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(abs(e)), nil)
	if e >= 0 {
		v.Mul(v, scale)
	} else {
		v.Quo(v, scale)
	}
	if v.Sign() < 0 || !v.IsInt64() {
		return 0, fmt.Errorf("%v seconds is out of range", n.Int)
	}
	return v.Int64(), nil
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func secondsToNanos(f float64) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > math.MaxInt64/float64(time.Second) {
		return 0, fmt.Errorf("%v seconds is out of range", f)
	}
	return int64(math.Round(f * float64(time.Second))), nil
}

// id reads a uid or gid.
func id(v any) (uint32, error) {
	var n int64
	switch v := v.(type) {
	case nil:
		return 0, errNull
	case int64:
		n = v
	case int32:
		n = int64(v)
	case int16:
		n = int64(v)
	case pgtype.Numeric:
		i, err := v.Int64Value()
		if err != nil || !i.Valid {
			return 0, fmt.Errorf("numeric %v is not an integer", v)
		}
		n = i.Int64
	case string:
		var err error
		if n, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
			return 0, fmt.Errorf("%q is not an integer", v)
		}
	default:
		return 0, fmt.Errorf("is a %T, want an integer", v)
	}
	if n < 0 || n > math.MaxUint32-1 {
		return 0, fmt.Errorf("%d is out of range", n)
	}
	return uint32(n), nil
}
