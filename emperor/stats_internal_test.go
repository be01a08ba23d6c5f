package emperor

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// Stats name a monitor as uWSGI names its scanner.
func TestScannerArg(t *testing.T) {
	for uri, want := range map[string]string{
		"dir:///etc/uwsgi/vassals":     "/etc/uwsgi/vassals",
		"glob:///srv/*/app.ini":        "/srv/*/app.ini",
		"pg://host=db dbname=e;SELECT": "pg://host=db dbname=e;SELECT",
		"zmq://tcp://127.0.0.1:5252":   "zmq://tcp://127.0.0.1:5252",
	} {
		if got := scannerArg(uri); got != want {
			t.Errorf("scannerArg(%q) = %q, want %q", uri, got, want)
		}
	}
}

// A blacklist entry's first_attempt is the first death of the current
// series: a series ended by loyalty (the count back to 0) starts anew.
func TestDiedUnloyalStampsTheSeries(t *testing.T) {
	t0 := stamp(1000 * time.Second)
	v := &vassal{}
	v.diedUnloyal(1, t0)
	v.diedUnloyal(2, t0+stamp(time.Second))
	if v.firstUnloyal != t0 || v.lastUnloyal != t0+stamp(time.Second) || v.unloyalDeaths != 2 {
		t.Errorf("after two deaths: first %v last %v count %d", v.firstUnloyal, v.lastUnloyal, v.unloyalDeaths)
	}
	v.unloyalDeaths = 0                     // loyal
	v.diedUnloyal(2, t0+stamp(time.Minute)) // a flood: penalised at once
	if v.firstUnloyal != t0+stamp(time.Minute) || v.lastUnloyal != t0+stamp(time.Minute) {
		t.Errorf("a new series kept first %v last %v", v.firstUnloyal, v.lastUnloyal)
	}
}

func TestAbstractName(t *testing.T) {
	for addr, want := range map[string]string{"@stats": "stats", `\0stats`: "stats", "@a:b": "a:b"} {
		if got, ok := abstractName(addr); !ok || got != want {
			t.Errorf("abstractName(%q) = %q, %t", addr, got, ok)
		}
	}
	for _, addr := range []string{"/run/stats.sock", "127.0.0.1:1717", "stats"} {
		if _, ok := abstractName(addr); ok {
			t.Errorf("%q taken for an abstract socket", addr)
		}
	}
}

// A name with a ':' is still abstract, not TCP; a name in use or empty is
// refused with an error, and closing frees the name under both spellings.
func TestListenAbstract(t *testing.T) {
	name := fmt.Sprintf("@emperor-listen-test-%d:x", os.Getpid())
	l, err := listen(name, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := listen(name, true); err == nil {
		t.Error("a second listener on the same abstract name")
	}
	if _, err := listen("@", true); err == nil {
		t.Error("an empty abstract name was accepted")
	}
	l.Close()
	if _, err := l.Accept(); err == nil {
		t.Error("Accept after Close")
	}
	l2, err := listen(name, true)
	if err != nil {
		t.Fatalf("the name is not free after Close: %v", err)
	}
	l2.Close()
}
