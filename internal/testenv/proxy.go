package testenv

import (
	"testing"

	"github.com/emperor-dev/emperor/internal/cutproxy"
)

// NewProxy puts a cuttable proxy (internal/cutproxy) on a free loopback
// port before target, until the test ends.
func NewProxy(t testing.TB, target string) *cutproxy.Proxy {
	t.Helper()
	p, err := cutproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
