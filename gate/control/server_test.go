package control

import (
	"bufio"
	"context"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sockPath(t *testing.T) string {
	t.Helper()
	// t.TempDir can exceed the 108-byte unix socket path limit.
	dir, err := os.MkdirTemp("", "tiltai-ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "control.sock")
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestClientServer runs the whole conversation over a real unix socket:
// hello, gates, ready, snapshot → applied, heartbeats with counters, a
// reconnect that replays state and snapshot, drain → drained.
func TestClientServer(t *testing.T) {
	ctx := testCtx(t)
	srv, err := Listen(ctx, sockPath(t), ServerConfig{HeartbeatInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	status := func() Status {
		return Status{Applied: 0, Gates: map[string]GateCounters{"plaintext": {Pattern: Push, Dir: Out, Sent: 42}}, App: map[string]int64{"missing": 0, "received": 42}}
	}
	cli, err := NewClient(ctx, ClientConfig{Addr: srv.Addr(), TaskID: "t1", Service: "feeder", Status: status})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	cli.SetGates([]GateInfo{{Name: "plaintext", Dir: Out, Pattern: Push}, {Name: "in", Dir: In, Pattern: Pull, Bound: "tcp://127.0.0.1:4000"}})
	cli.Ready()
	st, err := srv.WaitReady(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Hello.TaskID != "t1" || st.Hello.Service != "feeder" || st.Hello.PID != os.Getpid() {
		t.Fatalf("hello = %+v", st.Hello)
	}
	if _, err := srv.Wait(ctx, func(s State) bool { return len(s.Gates) == 2 }); err != nil {
		t.Fatal(err)
	}

	snap := Snapshot{Version: 7, Out: map[string]OutLink{"plaintext": {Pattern: Push, Peers: []string{"tcp://127.0.0.1:1"}}}}
	if err := srv.Push(snap); err != nil {
		t.Fatal(err)
	}
	if err := srv.Push(snap); err == nil {
		t.Fatal("pushing the same version twice must fail")
	}
	select {
	case got := <-cli.Snapshots():
		if got.Version != 7 || got.Out["plaintext"].Peers[0] != "tcp://127.0.0.1:1" {
			t.Fatalf("snapshot = %+v", got)
		}
	case <-ctx.Done():
		t.Fatal("no snapshot")
	}
	cli.Applied(7)
	if _, err := srv.WaitApplied(ctx, 7); err != nil {
		t.Fatal(err)
	}
	st, err = srv.Wait(ctx, func(s State) bool { return s.Status != nil && s.Status.Seq >= 2 })
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.Gates["plaintext"].Sent != 42 || st.Status.App["received"] != 42 || !st.Alive {
		t.Fatalf("status = %+v alive=%v", st.Status, st.Alive)
	}

	// The executor restarts its side of the connection: the client reconnects,
	// re-sends its state, gets the snapshot again and does not re-deliver it.
	// A second connection replaces the client's; the client then reconnects
	// and replaces it in turn.
	conns := st.Connections
	intruder := dialRaw(t, srv)
	defer intruder.Close()
	if _, err := srv.Wait(ctx, func(s State) bool { return s.Connections >= conns+2 && s.Connected && s.Ready && s.Applied == 7 }); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-cli.Snapshots():
		t.Fatalf("snapshot %d delivered twice", s.Version)
	default:
	}

	go func() {
		select {
		case d := <-cli.Drains():
			if d.Timeout != 3*time.Second {
				t.Errorf("drain timeout %v", d.Timeout)
			}
			if left := time.Until(d.StopBy); left <= 4*time.Second || left > 5*time.Second {
				t.Errorf("drain stop_ms: SIGTERM in %v, want just under 5s", left)
			}
			cli.Drained()
		case <-ctx.Done():
		}
	}()
	if err := srv.DrainStop(ctx, 3*time.Second, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func dialRaw(t *testing.T, srv *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", strings.TrimPrefix(srv.Addr(), "unix://"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHeartbeatTimeout(t *testing.T) {
	ctx := testCtx(t)
	srv, err := Listen(ctx, sockPath(t), ServerConfig{HeartbeatInterval: 10 * time.Millisecond, HeartbeatTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := dialRaw(t, srv)
	defer c.Close()
	c.Write([]byte(`{"type":"hello","protocol":1,"task_id":"silent"}` + "\n"))
	if _, err := srv.Wait(ctx, func(s State) bool { return s.Connected && s.Alive }); err != nil {
		t.Fatal(err)
	}
	// No status messages follow: the server must notice.
	if _, err := srv.Wait(ctx, func(s State) bool { return s.Connected && !s.Alive }); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(`{"type":"status","status":{"seq":1}}` + "\n"))
	if _, err := srv.Wait(ctx, func(s State) bool { return s.Alive }); err != nil {
		t.Fatal(err)
	}
}

// TestGarbage: random bytes, an over-long line, a wrong first message and an
// unsupported protocol version each drop the connection with an error line;
// the server keeps serving.
func TestGarbage(t *testing.T) {
	ctx := testCtx(t)
	srv, err := Listen(ctx, sockPath(t), ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	random := make([]byte, 4096)
	rand.Read(random)
	huge := make([]byte, MaxLineBytes+100)
	for i := range huge {
		huge[i] = 'a'
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"random", append(random, '\n'), "error"},
		{"huge", huge, "longer than"},
		{"not hello", []byte(`{"type":"ready"}` + "\n"), "must be hello"},
		{"protocol", []byte(`{"type":"hello","protocol":99}` + "\n"), "not supported"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, srv)
			defer c.Close()
			go c.Write(tc.data) // may block on a full socket once the server stops reading
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.Contains(line, tc.want) {
				t.Fatalf("reply %q, %v; want it to mention %q", line, err, tc.want)
			}
			if _, err := srv.Wait(ctx, func(s State) bool { return s.ProtoErrors == i+1 && !s.Connected }); err != nil {
				t.Fatal(err)
			}
		})
	}
	c := dialRaw(t, srv)
	defer c.Close()
	c.Write([]byte(`{"type":"hello","protocol":1}` + "\n" + `{"type":"ready"}` + "\n"))
	if _, err := srv.WaitReady(ctx); err != nil {
		t.Fatal("server stopped serving after garbage:", err)
	}
}

// TestControlSocketMode checks docs/reliability.md S7: the control socket
// is its owner's alone (0600), whatever the umask left on it, also when a
// stale socket is replaced.
func TestControlSocketMode(t *testing.T) {
	// A permissive umask, so that only Listen's own chmod can make it 0600
	// (no test in this package runs in parallel).
	defer syscall.Umask(syscall.Umask(0))
	p := sockPath(t)
	for i := range 2 { // the second Listen replaces the stale socket
		if i == 1 {
			stale, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			stale.(*net.UnixListener).SetUnlinkOnClose(false)
			stale.Close()
			os.Chmod(p, 0o777)
		}
		srv, err := Listen(context.Background(), p, ServerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			srv.Close()
			t.Fatal(err)
		}
		if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Errorf("listen %d: control socket mode %v, want a socket with 0600", i, fi.Mode())
		}
		srv.Close()
	}
}

func TestListenRefusesToClobberAFile(t *testing.T) {
	p := sockPath(t)
	os.WriteFile(p, []byte("precious"), 0o600)
	if _, err := Listen(context.Background(), p, ServerConfig{}); err == nil || !strings.Contains(err.Error(), "non-socket file") {
		t.Fatalf("err = %v", err)
	}
}

func TestClientRejectsBadAddr(t *testing.T) {
	if _, err := NewClient(context.Background(), ClientConfig{Addr: "tcp://x:1"}); err == nil {
		t.Fatal("no error")
	}
}
