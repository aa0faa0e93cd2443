package control

import (
	"slices"
	"strings"
	"testing"
)

func TestParseGate(t *testing.T) {
	tests := []struct {
		name, value string
		want        GateSpec
		err         string
	}{
		{"plaintext", "pull@tcp://0.0.0.0:31001", GateSpec{Name: "plaintext", Dir: In, Pattern: Pull, Bind: "tcp://0.0.0.0:31001"}, ""},
		{"in", "pair@tcp://*:0", GateSpec{Name: "in", Dir: In, Pattern: Pair, Bind: "tcp://*:0"}, ""},
		{"out", "push>", GateSpec{Name: "out", Dir: Out, Pattern: Push}, ""},
		{"out", "push>tcp://b:2, tcp://a:1,tcp://b:2", GateSpec{Name: "out", Dir: Out, Pattern: Push, Peers: []string{"tcp://a:1", "tcp://b:2"}}, ""},
		{"v6", "req>tcp://[::1]:5", GateSpec{Name: "v6", Dir: Out, Pattern: Req, Peers: []string{"tcp://[::1]:5"}}, ""},
		{"x", "pull", GateSpec{}, "want pattern@"},
		{"x", "push@tcp://h:1", GateSpec{}, "must be an in-gate pattern"},
		{"x", "pull>tcp://h:1", GateSpec{}, "must be an out-gate pattern"},
		{"x", "fan@tcp://h:1", GateSpec{}, "unknown pattern"},
		{"x", "pull@udp://h:1", GateSpec{}, "want tcp://host:port"},
		{"x", "pull@tcp://h:70000", GateSpec{}, "not a number in 0..65535"},
		{"x", "push>tcp://:5", GateSpec{}, "needs a host"},
		{"x", "push>tcp://h:0", GateSpec{}, "1..65535"},
		{"x", "push>tcp://h h:1", GateSpec{}, "neither an IP"},
		{"x", "pair>tcp://a:1,tcp://b:1", GateSpec{}, "at most one peer"},
		{"Bad", "pull@tcp://h:1", GateSpec{}, "has 'B'"},
		{"-a", "pull@tcp://h:1", GateSpec{}, "starts or ends"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			got, err := ParseGate(tt.name, tt.value)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tt.want.Name || got.Dir != tt.want.Dir || got.Pattern != tt.want.Pattern || got.Bind != tt.want.Bind || !slices.Equal(got.Peers, tt.want.Peers) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseEnvListsEveryProblem(t *testing.T) {
	_, err := ParseEnv([]string{
		"TILTAI_CONTROL=unix://relative.sock",
		"TILTAI_GATE_A=bogus",
		"TILTAI_GATE_B=pull@tcp://h:99999",
		"TILTAI_TLS_CERT=/c.pem",
		"TILTAI_GATE_lower=pull@tcp://h:1",
		"PATH=/bin",
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"TILTAI_CONTROL", "TILTAI_GATE_A", "TILTAI_GATE_B", "mutual TLS needs all", "TILTAI_GATE_lower"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func TestParseEnvStaticPeersNeedStaticMode(t *testing.T) {
	_, err := ParseEnv([]string{"TILTAI_CONTROL=unix:///run/c.sock", "TILTAI_GATE_OUT=push>tcp://h:1"})
	if err == nil || !strings.Contains(err.Error(), "static peers are not allowed") {
		t.Fatalf("error = %v", err)
	}
}

func TestEnvRoundTrip(t *testing.T) {
	env := Env{
		Control: "unix:///run/tiltai/t1/control.sock", TaskID: "t1", Service: "encryptor",
		Gates: []GateSpec{
			{Name: "ciphertext", Dir: Out, Pattern: Push},
			{Name: "plain-text", Dir: In, Pattern: Pull, Bind: "tcp://0.0.0.0:31001"},
		},
		TLS: TLSFiles{Cert: "/c", Key: "/k", CA: "/ca"},
	}
	lines := env.Environ()
	if !slices.Contains(lines, "TILTAI_GATE_PLAIN_TEXT=pull@tcp://0.0.0.0:31001") || !slices.Contains(lines, "TILTAI_GATE_CIPHERTEXT=push>") {
		t.Fatalf("Environ = %q", lines)
	}
	got, err := ParseEnv(lines)
	if err != nil {
		t.Fatal(err)
	}
	if got.Control != env.Control || got.TaskID != "t1" || got.Service != "encryptor" || got.TLS != env.TLS || len(got.Gates) != 2 || got.Gates[1].Name != "plain-text" || got.Gates[1].Bind != "tcp://0.0.0.0:31001" {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestSnapshotValidate(t *testing.T) {
	good := Snapshot{Version: 7, Out: map[string]OutLink{"plaintext": {Pattern: Push, Peers: []string{"tcp://10.0.0.5:31001", "tcp://10.0.0.6:31002"}}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Snapshot{Out: map[string]OutLink{
		"a":  {Pattern: Pull},
		"B":  {Pattern: Push},
		"c":  {Pattern: Push, Peers: []string{"tcp://b:1", "tcp://a:1"}},
		"d":  {Pattern: Pair, Peers: []string{"tcp://a:1", "tcp://b:1"}},
		"ok": {Pattern: Pub, Peers: []string{"nope"}},
	}}
	err := bad.Validate()
	for _, want := range []string{"version is 0", `"a": pattern "pull"`, `"B"`, "not sorted", "at most one peer", `"ok" peer 0`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	if n := bad.Normalize(); !slices.IsSorted(n.Out["c"].Peers) {
		t.Errorf("Normalize did not sort: %v", n.Out["c"].Peers)
	}
}

func FuzzParseEnv(f *testing.F) {
	f.Add("TILTAI_GATE_PLAINTEXT", "pull@tcp://0.0.0.0:31001")
	f.Add("TILTAI_GATE_OUT_1", "push>tcp://127.0.0.1:5555,tcp://[::1]:5556")
	f.Add("TILTAI_CONTROL", "unix:///a/b.sock")
	f.Add("TILTAI_GATE_X", "pair>")
	f.Fuzz(func(t *testing.T, k, v string) {
		env, err := ParseEnv([]string{k + "=" + v})
		if err != nil {
			return
		}
		// Whatever parses must render back to something that parses the same.
		again, err := ParseEnv(env.Environ())
		if err != nil {
			t.Fatalf("Environ of a parsed env does not parse: %v (%q)", err, env.Environ())
		}
		if !slices.Equal(again.Environ(), env.Environ()) {
			t.Fatalf("not a fixed point: %q vs %q", again.Environ(), env.Environ())
		}
		for _, g := range env.Gates {
			if ValidName(g.Name) != nil || !g.Pattern.ValidFor(g.Dir) {
				t.Fatalf("accepted invalid gate %+v", g)
			}
		}
	})
}
