package localmesos

import (
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos/internal/res"
)

func TestSplitPorts(t *testing.T) {
	cfg := Config{Agents: 3, Resources: "cpus:4;ports:[31000-31008,32000-32002]", SplitPorts: true}.withDefaults()
	rs, err := cfg.agentResources()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, res.FormatRanges(r.Ranges("ports")))
		if r.Scalar("cpus") != 4 {
			t.Fatalf("cpus %v", r.Scalar("cpus"))
		}
	}
	if strings.Join(got, " ") != "[31000-31003] [31004-31007] [31008-31008, 32000-32002]" {
		t.Fatalf("split ports %v", got)
	}
}

func TestConfigValidateListsEveryProblem(t *testing.T) {
	err := Config{Agents: -1, Resources: "cpus:x", Listen: "nohostport", HeartbeatInterval: -time.Second}.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"agents", "cpus:x", "nohostport", "heartbeat"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
