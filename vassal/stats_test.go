package vassal_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
)

// vassalStats is the part of the stats document the tests check, by
// uWSGI's names where uWSGI has the field.
type vassalStats struct {
	Pid     int    `json:"pid"`
	Name    string `json:"name"`
	Ready   bool   `json:"ready"`
	Loyal   bool   `json:"loyal"`
	Emperor bool   `json:"emperor"`
	Sockets []struct {
		Name, Proto, Option, Network, Addr string
		Queue                              uint64
		MaxQueue                           int `json:"max_queue"`
	} `json:"sockets"`
	Workers []struct {
		ID, Pid, Accepting, Respawns int
		RespawnCount                 int   `json:"respawn_count"`
		LastSpawn                    int64 `json:"last_spawn"`
		RSS, VSZ                     uint64
		Status, State                string
	} `json:"workers"`
}

func TestStats_TCP(t *testing.T) {
	needBinaries(t)
	port, statsPort := testenv.FreePort(t), testenv.FreePort(t)
	ini := writeFile(t, t.TempDir(), "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\nstats = 127.0.0.1:%d\n", port, bins.hello, statsPort))
	v := startVassal(t, []string{"--ini", ini}, nil)
	h := waitGet(t, port, startDeadline, nil)
	var st vassalStats
	waitFor(t, startDeadline, "stats showing a ready worker", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", statsPort), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		data, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatalf("stats are not JSON: %v\n%s", err, data)
		}
		return st.Ready && len(st.Workers) == 1 && st.Workers[0].State == "running"
	})
	if st.Pid != v.cmd.Process.Pid || st.Name != "app.ini" || st.Emperor || !st.Loyal {
		t.Errorf("stats %+v", st)
	}
	w := st.Workers[0]
	if w.Pid != h.pid || w.ID != 1 || w.Status != "idle" || w.Accepting != 1 || w.RespawnCount != 1 || w.Respawns != 0 || w.LastSpawn == 0 || w.RSS == 0 || w.VSZ < w.RSS {
		t.Errorf("worker %+v, want pid %d idle and accepting, spawned once, with its memory", w, h.pid)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if len(st.Sockets) != 1 || st.Sockets[0].Name != addr || st.Sockets[0].Proto != "http" || st.Sockets[0].MaxQueue == 0 ||
		st.Sockets[0].Addr != addr || st.Sockets[0].Option != "http-socket" || st.Sockets[0].Network != "tcp" {
		t.Errorf("sockets %+v", st.Sockets)
	}
}

func TestStats_UnixHTTP(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "stats.sock")
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf("[uwsgi]\nworker-exec = sleep 600\nstats = %s\nstats-http = true\n", sock))
	startVassal(t, []string{"--ini", ini}, nil)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	var st vassalStats
	waitFor(t, startDeadline, "stats over HTTP", func() bool {
		resp, err := client.Get("http://vassal/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("content type %q", ct)
		}
		if err := json.NewDecoder(bufio.NewReader(resp.Body)).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st.Ready
	})
	if len(st.Workers) != 1 || st.Workers[0].Pid == 0 {
		t.Errorf("workers %+v", st.Workers)
	}
}
