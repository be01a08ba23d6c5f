package emperor_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testenv"
)

// With stats-http the stats server answers an HTTP client (curl, a
// browser, a monitoring probe): a 200 with a JSON content type and the
// stats document as its body.
func TestStatsOverHTTP(t *testing.T) {
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Stats, o.StatsHTTP = addr, true
	}})
	writeFile(t, filepath.Join(dir, "web.ini"), h.vassalConfig("name = web"))
	h.WaitNote("web accepting", emperortest.IsByte("web.ini", 5))
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	var s emperor.Stats
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("body is not the stats JSON: %v\n%.200s", err, body)
	}
	if len(s.Vassals) != 1 || s.Vassals[0].ID != "web.ini" {
		t.Errorf("stats over HTTP list %+v, want web.ini", s.Vassals)
	}
}
