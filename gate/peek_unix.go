//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package gate

import "syscall"

// peerGone reports whether the peer has closed or reset the connection,
// without reading anything: a non-blocking peek at the socket (through TLS
// too, which it looks under). Data waiting is not gone: whoever reads next
// sees it.
func peerGone(rc syscall.RawConn) bool {
	if rc == nil {
		return false
	}
	gone := false
	rc.Control(func(fd uintptr) {
		var b [1]byte
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if err == syscall.EINTR {
				continue
			}
			gone = (n == 0 && err == nil) || (err != nil && err != syscall.EAGAIN && err != syscall.EWOULDBLOCK)
			return
		}
	})
	return gone
}
