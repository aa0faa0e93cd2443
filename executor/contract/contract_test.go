package contract

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// The example of the contract in docs/executor.md, byte for byte.
const exampleTaskData = `{"service":"encryptor","command":"tiltai","args":["demo","encryptor"],"env":{"K":"V"},"gates":[{"name":"plaintext","pattern":"pull","port":31001},{"name":"ciphertext","pattern":"push"}],"health":{"ready_timeout":"60s","liveness_timeout":"30s"},"kill_grace_period":"10s"}`

func TestTaskDataExample(t *testing.T) {
	d, err := DecodeTaskData([]byte(exampleTaskData))
	if err != nil {
		t.Fatal(err)
	}
	want := TaskData{
		Service: "encryptor", Command: "tiltai", Args: []string{"demo", "encryptor"}, Env: map[string]string{"K": "V"},
		Gates:           []Gate{{Name: "plaintext", Pattern: control.Pull, Port: 31001}, {Name: "ciphertext", Pattern: control.Push}},
		Health:          Health{ReadyTimeout: D(time.Minute), LivenessTimeout: D(30 * time.Second)},
		KillGracePeriod: D(10 * time.Second),
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("decoded %+v\nwant %+v", d, want)
	}
	b, err := EncodeTaskData(want)
	if err != nil {
		t.Fatal(err)
	}
	// Go writes 60s as 1m0s; both parse to the same thing.
	again, err := DecodeTaskData(b)
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("round trip: %s → %+v, %v", b, again, err)
	}
	specs := d.GateSpecs()
	env := control.Env{Gates: specs}.Environ()
	wantEnv := []string{"TILTAI_GATE_CIPHERTEXT=push>", "TILTAI_GATE_PLAINTEXT=pull@tcp://0.0.0.0:31001"}
	if !reflect.DeepEqual(env, wantEnv) {
		t.Fatalf("gate env %q, want %q", env, wantEnv)
	}
	// The service's side must accept what the executor sets.
	parsed, err := control.ParseEnv(append(env, "TILTAI_CONTROL=unix:///tmp/x.sock"))
	if err != nil || len(parsed.Gates) != 2 {
		t.Fatalf("the gate library refuses the environment: %v", err)
	}
}

func TestTaskDataDefaults(t *testing.T) {
	d, err := DecodeTaskData([]byte(`{"service":"s","command":"c"}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.ReadyTimeout() != DefaultReadyTimeout || d.LivenessTimeout() != DefaultLivenessTimeout || d.GracePeriod() != DefaultKillGracePeriod {
		t.Fatalf("defaults: %v %v %v", d.ReadyTimeout(), d.LivenessTimeout(), d.GracePeriod())
	}
	d, err = DecodeTaskData([]byte(`{"service":"s","command":"c","health":{"liveness_timeout":"0s"},"kill_grace_period":"0s"}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.LivenessTimeout() != 0 || d.GracePeriod() != 0 {
		t.Fatalf("explicit zeros lost: %v %v", d.LivenessTimeout(), d.GracePeriod())
	}
}

func TestTaskDataProblems(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []string // each must appear in the error
	}{
		{"empty", ``, []string{"task data is empty"}},
		{"not json", `service: x`, []string{"not a JSON object"}},
		{"array", `[1]`, []string{"not a JSON object"}},
		{"trailing", `{"service":"s","command":"c"} {}`, []string{"not a JSON object"}},
		{"wrong type", `{"service":"s","command":"c","args":"x"}`, []string{"not valid TaskData JSON"}},
		{"bad duration", `{"service":"s","command":"c","kill_grace_period":"10"}`, []string{`"10" is not a duration`}},
		{"everything", `{"command":"","colour":1,"gates":[{"name":"a","pattern":"pull","port":1},{"name":"b","pattern":"sub","port":1},{"name":"a","pattern":"push"},{"name":"p","pattern":"pair"},{"name":"q","pattern":"rep","port":70000}],"env":{"TILTAI_GATE_X":"y","":"z","A=B":"c"},"health":{"ready_timeout":"0s","liveness_timeout":"10ms"},"kill_grace_period":"-1s"}`, []string{
			`unknown field "colour"`, "service is empty", "command is empty",
			`gates[1] "b": port 1 already bound by gate "a"`, `gates[2] "a": gate name already used by gates[0]`,
			`gates[4] "q": port 70000 is not in 1..65535`,
			`env "TILTAI_GATE_X": gate variables are set by the executor`, `env "": empty variable name`, `env "A=B": a variable name cannot contain`,
			"health.ready_timeout 0s is not in 1ms..24h0m0s", "health.liveness_timeout 10ms is below 50ms", "kill_grace_period -1s is not in 0s..1h0m0s",
		}},
		{"nul", `{"service":"s","command":"c\u0000"}`, []string{"command contains a NUL byte"}},
		{"huge", `{"service":"` + strings.Repeat("x", MaxTaskDataBytes) + `"}`, []string{"bytes (at most"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeTaskData([]byte(tc.data))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
	// A pair gate with a port binds; without one it connects.
	d, err := DecodeTaskData([]byte(`{"service":"s","command":"c","gates":[{"name":"a","pattern":"pair","port":5},{"name":"b","pattern":"pair"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Gates[0].In() || d.Gates[1].In() {
		t.Fatalf("pair directions wrong: %+v", d.Gates)
	}
	if _, err := EncodeTaskData(TaskData{}); err == nil {
		t.Fatal("EncodeTaskData accepted an empty TaskData")
	}
}

func FuzzDecodeTaskData(f *testing.F) {
	f.Add([]byte(exampleTaskData))
	f.Add([]byte(`{"service":"s","command":"c","gates":[{"name":"a","pattern":"pair","port":5}]}`))
	f.Add([]byte(`{"health":{"liveness_timeout":"1h"},"env":{"PATH":"/x"}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeTaskData(b)
		if err != nil {
			return
		}
		// Whatever is accepted round-trips and yields an environment the
		// gate library accepts.
		enc, err := EncodeTaskData(d)
		if err != nil {
			t.Fatalf("accepted data does not encode: %v", err)
		}
		again, err := DecodeTaskData(enc)
		if err != nil || !reflect.DeepEqual(normTD(again), normTD(d)) {
			t.Fatalf("round trip changed %+v into %+v (%v)", d, again, err)
		}
		env := control.Env{Control: "unix:///x/c.sock", TaskID: "t", Service: d.Service, Gates: d.GateSpecs()}
		if _, err := control.ParseEnv(env.Environ()); err != nil {
			t.Fatalf("the gate library refuses %q: %v", env.Environ(), err)
		}
	})
}

// normTD maps empty and nil collections together for comparison.
func normTD(d TaskData) TaskData {
	if len(d.Args) == 0 {
		d.Args = nil
	}
	if len(d.Env) == 0 {
		d.Env = nil
	}
	if len(d.Gates) == 0 {
		d.Gates = nil
	}
	return d
}

func TestMessages(t *testing.T) {
	links := `{"type":"links","task_id":"encryptor.3","snapshot":{"version":7,"out":{"ciphertext":{"pattern":"push","peers":["tcp://10.0.0.9:31002","tcp://10.0.0.1:31002","tcp://10.0.0.1:31002"]}}}}`
	m, err := Decode([]byte(links))
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != TypeLinks || m.TaskID != "encryptor.3" || m.Snapshot.Version != 7 ||
		!reflect.DeepEqual(m.Snapshot.Peers("ciphertext"), []string{"tcp://10.0.0.1:31002", "tcp://10.0.0.9:31002"}) {
		t.Fatalf("decoded %+v", m)
	}
	for _, tc := range []struct {
		msg  Message
		want string
	}{
		{Message{Type: TypeAck, TaskID: "encryptor.3", Version: 7}, `{"type":"ack","task_id":"encryptor.3","version":7}`},
		{Message{Type: TypeNack, TaskID: "t", Version: 2, Error: "no"}, `{"type":"nack","task_id":"t","version":2,"error":"no"}`},
		{Message{Type: TypeStatus, TaskID: "t", Version: 7, State: "running", Gates: map[string]control.GateCounters{"in": {Pattern: control.Pull, Dir: control.In, Received: 3}}, Counters: map[string]int64{"missing": 0}},
			`{"type":"status","task_id":"t","version":7,"state":"running","gates":{"in":{"pattern":"pull","dir":"in","sent":0,"received":3,"dropped":0,"rerouted":0,"refused":0,"queue_depth":0,"in_flight":0,"peers":0,"peers_wanted":0}},"counters":{"missing":0}}`},
	} {
		b, err := Encode(tc.msg)
		if err != nil || string(b) != tc.want {
			t.Errorf("Encode(%+v) = %s, %v\nwant %s", tc.msg, b, err, tc.want)
			continue
		}
		back, err := Decode(b)
		if err != nil || !reflect.DeepEqual(back, tc.msg) {
			t.Errorf("Decode(%s) = %+v, %v", b, back, err)
		}
	}
	for _, bad := range []struct{ data, want string }{
		{``, "not a JSON object"},
		{`null`, "not a JSON object"},
		{`{"type":"links"}`, "no task_id"},
		{`{"task_id":"t"}`, "no type"},
		{`{"type":"links","task_id":"t"}`, "no snapshot"},
		{`{"type":"links","task_id":"t","snapshot":{"version":0,"out":{}}}`, "version is 0"},
		{`{"type":"ack","task_id":"t"}`, "version 0"},
		{`{"type":"status","task_id":"t","counters":{"bad name":1}}`, "counter name"},
		{`{"type":"status","task_id":"t","gates":{"UP":{}}}`, "gate name"},
		{`{"type":"links","task_id":"t","snapshot":{"version":1,"out":{"o":{"pattern":"push","peers":["tcp://x:0"]}}}}`, "port"},
		{`{"type":"links","task_id":"t","snapshot":{"version":"7"}}`, "not valid JSON"},
		{`{"type":"hello","task_id":"t"}`, "unknown framework message type"},
		{strings.Repeat(" ", MaxMessageBytes+1), "bytes (at most"},
	} {
		_, err := Decode([]byte(bad.data))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Decode(%.60q) = %v, want an error mentioning %q", bad.data, err, bad.want)
		}
	}
	if _, err := Decode([]byte(`{"type":"future","task_id":"t"}`)); !errors.Is(err, ErrUnknownMessageType) {
		t.Errorf("an unknown type is not ErrUnknownMessageType: %v", err)
	}
	if _, err := Encode(Message{Type: TypeAck}); err == nil {
		t.Error("Encode accepted an ack without task_id")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"links","task_id":"encryptor.3","snapshot":{"version":7,"out":{"ciphertext":{"pattern":"push","peers":["tcp://10.0.0.1:31002"]}}}}`))
	f.Add([]byte(`{"type":"ack","task_id":"encryptor.3","version":7}`))
	f.Add([]byte(`{"type":"status","task_id":"t","version":7,"gates":{"in":{"pattern":"pull","dir":"in"}},"counters":{"x":1},"executor":{"y":2}}`))
	f.Add([]byte(`{"type":"nack","task_id":"t","version":1,"error":"e"}`))
	f.Add([]byte("\x00\xff{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded message does not encode: %+v: %v", m, err)
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(normMsg(again), normMsg(m)) {
			t.Fatalf("round trip changed\n%+v\ninto\n%+v", m, again)
		}
	})
}

func normMsg(m Message) Message {
	b, _ := json.Marshal(m)
	var out Message
	_ = json.Unmarshal(b, &out)
	if out.Snapshot != nil {
		for k, l := range out.Snapshot.Out {
			if len(l.Peers) == 0 {
				l.Peers = nil
				out.Snapshot.Out[k] = l
			}
		}
	}
	return out
}
