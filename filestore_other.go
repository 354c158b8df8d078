//go:build !unix

package securehttp

import (
	"fmt"
	"io/fs"
	"os"
)

// openTokenFile opens path for reading, refusing a symbolic link. Without
// O_NOFOLLOW the check is made before opening; the platforms this file
// serves have no FIFOs at ordinary paths.
func openTokenFile(path string) (*os.File, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%w: %s is a symbolic link", ErrInsecureTokenFile, path)
	}
	return os.Open(path)
}

// checkTokenFileOwner accepts any owner: file ownership is not a uid here.
func checkTokenFileOwner(string, fs.FileInfo) error { return nil }

// openCertFile opens a client certificate or key file for reading; the
// platforms this file serves have no FIFOs at ordinary paths, and
// readCertFile's fstat refuses what is not a regular file.
func openCertFile(path string) (*os.File, error) { return os.Open(path) }
