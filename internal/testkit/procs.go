package testkit

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// Running reports whether a process runs: a zombie waiting for its parent
// to reap it does not.
func Running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// WaitGone waits up to Deadline until none of pids runs and returns those
// still running then (none when all went).
func WaitGone(pids []int) []int {
	deadline := time.Now().Add(Deadline)
	for {
		var left []int
		for _, p := range pids {
			if Running(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}
