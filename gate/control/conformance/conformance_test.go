package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// The test binary doubles as a stand-in service written against the wire
// protocol alone (no control.Client), honest or lying as FAKE_SERVICE says.
const fakeEnv = "CONFORMANCE_FAKE_SERVICE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		if err := fakeService(mode); err != nil {
			fmt.Fprintln(os.Stderr, "fake service:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var testGates = []control.GateSpec{
	{Name: "ciphertext", Dir: control.Out, Pattern: control.Push},
	{Name: "plaintext", Dir: control.In, Pattern: control.Pull},
}

func TestRun(t *testing.T) {
	tests := []struct {
		mode string
		fail string // the failing step, "" for none
		want string // in its detail
	}{
		{"honest", "", ""},
		{"lie-applied", "applied", `false claim refused by the executor: applied.version 99: version 99 was never sent to this service`},
		{"wrong-port", "hello", `hello.gates[1].bound "tcp://0.0.0.0:1": gate "plaintext" was assigned port`},
		{"extra-gate", "hello", `hello.gates[2].name "secret": not a gate of this task (its gates: ciphertext, plaintext)`},
		{"no-beat", "heartbeat", "no status within"},
		{"no-drained", "drained", "service ended (exit status 0) while waiting for drained"},
		{"exit-1", "exit", "service ended (exit status 1) after drained, want exit status 0"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var seen []string
			rep := Run(ctx, Config{
				Command: []string{os.Args[0]}, Gates: testGates,
				Environ:           append(os.Environ(), fakeEnv+"="+tt.mode),
				Timeout:           5 * time.Second,
				HeartbeatInterval: 50 * time.Millisecond,
			}, func(s Step) { seen = append(seen, s.String()) })
			err := rep.Err()
			if tt.fail == "" {
				if err != nil || len(rep.Steps) != 7 {
					t.Fatalf("%v\n%s", err, strings.Join(seen, "\n"))
				}
				return
			}
			last := rep.Steps[len(rep.Steps)-1]
			if last.OK || last.Name != tt.fail || !strings.Contains(last.Detail, tt.want) {
				t.Fatalf("want step %s to fail with %q; got:\n%s", tt.fail, tt.want, strings.Join(seen, "\n"))
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{Gates: []control.GateSpec{
		{Name: "a", Dir: control.In, Pattern: control.Push},
		{Name: "a", Dir: control.Out, Pattern: control.Push, Peers: []string{"tcp://h:1"}},
	}}.Validate()
	for _, want := range []string{"command: want", `gates[0]: pattern "push" is not valid for an in-gate`, `gates[1]: gate "a" declared twice`, `gates[1]: gate "a" has static peers`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to mention %q", err, want)
		}
	}
}

// fakeService speaks the control protocol with nothing but a socket and
// JSON lines, as a service in another language would.
func fakeService(mode string) error {
	env, err := control.ParseEnv(os.Environ())
	if err != nil {
		return err
	}
	path, err := control.ControlPath(env.Control)
	if err != nil {
		return err
	}
	var gates []map[string]string
	var listeners []net.Listener
	for _, g := range env.Gates {
		gi := map[string]string{"name": g.Name, "dir": string(g.Dir), "pattern": string(g.Pattern)}
		if g.Dir == control.In {
			ep, _ := control.ParseBindEndpoint(g.Bind)
			ln, err := net.Listen("tcp", ep.Addr())
			if err != nil {
				return err
			}
			listeners = append(listeners, ln)
			gi["bound"] = "tcp://" + ln.Addr().String()
			if mode == "wrong-port" {
				gi["bound"] = "tcp://0.0.0.0:1"
			}
		}
		gates = append(gates, gi)
	}
	if mode == "extra-gate" {
		gates = append(gates, map[string]string{"name": "secret", "dir": "out", "pattern": "push"})
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		return err
	}
	defer c.Close()
	send := func(m map[string]any) error {
		b, _ := json.Marshal(m)
		_, err := c.Write(append(b, '\n'))
		return err
	}
	if err := send(map[string]any{"type": "hello", "protocol": 1, "task_id": env.TaskID, "service": env.Service, "pid": os.Getpid(), "gates": gates}); err != nil {
		return err
	}
	send(map[string]any{"type": "ready"})
	lines := make(chan map[string]any)
	go func() {
		sc := bufio.NewScanner(c)
		sc.Buffer(nil, control.MaxLineBytes)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
	}()
	beat := time.NewTicker(time.Hour)
	var seq, applied uint64
	for {
		select {
		case m, ok := <-lines:
			if !ok {
				return nil
			}
			switch m["type"] {
			case "welcome":
				if mode != "no-beat" {
					beat.Reset(time.Duration(m["heartbeat_ms"].(float64)) * time.Millisecond)
				}
			case "snapshot":
				applied = uint64(m["snapshot"].(map[string]any)["version"].(float64))
				v := applied
				if mode == "lie-applied" {
					v = 99
				}
				send(map[string]any{"type": "applied", "version": v})
			case "drain":
				for _, ln := range listeners {
					ln.Close()
				}
				switch mode {
				case "no-drained":
					return nil
				case "exit-1":
					send(map[string]any{"type": "drained"})
					os.Exit(1)
				}
				return send(map[string]any{"type": "drained"})
			}
		case <-beat.C:
			seq++
			send(map[string]any{"type": "status", "status": map[string]any{"seq": seq, "applied": applied, "ready": true, "gates": map[string]any{}}})
		}
	}
}
