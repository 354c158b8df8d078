//go:build unix && !linux

package peers

import "syscall"

// sysProcAttr puts the peer in its own process group, so Stop can signal it
// and any child.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
