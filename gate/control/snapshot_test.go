package control

import (
	"strings"
	"testing"
)

func TestCheckDeclared(t *testing.T) {
	gates := []GateSpec{
		{Name: "plaintext", Dir: In, Pattern: Pull},
		{Name: "ciphertext", Dir: Out, Pattern: Push},
		{Name: "chat", Dir: Out, Pattern: Pair},
	}
	out := func(kv ...string) Snapshot {
		s := Snapshot{Version: 9, Out: map[string]OutLink{}}
		for i := 0; i < len(kv); i += 2 {
			s.Out[kv[i]] = OutLink{Pattern: Pattern(kv[i+1])}
		}
		return s
	}
	for _, c := range []struct {
		name string
		snap Snapshot
		want string // "" when it fits
	}{
		{"empty", out(), ""},
		{"fits", out("ciphertext", "push", "chat", "pair"), ""},
		{"undeclared", out("audit", "push"), `link snapshot 9 does not fit the task: out-gate "audit" is not a gate of this task`},
		{"in-gate", out("plaintext", "push"), `"plaintext" is an in-gate of this task, not an out-gate`},
		{"pattern", out("ciphertext", "pub"), `out-gate "ciphertext" is push in the task, pub in the snapshot`},
		{"all, in name order", out("plaintext", "push", "ciphertext", "pub", "audit", "push"),
			`link snapshot 9 does not fit the task: out-gate "audit" is not a gate of this task; out-gate "ciphertext" is push in the task, pub in the snapshot; "plaintext" is an in-gate of this task, not an out-gate`},
	} {
		err := c.snap.CheckDeclared(gates)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}
