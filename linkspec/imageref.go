package linkspec

import (
	"fmt"
	"strings"
)

// MaxImageNameLen bounds an image name (registry and path, without tag or
// digest), as Docker's reference grammar does.
const MaxImageNameLen = 255

// ImageRef is a container image reference in Docker's syntax:
// [domain[:port]/]path[:tag][@digest].
type ImageRef struct {
	// Domain is the registry (host, optionally :port); "" means Docker Hub.
	Domain string
	// Path is the repository: lower-case components joined by '/'.
	Path   string
	Tag    string // "" when none
	Digest string // "sha256:<64 hex>", "" when none
}

// Name is the repository with its registry, without tag or digest.
func (r ImageRef) Name() string {
	if r.Domain == "" {
		return r.Path
	}
	return r.Domain + "/" + r.Path
}

func (r ImageRef) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// ImageRefError says which part of an image reference is wrong.
type ImageRefError struct {
	Ref  string
	Part string // "reference", "domain", "path", "tag" or "digest"
	Msg  string
}

func (e *ImageRefError) Error() string { return fmt.Sprintf("image %q: %s", e.Ref, e.Msg) }

// ParseImageRef reads a Docker image reference exactly as Docker's reference
// grammar (distribution/reference) defines it, with Docker's rule for telling
// a registry from a first path component: it is a registry when it contains
// '.' or ':', is "localhost", or has upper-case letters. Only sha256 digests
// are accepted: registries and the Mesos image store use nothing else.
//
// It is written here rather than imported: the libraries that have one
// bring much more than a parser into every program that reads a spec.
func ParseImageRef(s string) (ImageRef, error) {
	fail := func(part, format string, args ...any) (ImageRef, error) {
		return ImageRef{}, &ImageRefError{Ref: s, Part: part, Msg: fmt.Sprintf(format, args...)}
	}
	if s == "" {
		return fail("reference", "the reference is empty")
	}
	if strings.TrimSpace(s) != s {
		return fail("reference", "the reference has leading or trailing white space")
	}
	var r ImageRef
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		r.Digest = rest[i+1:]
		rest = rest[:i]
		if msg := checkDigest(r.Digest); msg != "" {
			return fail("digest", "%s", msg)
		}
	}
	// A tag follows the last ':' after the last '/'; a ':' before it is a
	// registry port.
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && i > strings.LastIndexByte(rest, '/') {
		r.Tag = rest[i+1:]
		rest = rest[:i]
		if msg := checkTag(r.Tag); msg != "" {
			return fail("tag", "%s", msg)
		}
	}
	if rest == "" {
		return fail("path", "there is no repository name")
	}
	if len(rest) > MaxImageNameLen {
		return fail("reference", "the name %q is %d characters long; at most %d are allowed", truncate(rest, 40), len(rest), MaxImageNameLen)
	}
	path := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		first := rest[:i]
		if strings.ContainsAny(first, ".:[") || first == "localhost" || strings.ToLower(first) != first {
			r.Domain, path = first, rest[i+1:]
			if msg := checkDomain(r.Domain); msg != "" {
				return fail("domain", "%s", msg)
			}
		}
	}
	for _, c := range strings.Split(path, "/") {
		if msg := checkPathComponent(c); msg != "" {
			return fail("path", "%s", msg)
		}
	}
	r.Path = path
	return r, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checkPathComponent: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
func checkPathComponent(c string) string {
	if c == "" {
		return "the repository has an empty path component (two '/' in a row, or one at an end)"
	}
	for i := 0; i < len(c); i++ {
		ch := c[i]
		switch {
		case ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9':
			continue
		case ch >= 'A' && ch <= 'Z':
			return fmt.Sprintf("path component %q has upper-case letters; repository names are lower case", c)
		case ch == '.' || ch == '_' || ch == '-':
		default:
			return fmt.Sprintf("path component %q has %q; use lower-case letters, digits and the separators '.', '_', '__' or '-'", c, rune(ch))
		}
		// A separator: '.', '_', '__' or a run of '-', between alphanumerics.
		j := i
		switch ch {
		case '-':
			for j+1 < len(c) && c[j+1] == '-' {
				j++
			}
		case '_':
			if j+1 < len(c) && c[j+1] == '_' {
				j++
			}
		}
		if i == 0 || j+1 == len(c) || !isLowerAlnum(c[j+1]) {
			return fmt.Sprintf("path component %q has separator %q where it must be between letters or digits", c, c[i:j+1])
		}
		i = j
	}
	return ""
}

func isLowerAlnum(ch byte) bool { return ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' }

func isAlnum(ch byte) bool { return isLowerAlnum(ch) || ch >= 'A' && ch <= 'Z' }

// checkDomain: host[:port], host a DNS name, an IPv4 address or [IPv6].
func checkDomain(d string) string {
	host, port := d, ""
	if strings.HasPrefix(d, "[") {
		end := strings.IndexByte(d, ']')
		if end < 0 {
			return fmt.Sprintf("registry %q has '[' without ']'", d)
		}
		host, port = d[:end+1], d[end+1:]
		inner := host[1:end]
		if inner == "" || strings.Trim(inner, "0123456789abcdefABCDEF:") != "" {
			return fmt.Sprintf("registry %q is not a bracketed IPv6 address", host)
		}
		if port != "" && port[0] != ':' {
			return fmt.Sprintf("registry %q has %q after the address; write [addr]:port", d, port)
		}
	} else if i := strings.IndexByte(d, ':'); i >= 0 {
		host, port = d[:i], d[i:]
	}
	if port != "" {
		p := port[1:]
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return fmt.Sprintf("registry %q has port %q, which is not a number", d, p)
		}
	}
	if strings.HasPrefix(host, "[") {
		return ""
	}
	for _, c := range strings.Split(host, ".") {
		// [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
		ok := c != "" && isAlnum(c[0]) && isAlnum(c[len(c)-1])
		for i := 0; ok && i < len(c); i++ {
			ok = isAlnum(c[i]) || c[i] == '-'
		}
		if !ok {
			return fmt.Sprintf("registry %q is not a host name: each part between dots is letters, digits and '-', not starting or ending with '-'", host)
		}
	}
	return ""
}

// checkTag: [\w][\w.-]{0,127}
func checkTag(t string) string {
	if t == "" {
		return "the tag after ':' is empty"
	}
	if len(t) > 128 {
		return fmt.Sprintf("the tag is %d characters long; at most 128 are allowed", len(t))
	}
	for i := 0; i < len(t); i++ {
		ch := t[i]
		word := isAlnum(ch) || ch == '_'
		if !word && (i == 0 || ch != '.' && ch != '-') {
			if i == 0 && (ch == '.' || ch == '-') {
				return fmt.Sprintf("tag %q starts with %q; a tag starts with a letter, digit or '_'", t, rune(ch))
			}
			return fmt.Sprintf("tag %q has %q; a tag is letters, digits, '_', '.' and '-'", t, rune(ch))
		}
	}
	return ""
}

// checkDigest: sha256:<64 lower-case hex>.
func checkDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok {
		return fmt.Sprintf("digest %q has no algorithm; write sha256:<64 hex digits>", d)
	}
	if alg != "sha256" {
		return fmt.Sprintf("digest algorithm %q is not supported; use sha256", alg)
	}
	if len(hex) != 64 {
		return fmt.Sprintf("a sha256 digest has 64 hex digits, not %d", len(hex))
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Sprintf("digest has %q; use lower-case hex digits (0-9, a-f)", rune(c))
		}
	}
	return ""
}
