package control

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		line string
		err  string
	}{
		{`{"type":"hello","protocol":1,"task_id":"t","service":"s","pid":3,"gates":[{"name":"plaintext","dir":"in","pattern":"pull","bound":"tcp://0.0.0.0:31001"}]}`, ""},
		{`{"type":"snapshot","snapshot":{"version":7,"out":{"plaintext":{"pattern":"push","peers":["tcp://10.0.0.5:31001","tcp://10.0.0.6:31002"]}}}}`, ""},
		{`{"type":"status","status":{"seq":1,"applied":7,"ready":true,"gates":{"plaintext":{"pattern":"push","dir":"out","sent":5}},"app":{"printer.missing":0}}}`, ""},
		{`{"type":"drain","timeout_ms":3000}`, ""},
		{`{"type":"applied","version":3}`, ""},
		{`{"type":"ready","future_field":1}`, ""},
		{`{"type":"hello","protocol":0}`, "protocol 0"},
		{`{"type":"hello","protocol":1,"gates":[{"name":"x","dir":"in","pattern":"push"}]}`, `hello.gates[0].pattern "push": not valid for an in-gate (pull, sub, rep or pair)`},
		{`{"type":"hello","protocol":1,"gates":[{"name":"x","dir":"in"}]}`, `hello.gates[0].pattern: missing (gate "x")`},
		{`{"type":"hello","protocol":1,"gates":[{"name":"x","dir":"up","pattern":"pull"}]}`, `hello.gates[0].dir "up": want "in" or "out"`},
		{`{"type":"gates","gates":[{"name":"x","dir":"in","pattern":"pull"},{"name":"x","dir":"in","pattern":"pull"}]}`, `gates.gates[1].name "x": gate listed twice`},
		{`{"type":"gates","gates":[{"name":"x","dir":"in","pattern":"pull","bound":"0.0.0.0:31001"}]}`, `gates.gates[0].bound: endpoint "0.0.0.0:31001": want tcp://host:port`},
		{`{"type":"gates","gates":[{"name":"x","dir":"in","pattern":"pull","bound":"tcp://:31001"}]}`, `gates.gates[0].bound: endpoint "tcp://:31001": want tcp://host:port with a host`},
		{`{"type":"gates","gates":[{"name":"x","dir":"in","pattern":"pull","bound":"tcp://0.0.0.0:0"}]}`, `gates.gates[0].bound: endpoint "tcp://0.0.0.0:0": want the port actually bound`},
		{`{"type":"gates","gates":[{"name":"x","dir":"in","pattern":"pull","bound":"tcp://[::]:31001"}]}`, ""},
		{`{"type":"snapshot"}`, "no snapshot"},
		{`{"type":"snapshot","snapshot":{"version":0,"out":{}}}`, "version is 0"},
		{`{"type":"applied"}`, "applied.version 0: versions start at 1"},
		{`{"type":"drain","timeout_ms":-1}`, "negative"},
		{`{"type":"status","status":{"gates":{"BAD":{}}}}`, "has 'B'"},
		{`{"type":"status","status":{"app":{"a b":1}}}`, "counter name"},
		{`{}`, "no type"},
		{`[1,2]`, "not a JSON object"},
		{`{"type":"teleport"}`, "unknown control message type"},
		{"\x00\xff", "not a JSON object"},
	}
	for _, tt := range tests {
		_, err := Decode([]byte(tt.line))
		if tt.err == "" && err != nil {
			t.Errorf("Decode(%s) = %v", tt.line, err)
		}
		if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("Decode(%s) = %v, want error containing %q", tt.line, err, tt.err)
		}
	}
	if _, err := Decode([]byte(`{"type":"teleport"}`)); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type is not ErrUnknownType: %v", err)
	}
}

func TestReaderBoundsLines(t *testing.T) {
	long := bytes.Repeat([]byte("x"), MaxLineBytes+10)
	r := NewReader(bytes.NewReader(append(long, '\n')))
	if _, err := r.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("long line: %v", err)
	}
	r = NewReader(strings.NewReader("\n\n{\"type\":\"ready\"}\n{\"type\":\"drained\"}"))
	if m, err := r.Next(); err != nil || m.Type != TypeReady {
		t.Fatalf("first: %v %v", m, err)
	}
	if _, err := r.Next(); err == nil {
		t.Fatal("a truncated last line must be an error")
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := Message{Type: TypeSnapshot, Snapshot: &Snapshot{Version: 9, Out: map[string]OutLink{"a": {Pattern: Req, Peers: []string{"tcp://h:1"}}}}}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := NewReader(bytes.NewReader(b)).Next()
	if err != nil || out.Snapshot.Version != 9 || out.Snapshot.Out["a"].Peers[0] != "tcp://h:1" {
		t.Fatalf("round trip: %+v %v", out, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"hello","protocol":1,"gates":[{"name":"a","dir":"out","pattern":"push"}]}` + "\n"))
	f.Add([]byte(`{"type":"snapshot","snapshot":{"version":7,"out":{"p":{"pattern":"push","peers":["tcp://a:1"]}}}}` + "\n"))
	f.Add([]byte(`{"type":"status","status":{"seq":1,"gates":{"a":{"sent":1}},"app":{"x":1}}}` + "\n{\"type\":\"ready\"}\n"))
	f.Add([]byte("\xff\xfe{{{\n"))
	f.Add([]byte(`{"type":"gates","gates":[{"name":"plaintext","dir":"in","pattern":"pull","bound":"tcp://[::]:31001"}]}` + "\n"))
	f.Add([]byte(`{"type":"hello","protocol":1,"gates":[{"name":"plaintext","dir":"in","pattern":"pull","bound":"tcp://10.0.0.1:9"}]}` + "\n{\"type\":\"applied\",\"version\":1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		var book ledger
		book.wrote(1)
		for range 64 {
			m, err := r.Next()
			if err != nil {
				if errors.Is(err, ErrUnknownType) {
					continue
				}
				return
			}
			// What the parser lets through, the executor's checks judge
			// without panicking, naming the field.
			switch m.Type {
			case TypeHello, TypeGates:
				if err := checkGates(m.Type, encryptorGates, m.Gates); err != nil && !strings.HasPrefix(err.Error(), m.Type+".gates[") {
					t.Fatalf("gate check error does not name the field: %v", err)
				}
			case TypeApplied:
				if err := book.apply("applied.version", m.Version, false); err != nil && !strings.HasPrefix(err.Error(), "applied.version ") {
					t.Fatalf("applied check error does not name the field: %v", err)
				}
			}
			// Whatever decodes must re-encode and decode to a valid message.
			b, err := Encode(m)
			if err != nil {
				t.Fatalf("decoded message does not encode: %v", err)
			}
			if _, err := Decode(b); err != nil {
				t.Fatalf("re-encoded message does not decode: %v\n%s", err, b)
			}
		}
	})
}
