package detect

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/tiltai/tiltai/internal/hostport"
	"github.com/tiltai/tiltai/internal/zkha"
)

// DefaultPort is the Mesos master's port when a host is given without one.
const DefaultPort = 5050

// Kind says how a --master value finds the master.
type Kind int

const (
	// Static: a fixed master URL (host:port or http(s)://).
	Static Kind = iota + 1
	// ZooKeeper: follow the masters' election in ZooKeeper.
	ZooKeeper
	// File: read the value from a file (file:///path), as Mesos does.
	File
)

// Source is a parsed --master value.
type Source struct {
	Kind Kind
	URL  *url.URL // Static: scheme, host:port and an optional path prefix
	ZK   zkha.URL // ZooKeeper: ensemble, path and credentials
	Path string   // File: the file to read
}

// String renders the source for logs, credentials masked.
func (s Source) String() string {
	switch s.Kind {
	case Static:
		return s.URL.String()
	case ZooKeeper:
		return s.ZK.String()
	case File:
		return "file://" + s.Path
	}
	return "(none)"
}

// FlagError is a --master value that could not be parsed: at which column
// (1-based, in bytes) and what was wrong there.
type FlagError struct {
	Input  string
	Column int
	Msg    string
}

func (e *FlagError) Error() string {
	return fmt.Sprintf("invalid --master %q at column %d: %s (want host:port, http(s)://host:port[/path], "+
		"zk://host:port[,host:port...]/path or file:///path)", e.Input, e.Column, e.Msg)
}

// ParseFlag parses a --master value. It does no IO: a file:// source is read
// by New.
func ParseFlag(s string) (Source, error) {
	fail := func(col int, format string, args ...any) (Source, error) {
		return Source{}, &FlagError{Input: s, Column: col + 1, Msg: fmt.Sprintf(format, args...)}
	}
	if s == "" {
		return fail(0, "empty; set --master or MESOS_MASTER")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return fail(i, "byte 0x%02x is not allowed (spaces and control or non-ASCII characters)", c)
		}
	}
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		hp, col, msg := hostPort(s)
		if msg != "" {
			return fail(col, "%s", msg)
		}
		return Source{Kind: Static, URL: &url.URL{Scheme: "http", Host: hp}}, nil
	}
	switch scheme {
	case "zk":
		u, err := zkha.ParseURL(s)
		if err != nil {
			var ue *zkha.URLError
			if errors.As(err, &ue) {
				return Source{}, &FlagError{Input: redactZK(s), Column: ue.Column, Msg: ue.Msg}
			}
			return Source{}, err
		}
		return Source{Kind: ZooKeeper, ZK: u}, nil
	case "file":
		switch {
		case rest == "":
			return fail(len(s), "missing the file path")
		case rest[0] != '/':
			return fail(len(scheme)+3, "file:// needs an absolute path (file:///etc/mesos/master)")
		}
		return Source{Kind: File, Path: rest}, nil
	case "http", "https":
	default:
		return fail(0, "scheme %q is not http, https, zk or file", scheme)
	}
	off := len(scheme) + 3
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return fail(i, "query strings and fragments are not supported")
	}
	slash := strings.IndexByte(rest, '/')
	authority, path := rest, ""
	if slash >= 0 {
		authority, path = rest[:slash], rest[slash:]
	}
	if at := strings.IndexByte(authority, '@'); at >= 0 {
		return fail(off, "credentials do not belong in the URL; use --mesos_authentication_principal and --mesos_authentication_secret_file")
	}
	hp, col, msg := hostPort(authority)
	if msg != "" {
		return fail(off+col, "%s", msg)
	}
	if strings.Contains(path, "//") {
		return fail(off+len(authority)+strings.Index(path, "//"), "empty segment in the path")
	}
	path = strings.TrimSuffix(path, "/")
	// The path is written as in a URL: %XX escapes stand for their byte, so
	// that the URL this returns reads back the same.
	unescaped, err := url.PathUnescape(path)
	if err != nil {
		return fail(off+len(authority)+max(strings.IndexByte(path, '%'), 0), "bad %%-escape in the path")
	}
	return Source{Kind: Static, URL: &url.URL{Scheme: scheme, Host: hp, Path: unescaped}}, nil
}

// hostPort checks "host[:port]" (IPv6 in brackets) and fills in the port.
func hostPort(hp string) (string, int, string) { return hostport.Parse(hp, DefaultPort) }

// redactZK masks a zk:// password in an input echoed by an error.
func redactZK(s string) string {
	rest := strings.TrimPrefix(s, "zk://")
	end := strings.IndexByte(rest, '/')
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at < 0 {
		return s
	}
	user, _, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return s
	}
	return "zk://" + user + ":***" + rest[at:]
}
