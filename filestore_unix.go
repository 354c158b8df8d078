//go:build unix

package securehttp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// openTokenFile opens path for reading without following a symbolic link
// at its last component and without blocking: a FIFO or a device planted at
// the path opens at once, and the caller's fstat then refuses it.
func openTokenFile(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), path), nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ENOENT):
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		// O_NOFOLLOW fails with ELOOP on Linux, EMLINK on FreeBSD and
		// EFTYPE on NetBSD: ask the file system rather than the errno.
		if info, lerr := os.Lstat(path); lerr == nil && info.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%w: %s is a symbolic link", ErrInsecureTokenFile, path)
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
}

// checkTokenFileOwner requires the file to belong to the current user, as
// ssh requires of its keys: a file another user owns, however private, is
// that user's to change.
func checkTokenFileOwner(path string, info fs.FileInfo) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%w: cannot read the owner of %s", ErrInsecureTokenFile, path)
	}
	if uid := os.Geteuid(); int64(st.Uid) != int64(uid) {
		return fmt.Errorf("%w: %s is owned by uid %d, not by the current user (uid %d)", ErrInsecureTokenFile, path, st.Uid, uid)
	}
	return nil
}

// openCertFile opens a client certificate or key file for reading,
// following symbolic links, without blocking: a FIFO planted at the path
// opens at once, and readCertFile's fstat then refuses it.
func openCertFile(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
