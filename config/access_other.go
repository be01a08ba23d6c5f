//go:build !unix

package config

import "os"

// readable reports whether path exists, where there is no access(2).
func readable(path string) bool {
	_, err := os.Stat(path)
	return path != "" && err == nil
}
