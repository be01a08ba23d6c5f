package emperortest

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
)

// A test binary plays other programs (a vassal, a whole Emperor run as
// another user) for the tests that start it: TestMain registers each role
// and calls RunRole first, and a process started with RoleEnviron(name)
// runs that role instead of the tests.
//
//	func TestMain(m *testing.M) {
//		emperortest.Register("vassal", testVassal)
//		emperortest.RunRole()
//		os.Exit(m.Run())
//	}

// roleVar names the role a test binary plays.
const roleVar = "EMPEROR_TEST_ROLE"

var roles = struct {
	sync.Mutex
	run map[string]func(args []string) int
}{run: map[string]func(args []string) int{}}

// Register makes name a role this test binary can play: run gets the
// process's arguments and returns its exit code. Register panics if name is
// registered twice.
func Register(name string, run func(args []string) int) {
	roles.Lock()
	defer roles.Unlock()
	if _, dup := roles.run[name]; dup {
		panic("emperortest: role " + name + " registered twice")
	}
	roles.run[name] = run
}

// RunRole returns if this process runs the tests. If it was started to
// play a role, it plays it and exits with its code; a role never registered
// exits 2.
func RunRole() {
	name := os.Getenv(roleVar)
	if name == "" {
		return
	}
	roles.Lock()
	run, ok := roles.run[name]
	roles.Unlock()
	if !ok {
		fmt.Fprintf(os.Stderr, "test binary: no role %q registered\n", name)
		os.Exit(2)
	}
	os.Exit(run(os.Args[1:]))
}

// RoleEnviron returns this process's environment set to start the test
// binary as the role name.
func RoleEnviron(name string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, roleVar+"=") })
	return append(env, roleVar+"="+name)
}
