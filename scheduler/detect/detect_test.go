package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/tiltai/tiltai/internal/zktest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const patience = 30 * time.Second

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// fakeMaster joins the election under path exactly as a Mesos 1.11 master
// does: an ephemeral sequential json.info_ znode holding its MasterInfo as
// JSON (the shape of master_info in ../mesos-1.11/01-subscribe-json.json).
// Each fake master has its own session, so closing it is the master dying.
type fakeMaster struct {
	conn *zk.Conn
	node string
}

func joinAsMaster(t *testing.T, zkAddr, path, id string, port int) *fakeMaster {
	t.Helper()
	conn, _, err := zk.Connect([]string{zkAddr}, 2*time.Second, zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	for p := range parentsOf(path) {
		if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatal(err)
		}
	}
	info := map[string]any{
		"id": id, "ip": 16777343, "port": port, "pid": fmt.Sprintf("master@127.0.0.1:%d", port),
		"hostname": "localhost", "version": "1.11.0",
		"address":      map[string]any{"hostname": "localhost", "ip": "127.0.0.1", "port": port},
		"capabilities": []any{map[string]any{"type": "AGENT_UPDATE"}, map[string]any{"type": "AGENT_DRAINING"}, map[string]any{}},
	}
	data, _ := json.Marshal(info)
	node, err := conn.Create(path+"/json.info_", data, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatal(err)
	}
	return &fakeMaster{conn: conn, node: node}
}

func parentsOf(p string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for i := 1; i <= len(p); i++ {
			if i == len(p) || p[i] == '/' {
				if !yield(p[:i]) {
					return
				}
			}
		}
	}
}

// nextChange waits for a change signal and returns the leader then.
func nextChange(t *testing.T, d *Detector) Master {
	t.Helper()
	select {
	case <-d.Changed():
		m, err := d.Master(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return m
	case <-time.After(patience):
		t.Fatal("no leader change reported")
		return Master{}
	}
}

func TestFollowsTheMastersInZooKeeper(t *testing.T) {
	s := zktest.Start(t)
	// The detector starts before any master registered (the path does
	// not even exist yet).
	d, err := New(context.Background(), s.URL("/mesos"), logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if m, err := d.Master(short); err == nil {
		t.Fatalf("Leader with no master registered = %v", m)
	}

	m1 := joinAsMaster(t, s.Addr(), "/mesos", "master-1", 5050)
	// A standby and a legacy protobuf node do not change the leader.
	m2 := joinAsMaster(t, s.Addr(), "/mesos", "master-2", 5051)
	if _, err := m1.conn.Create("/mesos/info_", []byte("\x0a\x08legacy"), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), patience)
	defer cancel2()
	got, err := d.Master(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := d.Leader(ctx); u != "http://127.0.0.1:5050" {
		t.Fatalf("Leader = %q", u)
	}
	if got.URL.String() != "http://127.0.0.1:5050" || got.ID != "master-1" || got.Version != "1.11.0" || got.Node != m1.node {
		t.Fatalf("Leader = %+v", got)
	}
	if c := nextChange(t, d); c.ID != "master-1" {
		t.Fatalf("first change = %+v", c)
	}

	// The leader dies: its session ends and its node goes.
	m1.conn.Close()
	if c := nextChange(t, d); c.ID != "master-2" || c.URL.String() != "http://127.0.0.1:5051" {
		t.Fatalf("after the leader died: %+v", c)
	}
	got, _ = d.Master(ctx)
	if got.ID != "master-2" || got.SchedulerEndpoint() != "http://127.0.0.1:5051/api/v1/scheduler" {
		t.Fatalf("Leader = %+v", got)
	}

	// A new master joins behind; the leader stays.
	joinAsMaster(t, s.Addr(), "/mesos", "master-3", 5052)
	m2.conn.Close()
	if c := nextChange(t, d); c.ID != "master-3" {
		t.Fatalf("after master-2 left: %+v", c)
	}
	select {
	case <-d.Changed():
		t.Fatal("spurious change signal")
	default:
	}
}

func TestSurvivesZooKeeperRestart(t *testing.T) {
	s := zktest.Start(t)
	d, err := New(context.Background(), s.URL("/mesos"), logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	m1 := joinAsMaster(t, s.Addr(), "/mesos", "master-1", 5050)
	if c := nextChange(t, d); c.ID != "master-1" {
		t.Fatalf("first leader %+v", c)
	}
	s.Stop()
	// While ZooKeeper is down the last leader stays known.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if m, err := d.Master(ctx); err != nil || m.ID != "master-1" {
		t.Fatalf("Leader while ZooKeeper is down = %+v, %v", m, err)
	}
	s.Restart()
	// Sessions survive a quick restart (ZooKeeper restores them from its
	// data dir), so master-1 still leads; the detector's watch must still
	// be in place to see it go.
	joinAsMaster(t, s.Addr(), "/mesos", "master-2", 5051)
	m1.conn.Close()
	if c := nextChange(t, d); c.ID != "master-2" {
		t.Fatalf("after ZooKeeper restarted and master-1 left: %+v", c)
	}
}

func TestStaticAndFileMasters(t *testing.T) {
	d, err := New(context.Background(), "10.0.0.5:5050", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.Master(context.Background())
	if err != nil || m.SchedulerEndpoint() != "http://10.0.0.5:5050/api/v1/scheduler" {
		t.Fatalf("static Master = %+v, %v", m, err)
	}
	if u, _ := d.Leader(context.Background()); u != "http://10.0.0.5:5050" || d.Changed() != nil {
		t.Fatalf("static Leader = %q, Changed %v", u, d.Changed())
	}
	_ = d.Close()
	_ = d.Close()

	dir := t.TempDir()
	file := filepath.Join(dir, "master")
	if err := os.WriteFile(file, []byte("https://mesos.example.com:5050/prefix\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err = New(context.Background(), "file://"+file, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if m, _ := d.Master(context.Background()); m.SchedulerEndpoint() != "https://mesos.example.com:5050/prefix/api/v1/scheduler" {
		t.Fatalf("file master = %+v", m)
	}
	if _, err := New(context.Background(), "file://"+filepath.Join(dir, "missing"), nil); err == nil {
		t.Fatal("a missing master file was accepted")
	}
	if err := os.WriteFile(file, []byte("file:///etc/other"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), "file://"+file, nil); err == nil {
		t.Fatal("a master file pointing at another file was accepted")
	}
}
