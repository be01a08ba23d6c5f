package vassal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// serverInode returns the inode of the socket at the other end of conn (the
// server's accepted socket), from /proc/net/tcp or /proc/net/tcp6. It is 0
// while the connection waits in the listen queue: an unaccepted connection
// has no socket object yet. Both ends are in the vassal's own network
// namespace. On a host with a very large number of connections this read
// is slow; a sock_diag query would be the cheaper route.
func serverInode(conn *net.TCPConn) (uint64, error) {
	local, ok1 := conn.LocalAddr().(*net.TCPAddr)
	remote, ok2 := conn.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return 0, errors.New("not a TCP connection")
	}
	table := "/proc/net/tcp"
	if remote.IP.To4() == nil {
		table = "/proc/net/tcp6"
	}
	data, err := os.ReadFile(table)
	if err != nil {
		return 0, err
	}
	// The server's socket has our remote address as its local one.
	wantLocal, wantRemote := procNetAddr(remote), procNetAddr(local)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[1] != wantLocal || f[2] != wantRemote {
			continue
		}
		return strconv.ParseUint(f[9], 10, 64)
	}
	return 0, sc.Err()
}

// procNetAddr formats an address as /proc/net/tcp{,6} prints it: the IP as
// 32-bit words in host byte order, each as 8 hex digits, then ":" and the
// port as 4 hex digits.
func procNetAddr(a *net.TCPAddr) string {
	var b strings.Builder
	ip := a.IP.To4()
	if ip == nil {
		ip = a.IP.To16()
	}
	for i := 0; i+4 <= len(ip); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(ip[i:i+4]))
	}
	fmt.Fprintf(&b, ":%04X", a.Port)
	return b.String()
}

// socketOwner returns the worker (one of leaders) whose process group holds
// the socket inode, or 0. The worker itself is checked first, as it usually
// is the program (the shell execs a simple command); then every process in
// a worker's group.
func socketOwner(inode uint64, leaders []int) int {
	if len(leaders) == 0 {
		return 0
	}
	target := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	for _, pid := range leaders {
		if holdsFile(pid, target) {
			return pid
		}
	}
	isLeader := make(map[int]bool, len(leaders))
	for _, pid := range leaders {
		isLeader[pid] = true
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || isLeader[pid] {
			continue
		}
		if pgrp := processGroup(pid); isLeader[pgrp] && holdsFile(pid, target) {
			return pgrp
		}
	}
	return 0
}

// holdsFile reports whether process pid has an fd whose link reads target.
func holdsFile(pid int, target string) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if link, err := os.Readlink(dir + e.Name()); err == nil && link == target {
			return true
		}
	}
	return false
}

// processGroup returns the process group of pid from /proc/PID/stat, or 0.
func processGroup(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 3 {
		return 0
	}
	pgrp, _ := strconv.Atoi(f[2])
	return pgrp
}

// TCP states as /proc/net/tcp prints them.
const (
	tcpEstablished = "01"
	tcpListen      = "0A"
)

// tcpEntry is one line of /proc/net/tcp{,6}.
type tcpEntry struct {
	local   string // procNetAddr form
	state   string
	rxQueue uint64 // for a listening socket: connections waiting in accept
}

// readTCPTable reads /proc/net/tcp and /proc/net/tcp6 (a missing table,
// as without IPv6, is skipped).
func readTCPTable() ([]tcpEntry, error) {
	var out []tcpEntry
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 5 || f[0] == "sl" {
				continue
			}
			_, rx, _ := strings.Cut(f[4], ":")
			q, _ := strconv.ParseUint(rx, 16, 64)
			out = append(out, tcpEntry{local: f[1], state: f[3], rxQueue: q})
		}
	}
	return out, nil
}

// netLoad is what the TCP table says about one listening socket.
type netLoad struct {
	queue       uint64 // connections waiting to be accepted
	established int    // connections to it that are open
}

// loadOf finds the load of the TCP listener bound to local.
func loadOf(entries []tcpEntry, local *net.TCPAddr) netLoad {
	var ld netLoad
	want := procNetAddr(local)
	port := fmt.Sprintf(":%04X", local.Port)
	for _, e := range entries {
		switch e.state {
		case tcpListen:
			if e.local == want {
				ld.queue = e.rxQueue
			}
		case tcpEstablished:
			if strings.HasSuffix(e.local, port) && (local.IP.IsUnspecified() || e.local == want) {
				ld.established++
			}
		}
	}
	return ld
}
