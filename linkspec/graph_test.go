package linkspec

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tiltai/tiltai/internal/scripttest"
)

func mustParseFile(t *testing.T, path string) *Spec {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	spec, probs := Parse(path, data)
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	return spec
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if scripttest.Rewrite() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -rewrite)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestGraph(t *testing.T) {
	for _, name := range []string{"pipeline", "patterns"} {
		spec := mustParseFile(t, "testdata/graph/"+name+".yaml")
		var dot, text bytes.Buffer
		if err := WriteDOT(&dot, spec); err != nil {
			t.Fatal(err)
		}
		if err := WriteText(&text, spec); err != nil {
			t.Fatal(err)
		}
		golden(t, "testdata/graph/"+name+".dot", dot.Bytes())
		golden(t, "testdata/graph/"+name+".txt", text.Bytes())

		// The DOT must render: Graphviz is what users pipe it to.
		dotBin, err := exec.LookPath("dot")
		if err != nil {
			t.Fatal("graphviz's dot is not installed: run scripts/test (it installs graphviz) or apt-get install graphviz")
		}
		cmd := exec.Command(dotBin, "-Tsvg")
		cmd.Stdin = bytes.NewReader(dot.Bytes())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 || !bytes.Contains(out, []byte("<svg")) {
			t.Fatalf("dot failed on %s: %v\n%s", name, err, stderr.String())
		}
		for _, svc := range spec.ServiceNames() {
			if !bytes.Contains(out, []byte(svc)) {
				t.Errorf("rendered SVG lacks service %s", svc)
			}
		}
	}
}

// TestDiffImage starts from a service in an image.
func TestDiffImage(t *testing.T) {
	base := mustParseFile(t, "../examples/pipeline.yaml")
	enc := base.Services["encryptor"]
	enc.Image = "registry.example.com/team/encryptor:1.4"
	enc.Volumes = []Volume{{HostPath: "/var/lib/enc", ContainerPath: "/data", Mode: ReadOnly}}
	const d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	cases := []struct {
		name   string
		change func(s *Service)
		want   string
	}{
		{"new tag", func(s *Service) { s.Image = "registry.example.com/team/encryptor:1.5" },
			"~ service encryptor: image changed; 3 tasks replaced, rolling, drain first (image registry.example.com/team/encryptor:1.4 -> :1.5)"},
		{"pinned to a digest", func(s *Service) { s.Image = "registry.example.com/team/encryptor@" + d },
			"~ service encryptor: image changed; 3 tasks replaced, rolling, drain first (image registry.example.com/team/encryptor:1.4 -> @" + d + ")"},
		{"another repository", func(s *Service) { s.Image = "localhost:5000/enc:1.4" },
			"~ service encryptor: image changed; 3 tasks replaced, rolling, drain first (image registry.example.com/team/encryptor:1.4 -> localhost:5000/enc:1.4)"},
		{"tag dropped", func(s *Service) { s.Image = "registry.example.com/team/encryptor" },
			"~ service encryptor: image changed; 3 tasks replaced, rolling, drain first (image registry.example.com/team/encryptor:1.4 -> registry.example.com/team/encryptor)"},
		{"out of the image", func(s *Service) { s.Image, s.Volumes = "", nil },
			"~ service encryptor: image, volumes changed; 3 tasks replaced, rolling, drain first (image registry.example.com/team/encryptor:1.4 -> none)"},
		{"volume made writable", func(s *Service) {
			s.Volumes = []Volume{{HostPath: "/var/lib/enc", ContainerPath: "/data", Mode: ReadWrite}}
		},
			"~ service encryptor: volumes changed; 3 tasks replaced, rolling, drain first"},
		{"force_pull", func(s *Service) { s.ForcePull = true },
			"~ service encryptor: force_pull changed; applied without restarting tasks"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next := base.Clone()
			c.change(next.Services["encryptor"])
			var got []string
			for _, ch := range Diff(base, next) {
				got = append(got, ch.String())
			}
			if strings.Join(got, "\n") != c.want {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), c.want)
			}
		})
	}
}

// Services without an image keep the digest they had before images
// existed, so upgrading the scheduler replaces none of their tasks.
func TestServiceDigestWithoutImage(t *testing.T) {
	s := mustParseFile(t, "../examples/pipeline.yaml")
	want := map[string]string{"encryptor": "9df28cf67c39d10c", "feeder": "685e0b5ea85f1b5a", "printer": "b4cb2b29034a91cc"}
	for n, d := range want {
		if got := s.ServiceDigest(n); got != d {
			t.Errorf("%s: digest %s, want %s", n, got, d)
		}
	}
}

func TestDiff(t *testing.T) {
	base := mustParseFile(t, "../examples/pipeline.yaml")
	cases := []struct {
		name   string
		change func(s *Spec)
		want   []string
	}{
		{"nothing", func(s *Spec) {}, nil},
		{"scale down", func(s *Spec) { s.Services["encryptor"].Instances = 1 },
			[]string{"~ service encryptor: instances 3 -> 1, scale down (drain first)"}},
		{"new args replace tasks", func(s *Spec) { s.Services["encryptor"].Args = []string{"demo", "encryptor", "--fast"} },
			[]string{"~ service encryptor: args changed; 3 tasks replaced, rolling, drain first"}},
		{"grace period applies in place", func(s *Spec) { s.Services["encryptor"].KillGracePeriod = Duration(30e9) },
			[]string{"~ service encryptor: kill_grace_period changed; applied without restarting tasks"}},
		{"into an image", func(s *Spec) { s.Services["encryptor"].Image = "registry.example.com/team/encryptor:1.4" },
			[]string{"~ service encryptor: image changed; 3 tasks replaced, rolling, drain first (image none -> registry.example.com/team/encryptor:1.4)"}},
		{"force_pull alone applies in place", func(s *Spec) { s.Services["encryptor"].ForcePull = true },
			[]string{"~ service encryptor: force_pull changed; applied without restarting tasks"}},
		{"remove printer", func(s *Spec) {
			delete(s.Services, "printer")
			s.Links = s.Links[:1]
			delete(s.Services["encryptor"].Gates, "ciphertext")
		}, []string{
			"~ service encryptor: gates changed; 3 tasks replaced, rolling, drain first",
			"- service printer (1 instance drained and killed)",
			"- link encryptor.ciphertext -> printer.ciphertext",
		}},
		{"add a service and link", func(s *Spec) {
			c := *s.Services["printer"]
			c.Name = "archiver"
			c.Instances = 2
			s.Services["archiver"] = &c
			s.Links = append(s.Links, Link{GateRef{"encryptor", "ciphertext"}, GateRef{"archiver", "ciphertext"}})
		}, []string{
			"+ service archiver (2 instances)",
			"+ link encryptor.ciphertext -> archiver.ciphertext",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next := base.Clone()
			c.change(next)
			var got []string
			for _, ch := range Diff(base, next) {
				got = append(got, ch.String())
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}
