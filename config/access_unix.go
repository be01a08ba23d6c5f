//go:build unix

package config

import "golang.org/x/sys/unix"

// readable reports whether path can be read, as access(2) with R_OK says:
// uWSGI's test for if-exists.
func readable(path string) bool {
	return path != "" && unix.Access(path, unix.R_OK) == nil
}
