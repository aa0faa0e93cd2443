package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// TestDemoProcessesOverControlSockets runs feeder, encryptor and printer as
// real processes of the tiltai binary, each with a control.Server playing its
// executor: readiness, bound addresses, snapshots, drain, application
// counters. The printer must count every message once.
func TestDemoProcessesOverControlSockets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "tiltai-demo")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := buildTiltai(ctx, t, dir)
	type svc struct {
		srv  *control.Server
		cmd  *exec.Cmd
		out  bytes.Buffer
		done chan error
	}
	start := func(name string, gates []control.GateSpec, args ...string) *svc {
		srv, err := control.Listen(ctx, filepath.Join(dir, name+".sock"), control.ServerConfig{HeartbeatInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		s := &svc{srv: srv, done: make(chan error, 1)}
		env := control.Env{Control: srv.Addr(), TaskID: name + "-1", Service: name, Gates: gates}
		s.cmd = exec.CommandContext(ctx, bin, append([]string{"demo", name}, args...)...)
		s.cmd.Env = append(os.Environ(), env.Environ()...)
		s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { s.done <- s.cmd.Wait() }()
		t.Cleanup(func() { s.cmd.Process.Kill() })
		return s
	}
	bound := func(s *svc, gate string) string {
		st, err := s.srv.Wait(ctx, func(st control.State) bool {
			for _, g := range st.Gates {
				if g.Name == gate && g.Bound != "" {
					return st.Ready
				}
			}
			return false
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, s.out.String())
		}
		for _, g := range st.Gates {
			if g.Name == gate {
				return g.Bound
			}
		}
		return ""
	}
	link := func(s *svc, gate, peer string) {
		snap := control.Snapshot{Version: 1, Out: map[string]control.OutLink{gate: {Pattern: control.Push, Peers: []string{peer}}}}
		if err := s.srv.Push(snap); err != nil {
			t.Fatal(err)
		}
		if _, err := s.srv.WaitApplied(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	in := func(name string) control.GateSpec {
		return control.GateSpec{Name: name, Dir: control.In, Pattern: control.Pull, Bind: "tcp://127.0.0.1:0"}
	}
	out := func(name string) control.GateSpec {
		return control.GateSpec{Name: name, Dir: control.Out, Pattern: control.Push}
	}

	printer := start("printer", []control.GateSpec{in("ciphertext")}, "--report", "100ms")
	enc := start("encryptor", []control.GateSpec{in("plaintext"), out("ciphertext")})
	link(enc, "ciphertext", bound(printer, "ciphertext"))
	const n = 5000
	feeder := start("feeder", []control.GateSpec{out("plaintext")}, "--rate", "0", "--count", "5000")
	link(feeder, "plaintext", bound(enc, "plaintext"))

	wait := func(s *svc, what string) {
		select {
		case err := <-s.done:
			if err != nil {
				t.Fatalf("%s: %v\n%s", what, err, s.out.String())
			}
		case <-ctx.Done():
			t.Fatalf("%s did not exit\n%s", what, s.out.String())
		}
	}
	wait(feeder, "feeder") // exits once everything it sent is acknowledged
	if err := enc.srv.Drain(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	wait(enc, "encryptor")
	st, err := printer.srv.Wait(ctx, func(st control.State) bool {
		return st.Status != nil && st.Status.App["printer.received"] == n
	})
	if err != nil {
		t.Fatalf("printer never reported %d received: %v\n%s", n, err, printer.out.String())
	}
	if st.Status.App["printer.missing"] != 0 || st.Status.App["printer.duplicates"] != 0 {
		t.Fatalf("printer counters %v", st.Status.App)
	}
	if err := printer.srv.Drain(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	wait(printer, "printer")
	if !strings.Contains(printer.out.String(), "printer final: origins=1 received=5000 duplicates=0 missing=0") {
		t.Fatalf("printer output:\n%s", printer.out.String())
	}
}
