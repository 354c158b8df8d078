package peers

import "syscall"

// sysProcAttr puts the peer in its own process group, so Stop can signal it
// and any child, and asks the kernel to kill it if the thread that started it
// (kept alive by spawn) goes away, which happens when the test binary dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
