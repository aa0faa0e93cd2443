package linkspec

import (
	"errors"
	"strings"
	"testing"
)

const testDigest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// imageRefCases are shared with the cross-check against go-containerregistry
// (see TestParseImageRef): part "" means valid.
var imageRefCases = []struct {
	in                        string
	domain, path, tag, digest string
	part                      string
}{
	{in: "busybox", path: "busybox"},
	{in: "busybox:1.36", path: "busybox", tag: "1.36"},
	{in: "library/busybox:latest", path: "library/busybox", tag: "latest"},
	{in: "registry.example.com/team/encryptor:1.4", domain: "registry.example.com", path: "team/encryptor", tag: "1.4"},
	{in: "registry.example.com:5000/team/encryptor", domain: "registry.example.com:5000", path: "team/encryptor"},
	{in: "localhost/enc", domain: "localhost", path: "enc"},
	{in: "localhost:5000/enc:v1", domain: "localhost:5000", path: "enc", tag: "v1"},
	{in: "127.0.0.1:5000/enc", domain: "127.0.0.1:5000", path: "enc"},
	{in: "[::1]:5000/enc", domain: "[::1]:5000", path: "enc"},
	{in: "Registry.Example.com/enc", domain: "Registry.Example.com", path: "enc"},
	{in: "enc@" + testDigest, path: "enc", digest: testDigest},
	{in: "r.io/a/b:1.0@" + testDigest, domain: "r.io", path: "a/b", tag: "1.0", digest: testDigest},
	{in: "a.b_c/g", part: "domain"}, // a registry ('.'), and hosts have no '_'
	{in: "team/a.b_c__d-e---f", path: "team/a.b_c__d-e---f"},
	{in: "enc:_x.Y-9", path: "enc", tag: "_x.Y-9"},
	{in: "enc:" + strings.Repeat("t", 128), path: "enc", tag: strings.Repeat("t", 128)},
	{in: "localhost:5000", path: "localhost", tag: "5000"},

	{in: "", part: "reference"},
	{in: " enc", part: "reference"},
	{in: "Team/Enc", part: "path"},
	{in: "team/Enc", part: "path"},
	{in: "team//enc", part: "path"},
	{in: "team/enc/", part: "path"},
	{in: "/enc", part: "path"},
	{in: "-enc", part: "path"},
	{in: "enc-", part: "path"},
	{in: "a___b", part: "path"},
	{in: "a._b", part: "path"},
	{in: "a$b", part: "path"},
	{in: "r.io/" + strings.Repeat("a", 251), part: "reference"},
	{in: "enc:", part: "tag"},
	{in: "enc:.x", part: "tag"},
	{in: "enc:-x", part: "tag"},
	{in: "enc:a+b", part: "tag"},
	{in: "enc:" + strings.Repeat("t", 129), part: "tag"},
	{in: "enc@sha256:abc", part: "digest"},
	{in: "enc@sha512:" + strings.Repeat("a", 128), part: "digest"},
	{in: "enc@" + strings.ToUpper(testDigest[7:]), part: "digest"},
	{in: "enc@sha256:" + strings.Repeat("A", 64), part: "digest"},
	{in: "enc@", part: "digest"},
	{in: "-r.io/enc", part: "domain"},
	{in: "r.io:/enc", part: "domain"},
	{in: "r.io:50x/enc", part: "domain"},
	{in: "r..io/enc", part: "domain"},
	{in: "[::1/enc", part: "domain"},
	{in: "[zz]/enc", part: "domain"},
	{in: ":5000/enc", part: "domain"},
	{in: "r.io/", part: "path"},
	{in: ":tag", part: "path"},
}

func TestParseImageRef(t *testing.T) {
	for _, c := range imageRefCases {
		r, err := ParseImageRef(c.in)
		if c.part != "" {
			var ie *ImageRefError
			if !errors.As(err, &ie) || ie.Part != c.part {
				t.Errorf("ParseImageRef(%q) = %+v, %v; want a %s error", c.in, r, err, c.part)
			}
			continue
		}
		want := ImageRef{Domain: c.domain, Path: c.path, Tag: c.tag, Digest: c.digest}
		if err != nil || r != want {
			t.Errorf("ParseImageRef(%q) = %+v, %v; want %+v", c.in, r, err, want)
			continue
		}
		if r.String() != c.in {
			t.Errorf("ParseImageRef(%q).String() = %q", c.in, r.String())
		}
	}
}

func FuzzParseImageRef(f *testing.F) {
	for _, c := range imageRefCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseImageRef(s)
		if err != nil {
			return
		}
		// Whatever parses prints back as written and parses to itself.
		if r.String() != s {
			t.Fatalf("%q parsed to %+v, which prints as %q", s, r, r.String())
		}
		if len(r.Name()) > MaxImageNameLen {
			t.Fatalf("%q: name longer than %d", s, MaxImageNameLen)
		}
	})
}
