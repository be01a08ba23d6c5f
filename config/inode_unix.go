//go:build unix

package config

import (
	"io/fs"
	"strconv"
	"syscall"
)

// inodeOf returns the inode number of fi (from lstat) as text for %i.
func inodeOf(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return strconv.FormatUint(uint64(st.Ino), 10)
	}
	return ""
}
