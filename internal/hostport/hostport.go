// Package hostport parses "host[:port]" the way Tiltai's flag parsers need
// it: with the column of the first problem, so that a flag's error can point
// at it, and the port filled in when it is left out. It is shared by the
// --zk parser (internal/zkha) and the --master parser (scheduler/detect).
package hostport

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Parse checks hp ("host", "host:port", "[v6]" or "[v6]:port"; host a DNS
// name or an IPv4 address) and returns "host:port" with defaultPort filled
// in. On a problem it returns the 0-based column within hp and what is
// wrong. An unbracketed IPv6 address is refused with the fix.
func Parse(hp string, defaultPort int) (addr string, col int, msg string) {
	if hp == "" {
		return "", 0, "no host given"
	}
	host, port := hp, ""
	if hp[0] == '[' {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", 0, "IPv6 address without the closing ']'"
		}
		host = hp[1:end]
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return "", 1, "not an IPv6 address"
		}
		switch after := hp[end+1:]; {
		case after == "":
		case after[0] == ':':
			port = after[1:]
			if port == "" {
				return "", end + 1, "empty port after ':'"
			}
		default:
			return "", end + 1, "expected ':port' after the IPv6 address"
		}
	} else {
		if i := strings.LastIndexByte(hp, ':'); i >= 0 {
			host, port = hp[:i], hp[i+1:]
			if port == "" {
				return "", i, "empty port after ':'"
			}
			if strings.IndexByte(host, ':') >= 0 {
				return "", 0, fmt.Sprintf("an IPv6 address must be written in brackets, e.g. [::1]:%d", defaultPort)
			}
		}
		if host == "" {
			return "", 0, "empty host name"
		}
		if col, msg := CheckHost(host); msg != "" {
			return "", col, msg
		}
	}
	p := defaultPort
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '-' {
			return "", len(hp) - len(port), fmt.Sprintf("port %q is not a number from 1 to 65535", port)
		}
		p = n
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), 0, ""
}

// CheckHost accepts DNS names and IPv4 addresses: letters, digits, '-', '_'
// and '.', no empty labels, at most 253 bytes. It returns the column of
// the first problem and what it is, or "" when h is fine.
func CheckHost(h string) (int, string) {
	if len(h) > 253 {
		return 0, "host name longer than 253 bytes"
	}
	off := 0
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return off, "empty label in the host name"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return off + i, fmt.Sprintf("character %q is not allowed in a host name", c)
			}
		}
		off += len(label) + 1
	}
	return 0, ""
}
