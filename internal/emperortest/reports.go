package emperortest

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// ListenJSON receives JSON datagrams of type T, such as a test vassal's
// reports, on a unix socket named name in dir (a temporary directory when
// empty), open to every user since vassals may run as another. It returns
// the socket's path and the inbox the datagrams land in; the socket closes
// when the test ends.
func ListenJSON[T any](t testing.TB, dir, name string) (string, *Inbox[T]) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, name)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	in := &Inbox[T]{}
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			var r T
			if json.Unmarshal(buf[:n], &r) == nil {
				in.Add(r)
			}
		}
	}()
	return path, in
}
