package mongodb_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/monitortest"
)

type coll struct {
	t    *testing.T
	name string // db.collection
	c    *mongo.Collection
}

func newColl(t *testing.T, srv *testenv.MongoWire) *coll {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + srv.Addr()).SetTimeout(20 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	name := strings.ReplaceAll(testenv.PGName("v"), "_", "")
	return &coll{t: t, name: "emperor." + name, c: client.Database("emperor").Collection(name)}
}

func (c *coll) insert(docs ...bson.M) {
	c.t.Helper()
	for _, d := range docs {
		if _, err := c.c.InsertOne(context.Background(), d); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *coll) update(name string, set bson.M) {
	c.t.Helper()
	if _, err := c.c.UpdateOne(context.Background(), bson.M{"name": name}, bson.M{"$set": set}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *coll) remove(name string) {
	c.t.Helper()
	if _, err := c.c.DeleteOne(context.Background(), bson.M{"name": name}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *coll) monitor(uri string, opts monitor.Options) *monitortest.Harness {
	c.t.Helper()
	if opts.Freq == 0 {
		opts.Freq = 200 * time.Millisecond
	}
	return monitortest.Start(c.t, monitor.Open, uri, opts)
}

// FerretDB has no change streams: the monitor says so once and polls.
func TestInsertUpdateDeleteByPolling(t *testing.T) {
	srv := testenv.StartMongoWire(t)
	c := newColl(t, srv)
	now := time.Now().Truncate(time.Millisecond)
	c.insert(bson.M{"name": "app.ini", "config": "[uwsgi]\nv = 1\n", "ts": now}, bson.M{"name": "other.ini", "config": "[uwsgi]", "ts": now, "kind": "x"})
	h := c.monitor(fmt.Sprintf("mongodb://%s,%s,{\"kind\": {\"$exists\": false}}", srv.Addr(), c.name), monitor.Options{})
	ev := h.WaitEvent(monitor.Touch, "app.ini")
	if string(ev.Config) != "[uwsgi]\nv = 1\n" || ev.Version.ModTime != now.UnixNano() {
		t.Errorf("created: config %q modtime %d, want %d", ev.Config, ev.Version.ModTime, now.UnixNano())
	}
	h.WaitLog("no change stream; polling")

	c.update("app.ini", bson.M{"config": "[uwsgi]\nv = 2\n", "ts": now.Add(time.Second)})
	ev = h.WaitEvent(monitor.Touch, "app.ini")
	if string(ev.Config) != "[uwsgi]\nv = 2\n" || !strings.Contains(ev.Reason, "modified") {
		t.Errorf("modified: config %q reason %q", ev.Config, ev.Reason)
	}
	c.remove("app.ini")
	h.WaitEvent(monitor.Destroy, "app.ini")
	for _, ev := range h.Seen {
		if ev.Key.Name == "other.ini" {
			t.Errorf("the JSON filter let other.ini through")
		}
	}
}

// Bad documents are refused with a message naming the document.
func TestBadDocuments(t *testing.T) {
	srv := testenv.StartMongoWire(t)
	c := newColl(t, srv)
	now := time.Now()
	c.insert(
		bson.M{"_id": "good", "name": "good.ini", "config": "[uwsgi]", "ts": now, "uid": 1000, "gid": 1000},
		bson.M{"_id": "noconfig", "name": "noconfig.ini", "ts": now, "uid": 1000, "gid": 1000},
		bson.M{"_id": "ext", "name": "app.txt", "config": "[uwsgi]", "ts": now, "uid": 1000, "gid": 1000},
		bson.M{"_id": "tsstr", "name": "ts.ini", "config": "[uwsgi]", "ts": "yesterday", "uid": 1000, "gid": 1000},
		bson.M{"_id": "root", "name": "root.ini", "config": "[uwsgi]", "ts": now, "uid": 0, "gid": 0},
		bson.M{"_id": "nouid", "name": "nouid.ini", "config": "[uwsgi]", "ts": now},
	)
	h := c.monitor("mongodb2://addr="+srv.Addr()+",collection="+c.name, monitor.Options{Tyrant: true})
	ev := h.WaitEvent(monitor.Touch, "good.ini")
	if ev.Owner == nil || ev.Owner.UID != 1000 {
		t.Errorf("owner %+v", ev.Owner)
	}
	h.WaitLog("bad row refused", `document _id \"noconfig\"`, "config is NULL")
	h.WaitLog("bad row refused", `document _id \"ext\"`, "no known config extension")
	h.WaitLog("bad row refused", `document _id \"tsstr\"`, "ts is a BSON string, want a date")
	h.WaitLog("bad row refused", `document _id \"root\"`, "refuses uid 0")
	h.WaitLog("bad row refused", `document _id \"nouid\"`, "uid is missing")
	if n := len(h.Drain()); n != 0 {
		t.Errorf("%d more events for bad documents", n)
	}
}

// Stopping the server emits nothing; once it is back the monitor resyncs
// and emits only what changed.
func TestOutageEmitsNothing(t *testing.T) {
	srv := testenv.StartMongoWire(t)
	c := newColl(t, srv)
	c.insert(bson.M{"name": "a.ini", "config": "[uwsgi]", "ts": time.Now()}, bson.M{"name": "b.ini", "config": "[uwsgi]", "ts": time.Now()})
	h := c.monitor("mongodb://"+srv.Addr()+","+c.name, monitor.Options{})
	h.WaitEvent(monitor.Touch, "a.ini")
	h.WaitEvent(monitor.Touch, "b.ini")

	srv.Stop()
	h.WaitLog("database scan failed; vassals keep running")
	if evs := h.Drain(); len(evs) != 0 {
		t.Fatalf("emitted during the outage: %s", monitortest.Describe(evs))
	}
	srv.Start()
	h.WaitLog("database reachable again; resyncing")
	c.update("b.ini", bson.M{"config": "[uwsgi]\nv = 2\n"})
	h.WaitEvent(monitor.Touch, "b.ini")
	for _, ev := range h.Drain() {
		if ev.Key.Name == "a.ini" {
			t.Errorf("a.ini: %s after the outage", ev.Op)
		}
	}
}
