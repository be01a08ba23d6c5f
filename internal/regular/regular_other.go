//go:build !unix

package regular

import (
	"io/fs"
	"os"
)

const openFlags = os.O_RDONLY

func kindOf(fi fs.FileInfo) string { return fi.Mode().Type().String() }
