package control

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

var encryptorGates = []GateSpec{
	{Name: "ciphertext", Dir: Out, Pattern: Push},
	{Name: "plaintext", Dir: In, Pattern: Pull, Bind: "tcp://0.0.0.0:31001"},
}

func TestCheckGates(t *testing.T) {
	pinned := []GateSpec{{Name: "plaintext", Dir: In, Pattern: Pull, Bind: "tcp://10.0.0.5:31001"}}
	anyPort := []GateSpec{{Name: "plaintext", Dir: In, Pattern: Pull, Bind: "tcp://*:0"}}
	in := func(bound string) []GateInfo {
		return []GateInfo{{Name: "plaintext", Dir: In, Pattern: Pull, Bound: bound}}
	}
	tests := []struct {
		name string
		want []GateSpec
		got  []GateInfo
		err  string
	}{
		{"none yet", encryptorGates, nil, ""},
		{"all", encryptorGates, []GateInfo{{Name: "ciphertext", Dir: Out, Pattern: Push}, {Name: "plaintext", Dir: In, Pattern: Pull, Bound: "tcp://0.0.0.0:31001"}}, ""},
		{"not bound yet", encryptorGates, in(""), ""},
		{"ipv6 wildcard", encryptorGates, in("tcp://[::]:31001"), ""},
		{"star", encryptorGates, in("tcp://*:31001"), ""},
		{"pinned host", pinned, in("tcp://10.0.0.5:31001"), ""},
		{"pinned host, wildcard bound", pinned, in("tcp://0.0.0.0:31001"), ""},
		{"any port", anyPort, in("tcp://0.0.0.0:40000"), ""},
		{"unknown gate", encryptorGates, []GateInfo{{Name: "ciphertext", Dir: Out, Pattern: Push}, {Name: "secret", Dir: Out, Pattern: Push}},
			`hello.gates[1].name "secret": not a gate of this task (its gates: ciphertext, plaintext)`},
		{"no gates given", nil, in(""), `hello.gates[0].name "plaintext": not a gate of this task (it was given no gates)`},
		{"wrong pattern", encryptorGates, []GateInfo{{Name: "ciphertext", Dir: Out, Pattern: Pub}},
			`hello.gates[0].pattern "pub": gate "ciphertext" was given as push (TILTAI_GATE_CIPHERTEXT=push>)`},
		{"wrong dir", encryptorGates, []GateInfo{{Name: "plaintext", Dir: Out, Pattern: Pair}},
			`hello.gates[0].dir "out": gate "plaintext" was given as an in-gate (TILTAI_GATE_PLAINTEXT=pull@tcp://0.0.0.0:31001)`},
		{"wrong port", encryptorGates, in("tcp://0.0.0.0:9999"),
			`hello.gates[0].bound "tcp://0.0.0.0:9999": gate "plaintext" was assigned port 31001`},
		{"loopback only", encryptorGates, in("tcp://127.0.0.1:31001"),
			`hello.gates[0].bound "tcp://127.0.0.1:31001": gate "plaintext" must listen on every interface (0.0.0.0, [::] or *) as assigned (TILTAI_GATE_PLAINTEXT=pull@tcp://0.0.0.0:31001), not on host 127.0.0.1`},
		{"other pinned host", pinned, in("tcp://10.0.0.6:31001"),
			`hello.gates[0].bound "tcp://10.0.0.6:31001": gate "plaintext" must listen on 10.0.0.5 or every interface as assigned (TILTAI_GATE_PLAINTEXT=pull@tcp://10.0.0.5:31001), not on host 10.0.0.6`},
		{"out-gate bound", encryptorGates, []GateInfo{{Name: "ciphertext", Dir: Out, Pattern: Push, Bound: "tcp://0.0.0.0:31001"}},
			`hello.gates[0].bound "tcp://0.0.0.0:31001": gate "ciphertext" is an out-gate; only in-gates report a bound address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkGates(TypeHello, tt.want, tt.got)
			if got := errString(err); got != tt.err {
				t.Errorf("checkGates = %q\nwant %q", got, tt.err)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestLedger: a claim is checked against the versions sent; each step runs
// on the ledger the previous ones left.
func TestLedger(t *testing.T) {
	var l ledger
	steps := []struct {
		wrote uint64 // 0: none
		field string
		v     uint64
		stale bool
		err   string
	}{
		{field: "applied.version", v: 3, err: "applied.version 3: version 3 was never sent to this service (no version above 0 was sent)"},
		{wrote: 3, field: "applied.version", v: 4, err: "applied.version 4: version 4 was never sent to this service (versions sent and not yet applied: 3)"},
		{field: "applied.version", v: 3},
		{field: "applied.version", v: 3}, // repeated after a reconnect
		{wrote: 5, field: "status.applied", v: 3, stale: true},
		{wrote: 6, field: "applied.version", v: 6}, // 5 skipped: latest wins
		{field: "applied.version", v: 5, err: "applied.version 5: older than version 6, already applied (applied versions only increase)"},
		{field: "status.applied", v: 5, stale: true},
		{field: "status.applied", v: 7, stale: true, err: "status.applied 7: version 7 was never sent to this service (no version above 6 was sent)"},
	}
	for i, s := range steps {
		if s.wrote != 0 {
			l.wrote(s.wrote)
		}
		if got := errString(l.apply(s.field, s.v, s.stale)); got != s.err {
			t.Fatalf("step %d: apply(%s %d) = %q\nwant %q", i, s.field, s.v, got, s.err)
		}
	}
	if l.applied != 6 {
		t.Fatalf("applied = %d, want 6", l.applied)
	}
}

func TestLedgerBounded(t *testing.T) {
	var l ledger
	for v := uint64(1); v <= 3*maxUnapplied; v++ {
		l.wrote(v)
	}
	if len(l.sent) != maxUnapplied || l.sent[0] != 2*maxUnapplied+1 {
		t.Fatalf("kept %d versions from %d, want %d from %d", len(l.sent), l.sent[0], maxUnapplied, 2*maxUnapplied+1)
	}
}

// TestServerRefusesFalseClaims drives a server over a real socket with a
// service that lies: each lie is answered with an error line naming the
// field, the connection is closed, the claim changes nothing and the first
// one stays in State.Violation.
func TestServerRefusesFalseClaims(t *testing.T) {
	hello := `{"type":"hello","protocol":1,"gates":[{"name":"ciphertext","dir":"out","pattern":"push"}]}`
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"applied never sent", []string{hello, `{"type":"applied","version":9}`},
			`applied.version 9: version 9 was never sent to this service (versions sent and not yet applied: 1)`},
		{"status applied never sent", []string{hello, `{"type":"status","status":{"seq":1,"applied":2}}`},
			`status.applied 2: version 2 was never sent`},
		{"hello gate not given", []string{`{"type":"hello","protocol":1,"gates":[{"name":"secret","dir":"out","pattern":"push"}]}`},
			`hello.gates[0].name "secret": not a gate of this task (its gates: ciphertext, plaintext)`},
		{"gates on another port", []string{hello, `{"type":"gates","gates":[{"name":"plaintext","dir":"in","pattern":"pull","bound":"tcp://0.0.0.0:9999"}]}`},
			`gates.gates[0].bound "tcp://0.0.0.0:9999": gate "plaintext" was assigned port 31001`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			srv, err := Listen(ctx, sockPath(t), ServerConfig{Gates: encryptorGates, CheckGates: true})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			if err := srv.Push(Snapshot{Version: 1}); err != nil {
				t.Fatal(err)
			}
			c := dialRaw(t, srv)
			defer c.Close()
			c.Write([]byte(strings.Join(tt.lines, "\n") + "\n"))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			var last string
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					break // closed by the server
				}
				last = line
			}
			m, err := Decode([]byte(last))
			if err != nil || m.Type != TypeError || !strings.Contains(m.Error, tt.want) {
				t.Fatalf("last line %q (%v); want an error containing %q", last, err, tt.want)
			}
			st, err := srv.Wait(ctx, func(s State) bool { return !s.Connected && s.Violation != "" })
			if err != nil {
				t.Fatal(err)
			}
			if st.Applied != 0 || st.Ready || !strings.Contains(st.Violation, tt.want) || st.ProtoErrors != 1 {
				t.Fatalf("state after the lie: applied %d, ready %v, violation %q, protocol errors %d", st.Applied, st.Ready, st.Violation, st.ProtoErrors)
			}
		})
	}
}
