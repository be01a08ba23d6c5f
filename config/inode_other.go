//go:build !unix

package config

import "io/fs"

// inodeOf returns "" where the platform has no inode numbers.
func inodeOf(fs.FileInfo) string { return "" }
