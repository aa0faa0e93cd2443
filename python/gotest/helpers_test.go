package gotest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate"
	"github.com/tiltai/tiltai/gate/control"
)

// python is the interpreter the tests run: TILTAI_PYTHON, else Debian's
// /usr/bin/python3, else python3 on PATH.
func python(t testing.TB) string {
	if p := os.Getenv("TILTAI_PYTHON"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3: the Python gates cannot be tested")
	}
	return p
}

// pythonDir is this module's python/ directory (the package's root).
func pythonDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// freePort returns a loopback port that was free a moment ago (the
// executor hands a service a port from its offer; the test plays that role).
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// service is a Python process under test, its output kept for failures.
type service struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan error
}

func (s *service) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

func (s *service) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// startPython runs python -m module args… with env added, killed when the
// test ends.
func startPython(t *testing.T, env []string, args ...string) *service {
	t.Helper()
	cmd := exec.Command(python(t), args...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+pythonDir(), "PYTHONUNBUFFERED=1")
	cmd.Env = append(cmd.Env, env...)
	s := &service{cmd: cmd, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = s, s
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("python output:\n%s", s.output())
		}
	})
	return s
}

func (s *service) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(timeout):
		t.Fatalf("the python service did not exit within %s", timeout)
		return nil
	}
}

// goHub starts a Go hub with one gate g, closed when the test ends.
func goHub(t *testing.T, spec control.GateSpec) (*gate.Hub, *gate.Gate) {
	t.Helper()
	spec.Name = "g"
	h, err := gate.New(t.Context(), gate.Config{Gates: []control.GateSpec{spec}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	var g *gate.Gate
	if spec.Dir == control.In {
		g, err = h.In("g")
	} else {
		g, err = h.Out("g")
	}
	if err != nil {
		t.Fatal(err)
	}
	return h, g
}

// demo messages: origin, 8-byte sequence number, payload.
func demoMsg(origin string, seq uint64) gate.Message {
	return gate.Message{[]byte(origin), binary.BigEndian.AppendUint64(nil, seq), []byte(fmt.Sprintf("payload %d", seq))}
}

// checkHashed receives n hashed demo messages on g and checks each digest.
func checkHashed(t *testing.T, ctx context.Context, g *gate.Gate, origin string, n int) map[uint64]bool {
	t.Helper()
	seen := map[uint64]bool{}
	for len(seen) < n {
		m, err := g.Recv(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(seen), err)
		}
		seq := binary.BigEndian.Uint64(m[1])
		want := sha256.Sum256(demoMsg(origin, seq)[2])
		if string(m[0]) != origin || string(m[2]) != string(want[:]) {
			t.Fatalf("message %d: %q", seq, m)
		}
		if seen[seq] {
			t.Fatalf("duplicate %d", seq)
		}
		seen[seq] = true
	}
	return seen
}
