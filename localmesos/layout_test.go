package localmesos

import (
	"os/exec"
	"strings"
	"testing"
)

// TestMasterAndAgentApart checks that the master and the agents stay apart:
// neither package depends on the other, and what they share (link, api)
// depends on neither. They meet only in Cluster.
func TestMasterAndAgentApart(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool:", err)
	}
	const base = "github.com/tiltai/tiltai/localmesos/internal/"
	for _, c := range []struct {
		pkg       string
		forbidden []string
	}{
		{"master", []string{"agent"}},
		{"agent", []string{"master"}},
		{"link", []string{"master", "agent"}},
		{"api", []string{"master", "agent"}},
	} {
		out, err := exec.Command(goTool, "list", "-deps", base+c.pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", c.pkg, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 {
			t.Fatalf("go list -deps %s: no packages", c.pkg)
		}
		for _, d := range deps {
			for _, f := range c.forbidden {
				if d == base+f {
					t.Errorf("package %s depends on package %s", c.pkg, f)
				}
			}
		}
	}
}
