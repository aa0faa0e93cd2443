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
		{`{"type":"hello","protocol":1,"gates":[{"name":"x","dir":"in","pattern":"push"}]}`, "not valid for direction"},
		{`{"type":"snapshot"}`, "no snapshot"},
		{`{"type":"snapshot","snapshot":{"version":0,"out":{}}}`, "version is 0"},
		{`{"type":"applied"}`, "version 0"},
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
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		for range 64 {
			m, err := r.Next()
			if err != nil {
				if errors.Is(err, ErrUnknownType) {
					continue
				}
				return
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
