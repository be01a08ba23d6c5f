package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/monitor/dbscan"
	"github.com/emperor-dev/emperor/monitor/pg"
)

// A fleet shares one table: each Emperor's query selects its own rows with
// %h (its hostname) or a placeholder, both expanded in the emperor's
// config file as uWSGI expands them.
func TestFleetQueryExpandsHostAndPlaceholders(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	ini := filepath.Join(t.TempDir(), "emperor.ini")
	os.WriteFile(ini, []byte(`[uwsgi]
emperor = pg://host=db dbname=fleet;SELECT name,config,ts FROM vassals WHERE host = '%h'
emperor = pg://host=db dbname=fleet;SELECT name,config,ts FROM vassals WHERE host = '%(fleet)'
emperor = mongodb://db:27017,fleet.vassals,{"host": "%h"}
emperor-pg-channel = fleet_changes
emperor-max-removals = 10
`), 0o644)
	s, err := parseSettings([]string{"--ini", ini, "--set-ph", "fleet=alpha"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"pg://host=db dbname=fleet;SELECT name,config,ts FROM vassals WHERE host = '" + host + "'",
		"pg://host=db dbname=fleet;SELECT name,config,ts FROM vassals WHERE host = 'alpha'",
		`mongodb://db:27017,fleet.vassals,{"host": "` + host + `"}`,
	}
	if strings.Join(s.emperors, "\n") != strings.Join(want, "\n") {
		t.Errorf("emperors = %q, want %q", s.emperors, want)
	}
	pgs := s.monitors["pg"].(*pg.Settings)
	mongo := s.monitors["mongodb"].(*dbscan.Settings)
	if pgs.Channel != "fleet_changes" || pgs.Scan.MaxRemovals != 10 || mongo.MaxRemovals != 10 {
		t.Errorf("emperor-pg-channel %q, emperor-max-removals %d (pg://), %d (mongodb://)", pgs.Channel, pgs.Scan.MaxRemovals, mongo.MaxRemovals)
	}
}
