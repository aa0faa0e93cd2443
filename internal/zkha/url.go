package zkha

import (
	"fmt"
	"strings"

	"github.com/tiltai/tiltai/internal/hostport"
)

// DefaultPort is ZooKeeper's client port, used for a server written without
// one ("zk://zk1/tiltai").
const DefaultPort = 2181

// URL is a parsed zk:// URL: the ensemble to connect to, the path under which
// everything lives, and optional digest credentials.
type URL struct {
	Servers  []string // "host:port", in the order written
	Path     string   // absolute, no trailing slash, never "/"
	Username string   // digest auth; empty for none
	Password string
}

// String renders the URL with the password masked, so it can be logged.
func (u URL) String() string {
	var b strings.Builder
	b.WriteString("zk://")
	if u.Username != "" {
		b.WriteString(u.Username)
		b.WriteString(":***@")
	}
	b.WriteString(strings.Join(u.Servers, ","))
	b.WriteString(u.Path)
	return b.String()
}

// URLError is a zk:// URL that could not be parsed: which input, at which
// column (1-based, counted in bytes), and what was wrong there.
type URLError struct {
	Input  string
	Column int
	Msg    string
}

func (e *URLError) Error() string {
	return fmt.Sprintf("invalid ZooKeeper URL %q at column %d: %s (want zk://[user:password@]host:port[,host:port...]/path)",
		redact(e.Input), e.Column, e.Msg)
}

// redact masks the password of a URL that failed to parse, as far as it can
// be found, so errors can be printed and logged.
func redact(s string) string {
	rest, ok := strings.CutPrefix(s, "zk://")
	if !ok {
		return s
	}
	at := strings.LastIndex(rest[:pathStart(rest)], "@")
	if at < 0 {
		return s
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return s
	}
	return "zk://" + user + ":***" + rest[at:]
}

// pathStart is the index of the first '/' in s, or len(s).
func pathStart(s string) int {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return i
	}
	return len(s)
}

// ParseURL parses a zk:// URL as Mesos and Marathon write them:
// zk://[user:password@]host[:port][,host[:port]...]/path. Hosts are names,
// IPv4 addresses or bracketed IPv6 addresses; a missing port means 2181. The
// path must name a znode below the root; its segments may hold letters,
// digits, '.', '_' and '-'. Errors name the column of the first problem.
func ParseURL(s string) (URL, error) {
	fail := func(col int, format string, args ...any) (URL, error) {
		return URL{}, &URLError{Input: s, Column: col + 1, Msg: fmt.Sprintf(format, args...)}
	}
	const scheme = "zk://"
	if s == "" {
		return fail(0, "empty")
	}
	if !strings.HasPrefix(s, scheme) {
		if i := strings.Index(s, "://"); i >= 0 {
			return fail(0, "scheme %q is not zk", s[:i])
		}
		return fail(0, "missing the zk:// scheme")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return fail(i, "byte 0x%02x is not allowed (spaces and control or non-ASCII characters)", c)
		}
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return fail(i, "query strings and fragments are not supported")
	}
	off := len(scheme)
	rest := s[off:]
	slash := pathStart(rest)
	authority, path := rest[:slash], rest[slash:]

	var u URL
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		user, pass, ok := strings.Cut(authority[:at], ":")
		switch {
		case !ok:
			return fail(off, "credentials must be user:password")
		case user == "":
			return fail(off, "empty user name before ':'")
		case pass == "":
			return fail(off+len(user)+1, "empty password")
		}
		u.Username, u.Password = user, pass
		off += at + 1
		authority = authority[at+1:]
	}

	if authority == "" {
		return fail(off, "no ZooKeeper server given")
	}
	pos := off
	for _, hp := range strings.Split(authority, ",") {
		addr, col, msg := parseHostPort(hp)
		if msg != "" {
			return fail(pos+col, "server %q: %s", hp, msg)
		}
		u.Servers = append(u.Servers, addr)
		pos += len(hp) + 1
	}
	pathOff := off + len(authority)

	switch {
	case path == "":
		return fail(pathOff, "missing the path (the znode under which to keep data, e.g. /tiltai)")
	case path == "/":
		return fail(pathOff, "the path must name a znode below the root, e.g. /tiltai")
	case strings.HasSuffix(path, "/"):
		return fail(pathOff+len(path)-1, "trailing '/' in the path")
	}
	segOff := pathOff + 1
	for i, seg := range strings.Split(path[1:], "/") {
		if i == 0 && seg == "zookeeper" {
			return fail(segOff, "/zookeeper is ZooKeeper's own znode; choose another path")
		}
		if col, msg := checkSegment(seg); msg != "" {
			return fail(segOff+col, "path segment %q: %s", seg, msg)
		}
		segOff += len(seg) + 1
	}
	u.Path = path
	return u, nil
}

// checkSegment accepts the characters that need no quoting anywhere (shell,
// zkCli, URLs).
func checkSegment(seg string) (int, string) {
	switch seg {
	case "":
		return 0, "empty (two '/' in a row)"
	case ".", "..":
		return 0, "relative segments are not allowed"
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return i, fmt.Sprintf("character %q is not allowed (use letters, digits, '.', '_' or '-')", c)
		}
	}
	return 0, ""
}

// parseHostPort checks one "host[:port]" of the server list; an empty one
// is two commas in a row or a comma at an end.
func parseHostPort(hp string) (string, int, string) {
	if hp == "" {
		return "", 0, "empty server (two commas, or a comma at an end)"
	}
	return hostport.Parse(hp, DefaultPort)
}
