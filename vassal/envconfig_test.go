package vassal

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestLoadSettings_EnvironAndReload: the vassal reads UWSGI_* variables as
// options before its command line, and config logic's if-reload is taken
// only when the config is read again for a reload.
func TestLoadSettings_EnvironAndReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.ini")
	text := "[uwsgi]\nworker-exec = x\nif-reload\nsocket = 127.0.0.1:9202\nendif\nif-not-reload\nsocket = 127.0.0.1:9201\nendif\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	environ := []string{"UWSGI_SOCKET=127.0.0.1:9200", "UWSGI_EMPEROR_FD=3", "PATH=/bin"}
	for _, tc := range []struct {
		reload bool
		want   []string
	}{
		{false, []string{"127.0.0.1:9200", "127.0.0.1:9201"}},
		{true, []string{"127.0.0.1:9200", "127.0.0.1:9202"}},
	} {
		s, err := loadSettings([]string{"--ini", p}, environ, tc.reload, nil, nil, slogDiscard())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, sock := range s.Sockets {
			got = append(got, sock.Addr)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("reload=%v: sockets %q, want %q", tc.reload, got, tc.want)
		}
	}
}
