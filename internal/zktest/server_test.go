package zktest_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/tiltai/tiltai/internal/zktest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type discard struct{}

func (discard) Printf(string, ...any) {}

func connect(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{addr}, 2*time.Second, zk.WithLogger(discard{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

func TestServerStopRestartKeepsDataAndPort(t *testing.T) {
	s := zktest.Start(t)
	if s.StartupTime() <= 0 {
		t.Fatal("no startup time recorded")
	}
	out, err := zktest.FourLetterWord(s.Addr(), "ruok")
	if err != nil || out != "imok" {
		t.Fatalf("ruok = %q, %v; want imok", out, err)
	}
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || s.URL("/x") != "zk://"+s.Addr()+"/x" {
		t.Fatalf("Addr %q URL %q", s.Addr(), s.URL("/x"))
	}

	c := connect(t, s.Addr())
	if _, err := c.Create("/kept", []byte("v1"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}

	s.Stop()
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatal("server still accepts connections after Stop")
	}
	s.Stop() // idempotent

	s.Restart()
	waitFor(t, "the client to reconnect", 30*time.Second, func() bool {
		b, _, err := c.Get("/kept")
		return err == nil && string(b) == "v1"
	})
}

func TestProxyBlockCutsClientsOff(t *testing.T) {
	s := zktest.Start(t)
	p := zktest.NewProxy(t, s.Addr())
	c := connect(t, p.Addr())
	waitFor(t, "a session through the proxy", 30*time.Second, func() bool {
		_, _, err := c.Exists("/")
		return err == nil
	})

	p.Block()
	waitFor(t, "the client to see the partition", 10*time.Second, func() bool {
		return c.State() != zk.StateHasSession
	})
	if _, _, err := c.Exists("/"); err == nil {
		t.Fatal("request succeeded through a blocked proxy")
	}

	p.Unblock()
	waitFor(t, "the client to reconnect", 30*time.Second, func() bool {
		_, _, err := c.Exists("/")
		return err == nil
	})
	p.Close()
	p.Close() // idempotent
}
