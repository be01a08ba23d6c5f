package emperor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/protocol"
)

// fleet is an Emperor table of n running, loyal vassals, as the loop holds
// it after a cold start (no processes behind them: only stats read it).
func fleet(n int) *Emperor {
	e := &Emperor{vassals: map[monitor.Key]*vassal{}, monitorNames: map[string]string{"m": "dir:///etc/vassals"}, counters: newCounters()}
	now := stampNow()
	for i := range n {
		k := monitor.Key{Monitor: "m", Name: fmt.Sprintf("shop-%05d.ini", i)}
		v := &vassal{ev: monitor.Event{Key: k}, state: Running, since: now, want: true, firstRun: now,
			proc:     &process{pid: 10000 + i, started: now},
			received: []byteCount{{protocol.Spawned, 1}, {protocol.Accepting, 1}, {protocol.Loyal, 1}}}
		v.said = protoState{ready: true, accepting: true, loyal: true, lastReady: now, lastAccepting: now, lastLoyal: now}
		e.vassals[k] = v
	}
	return e
}

// BenchmarkStatsLoop10000 is the time the loop spends on one stats or
// metrics request at 10,000 vassals: filling in the snapshot, in a slice
// that Snapshot allocated off the loop. Issue 15 wants a few ms at most.
func BenchmarkStatsLoop10000(b *testing.B) {
	e := fleet(10000)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		vassals := make([]VassalStats, 0, len(e.vassals)+64)
		b.StartTimer()
		e.stats(vassals)
	}
}

// BenchmarkStatsRender10000 is the rest of a stats answer at 10,000
// vassals, off the loop: the snapshot's vassals completed and encoded as
// the stats server sends them. With BenchmarkStatsLoop10000 it is the
// whole time to serve the JSON (issue 15: under 200 ms).
func BenchmarkStatsRender10000(b *testing.B) {
	e := fleet(10000)
	var scratch bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		s := e.stats(nil)
		completeStats(s)
		scratch.Reset()
		if err := json.NewEncoder(&scratch).Encode(s); err != nil {
			b.Fatal(err)
		}
		var out bytes.Buffer
		if err := json.Indent(&out, scratch.Bytes(), "", "\t"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMetricsRender10000 is a metrics scrape at 10,000 vassals, off
// the loop.
func BenchmarkMetricsRender10000(b *testing.B) {
	e := fleet(10000)
	var scratch bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		scratch.Reset()
		s := e.stats(nil)
		completeStats(s)
		writeMetrics(&scratch, s, true)
	}
}
