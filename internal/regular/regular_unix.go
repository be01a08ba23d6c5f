//go:build unix

package regular

import (
	"io/fs"
	"os"
	"syscall"
)

const openFlags = os.O_RDONLY | syscall.O_NONBLOCK

func kindOf(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return Kind(uint32(st.Mode))
	}
	return fi.Mode().Type().String()
}

// Kind names the type of file a stat's mode (its S_IFMT bits) gives:
// "regular file", "directory", "fifo", "symlink", "socket", "character
// device", "block device" or "unknown type".
func Kind(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return "regular file"
	case syscall.S_IFDIR:
		return "directory"
	case syscall.S_IFIFO:
		return "fifo"
	case syscall.S_IFLNK:
		return "symlink"
	case syscall.S_IFSOCK:
		return "socket"
	case syscall.S_IFCHR:
		return "character device"
	case syscall.S_IFBLK:
		return "block device"
	}
	return "unknown type"
}

// NotRegular is the refusal of a file whose stat mode is mode, worded as
// Open words it: "not a regular file (fifo)".
func NotRegular(mode uint32) string { return (&notRegular{Kind(mode)}).Error() }
