package scheduler

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tiltai/tiltai/internal/elfstatic"
	"github.com/tiltai/tiltai/internal/imagetest"
	"github.com/tiltai/tiltai/localmesos"
)

// TestImageEntrypoint: with the agents' registry (a directory of docker-save
// archives), a service may name an image and no command: the scheduler
// reads the image's ENTRYPOINT and CMD when it accepts the spec (the args
// replace CMD, as with docker run), keeps them with the spec, and needs no
// registry to scale it; an image it cannot read is a located problem.
func TestImageEntrypoint(t *testing.T) {
	const static = "/bin/busybox"
	if ok, err := elfstatic.IsStatic(static); err != nil || !ok {
		t.Skipf("needs a static %s (Debian's busybox-static): %v", static, err)
	}
	registry := t.TempDir()
	imagetest.SaveLegacy(t, registry, "team/enc:1", imagetest.Image(t,
		v1.Config{Entrypoint: []string{"/usr/local/bin/enc", "--fast"}, Cmd: []string{"--rounds", "3"}},
		imagetest.Layer(t, imagetest.Entry{Name: "marker", Body: "x"})))
	h := newHarness(t, 1, func(_ *localmesos.Config, c *Config) {
		c.ExecutorBinary, c.DockerRegistry = static, registry
	})
	spec := "version: 1\nservices:\n  a:\n    image: team/enc:1\n  b:\n    image: team/enc:1\n    args: [--rounds, '5']\n"
	if code, body := h.do("PUT", "/v1/spec", []byte(spec), nil); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	v := h.sched.view.Load()
	for svc, want := range map[string][]string{
		"a": {"/usr/local/bin/enc", "--fast", "--rounds", "3"},
		"b": {"/usr/local/bin/enc", "--fast", "--rounds", "5"},
	} {
		if got := v.Commands[svc]; !slices.Equal(got, want) {
			t.Errorf("service %s runs %q, want %q", svc, got, want)
		}
	}
	// Scaling reads no registry: what was read is kept.
	if err := os.RemoveAll(registry); err != nil {
		t.Fatal(err)
	}
	if code, body := h.do("POST", "/v1/services/a/scale", []byte(`{"instances": 2}`), nil); code != 200 {
		t.Fatalf("scale without the registry: %d %s", code, body)
	}
	if got := h.sched.view.Load().Commands["a"]; !slices.Equal(got, []string{"/usr/local/bin/enc", "--fast", "--rounds", "3"}) {
		t.Errorf("after scaling, a runs %q", got)
	}
	// A new image that cannot be read: refused, located, nothing changed.
	code, body := h.do("PUT", "/v1/spec", []byte(strings.Replace(spec, "  b:\n    image: team/enc:1", "  b:\n    image: team/enc:2", 1)), nil)
	var got struct {
		Problems []struct {
			Path    string `json:"path"`
			Message string `json:"message"`
			Pos     struct{ Line int }
		} `json:"problems"`
	}
	if code != 422 || json.Unmarshal(body, &got) != nil || len(got.Problems) != 1 || got.Problems[0].Path != "services.b.image" || got.Problems[0].Pos.Line != 6 ||
		!strings.Contains(got.Problems[0].Message, "cannot read what image team/enc:2 runs from "+registry+": Failed to find archive for image 'team/enc:2'") {
		t.Errorf("unreadable image: %d %s", code, body)
	}
}
