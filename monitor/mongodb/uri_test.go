package mongodb

import (
	"strings"
	"testing"
)

func TestParsePositional(t *testing.T) {
	for _, c := range []struct{ arg, addr, db, coll, json string }{
		{"", DefaultAddr, "uwsgi", "emperor.vassals", ""},
		{"db:27017", "db:27017", "uwsgi", "emperor.vassals", ""},
		{"db:27017,fleet.vassals", "db:27017", "fleet", "vassals", ""},
		{`db:27017,fleet.vassals,{"host": "web1", "on": {"$in": [1, 2]}}`, "db:27017", "fleet", "vassals", `{"host": "web1", "on": {"$in": [1, 2]}}`},
		{",,", DefaultAddr, "uwsgi", "emperor.vassals", ""},
	} {
		got, err := ParsePositional(c.arg)
		if err != nil || got.Addr != c.addr || got.DB != c.db || got.Collection != c.coll || got.JSON != c.json {
			t.Errorf("ParsePositional(%q) = %+v, %v", c.arg, got, err)
		}
	}
	if got, _ := ParsePositional(`db,a.b,{"host": "web1"}`); len(got.Filter) != 1 || got.Filter[0].Key != "host" {
		t.Errorf("filter %v", got.Filter)
	}
	for _, bad := range []string{"db,nodot", "db,a.b,{not json", "user@db,a.b"} {
		if _, err := ParsePositional(bad); err == nil {
			t.Errorf("ParsePositional(%q) accepted", bad)
		}
	}
}

func TestParseKeyval(t *testing.T) {
	got, err := ParseKeyval(`addr=db:1,coll=f.v,json={"a": 1\, "b": 2},db=admin,username=u,password=p\=x`)
	if err != nil {
		t.Fatal(err)
	}
	if got.Addr != "db:1" || got.DB != "f" || got.Collection != "v" || got.JSON != `{"a": 1, "b": 2}` ||
		got.AuthDB != "admin" || got.Username != "u" || got.Password != "p=x" || len(got.Filter) != 2 {
		t.Errorf("ParseKeyval = %+v", got)
	}
	if strings.Contains(got.Display("mongodb2"), "p=x") {
		t.Errorf("Display leaks the password: %s", got.Display("mongodb2"))
	}
	for _, bad := range []string{"addr", "bogus=1", "predigest=1", "password=p"} {
		if _, err := ParseKeyval(bad); err == nil {
			t.Errorf("ParseKeyval(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:27017,uwsgi.emperor.vassals",
		`db:27017,fleet.vassals,{"host": "web1"}`,
		`addr=db:1,collection=f.v,json={"a": 1\, "b": 2},username=u,password=p`,
		`server=a:1\,b:2,replica=rs0,coll=x.y`,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		for _, parse := range []func(string) (Target, error){ParsePositional, ParseKeyval} {
			tg, err := parse(arg)
			if err != nil {
				continue
			}
			if tg.Addr == "" || tg.DB == "" || tg.Collection == "" || tg.Filter == nil {
				t.Fatalf("parse(%q) = %+v", arg, tg)
			}
			if tg.Password != "" && strings.Contains(tg.Display("m"), ":"+tg.Password+"@") {
				t.Fatalf("password shown: %s", tg.Display("m"))
			}
		}
	})
}
