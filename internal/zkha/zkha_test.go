package zkha

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/tiltai/tiltai/internal/zktest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sessionTimeout is short so expiry tests finish quickly, long enough that a
// loaded 2-core machine does not expire healthy sessions.
const sessionTimeout = 1500 * time.Millisecond

// patience bounds every wait for an outcome.
const patience = 30 * time.Second

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func newClient(t *testing.T, rawURL string, mod ...func(*Config)) *Client {
	t.Helper()
	u, err := ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{URL: u, SessionTimeout: sessionTimeout, Logger: logger(t)}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func waitDone(t *testing.T, l *Leadership, what string) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(patience):
		t.Fatalf("%s: leadership did not end within %v", what, patience)
	}
}

func campaignAsync(t *testing.T, c *Client, ctx context.Context, addr string) <-chan *Leadership {
	ch := make(chan *Leadership, 1)
	go func() {
		l, err := c.Campaign(ctx, addr)
		if err != nil {
			t.Logf("campaign of %s: %v", addr, err)
			close(ch)
			return
		}
		ch <- l
	}()
	return ch
}

func TestTwoContendersOnlyOneLeads(t *testing.T) {
	s := zktest.Start(t)
	a := newClient(t, s.URL("/tiltai"))
	b := newClient(t, s.URL("/tiltai"))

	la, err := a.Campaign(ctxFor(t, patience), "a.example:8080")
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithCancel(context.Background())
	defer bcancel()
	bch := campaignAsync(t, b, bctx, "b.example:8080")

	// b joined behind a and must keep waiting while a leads.
	waitFor(t, "b's election node", func() bool {
		ch, _, err := a.conn.Children(a.electionDir())
		return err == nil && len(ch) == 2
	})
	select {
	case <-bch:
		t.Fatal("b was elected while a leads")
	case <-time.After(3 * sessionTimeout):
	}
	for _, c := range []*Client{a, b} {
		info, err := c.Leader(ctxFor(t, patience))
		if err != nil || info.Address != "a.example:8080" || info.Node != la.Node() {
			t.Fatalf("Leader() = %+v, %v; want a", info, err)
		}
	}

	if err := la.Resign(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(la.Err(), ErrResigned) || !errors.Is(la.Err(), ErrNotLeader) {
		t.Fatalf("Err after Resign = %v", la.Err())
	}
	var lb *Leadership
	select {
	case lb = <-bch:
	case <-time.After(patience):
		t.Fatal("b was not elected after a resigned")
	}
	if lb == nil {
		t.Fatal("b's campaign failed")
	}
	info, err := a.Leader(ctxFor(t, patience))
	if err != nil || info.Address != "b.example:8080" {
		t.Fatalf("Leader() = %+v, %v; want b", info, err)
	}
	// a's old leadership cannot write; b's can.
	if _, err := la.Put(ctxFor(t, patience), "k", []byte("a"), NoVersion); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed Put = %v, want ErrNotLeader", err)
	}
	if _, err := lb.Put(ctxFor(t, patience), "k", []byte("b"), NoVersion); err != nil {
		t.Fatal(err)
	}
}

func TestElectionOrderFollowsJoinOrder(t *testing.T) {
	s := zktest.Start(t)
	const n = 4
	clients := make([]*Client, n)
	chans := make([]<-chan *Leadership, n)
	ctx := ctxFor(t, 2*patience)
	for i := range n {
		clients[i] = newClient(t, s.URL("/order"))
		chans[i] = campaignAsync(t, clients[i], ctx, fmt.Sprintf("c%d:1", i))
		// Join one after the other so the sequence order is known.
		waitFor(t, "the election node", func() bool {
			ch, _, err := clients[0].conn.Children(clients[0].electionDir())
			return err == nil && len(ch) == i+1
		})
	}
	for i := range n {
		var l *Leadership
		select {
		case l = <-chans[i]:
		case <-time.After(patience):
			t.Fatalf("c%d not elected", i)
		}
		// Nobody behind i may lead yet.
		for j := i + 1; j < n; j++ {
			select {
			case <-chans[j]:
				t.Fatalf("c%d elected before c%d resigned", j, i)
			default:
			}
		}
		if err := l.Resign(); err != nil {
			t.Fatal(err)
		}
	}
}

// The leader is cut off from ZooKeeper (a partition: the server keeps
// running and expires its session). It must step down, the other contender
// must take over once the session has expired, and the old leader's writes
// must fail, first by its own knowledge and then at ZooKeeper itself.
func TestPartitionedLeaderStepsDownAndIsFenced(t *testing.T) {
	s := zktest.Start(t)
	p := zktest.NewProxy(t, s.Addr())
	a := newClient(t, p.URL("/tiltai"))
	b := newClient(t, s.URL("/tiltai"))

	la, err := a.Campaign(ctxFor(t, patience), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	v, err := la.Put(ctxFor(t, patience), "framework-id", []byte("fw-1"), NoVersion)
	if err != nil {
		t.Fatal(err)
	}
	bch := campaignAsync(t, b, ctxFor(t, 2*patience), "b:1")

	p.Block()
	waitDone(t, la, "partitioned leader")
	if !errors.Is(la.Err(), ErrConnectionLost) {
		t.Fatalf("Err = %v, want ErrConnectionLost", la.Err())
	}
	if _, err := la.Put(ctxFor(t, patience), "framework-id", []byte("fw-a"), v); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Put by a stepped-down leader = %v, want ErrNotLeader", err)
	}

	var lb *Leadership
	select {
	case lb = <-bch:
	case <-time.After(patience):
		t.Fatal("b not elected after a's session expired")
	}
	if lb == nil {
		t.Fatal("b's campaign failed")
	}

	// a comes back; the server tells it its session expired. Its old
	// leadership's transaction (without the local check) is refused by
	// ZooKeeper: its election node went with the session.
	p.Unblock()
	waitFor(t, "a's new session", a.Connected)
	_, err = la.multi(ctxFor(t, patience), &zk.SetDataRequest{Path: a.keyPath("framework-id"), Data: encodeInline([]byte("fw-a")), Version: int32(v)})
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("fenced write by the deposed leader = %v, want ErrNotLeader", err)
	}
	got, err := b.Get(ctxFor(t, patience), "framework-id")
	if err != nil || string(got.Data) != "fw-1" || got.Version != v {
		t.Fatalf("framework-id = %q@%d, %v; want fw-1@%d untouched", got.Data, got.Version, err, v)
	}
	if _, err := lb.Put(ctxFor(t, patience), "framework-id", []byte("fw-1"), got.Version); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
}

// ZooKeeper deletes the leader's node (as on session expiry) while the
// leader's own connection is fine: its very next write is refused by
// ZooKeeper even if it has not yet heard, and the leadership ends.
func TestDeletedElectionNodeFencesAtOnce(t *testing.T) {
	s := zktest.Start(t)
	a := newClient(t, s.URL("/t"))
	other := newClient(t, s.URL("/t"))
	la, err := a.Campaign(ctxFor(t, patience), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.conn.Delete(la.Node(), -1); err != nil {
		t.Fatal(err)
	}
	_, err = la.multi(ctxFor(t, patience), &zk.CreateRequest{Path: a.keyPath("x"), Data: encodeInline([]byte("late")), Acl: a.acl})
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write after the node was deleted = %v, want ErrNotLeader", err)
	}
	waitDone(t, la, "leader whose node was deleted")
	if !errors.Is(la.Err(), ErrNodeDeleted) {
		t.Fatalf("Err = %v, want ErrNodeDeleted", la.Err())
	}
	if _, err := other.Get(ctxFor(t, patience), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(x) = %v, want ErrNotFound: the fenced write landed", err)
	}
}

func TestZooKeeperDownAtStart(t *testing.T) {
	s := zktest.Start(t)
	s.Stop()
	c := newClient(t, s.URL("/tiltai"))

	// Nothing is claimed and nothing is "not found" while ZooKeeper is down.
	if l, err := c.Campaign(ctxFor(t, 2*time.Second), "a:1"); err == nil || l != nil {
		t.Fatalf("Campaign with ZooKeeper down = %v, %v; want an error", l, err)
	}
	_, err := c.Get(ctxFor(t, 2*time.Second), "framework-id")
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Fatalf("Get with ZooKeeper down = %v; want ErrUnavailable and not ErrNotFound", err)
	}
	if _, err := c.Leader(ctxFor(t, time.Second)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Leader with ZooKeeper down = %v; want ErrUnavailable", err)
	}

	ch := campaignAsync(t, c, ctxFor(t, 2*patience), "a:1")
	s.Restart()
	var l *Leadership
	select {
	case l = <-ch:
	case <-time.After(patience):
		t.Fatal("not elected after ZooKeeper came up")
	}
	if l == nil {
		t.Fatal("campaign failed")
	}
	if _, err := c.Get(ctxFor(t, patience), "framework-id"); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get of a missing key = %v; want ErrNotFound only", err)
	}
}

// ZooKeeper crashes under a leader: the leader steps down at once (default
// grace 0) and does not act while ZooKeeper is away; when ZooKeeper returns
// within the session timeout the session resumes, the old node is removed
// and a new campaign wins again.
func TestZooKeeperDownMidRun(t *testing.T) {
	s := zktest.Start(t)
	c := newClient(t, s.URL("/tiltai"))
	l, err := c.Campaign(ctxFor(t, patience), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(ctxFor(t, patience), "framework-id", []byte("fw"), NoVersion); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	waitDone(t, l, "leader when ZooKeeper died")
	if !errors.Is(l.Err(), ErrConnectionLost) {
		t.Fatalf("Err = %v, want ErrConnectionLost", l.Err())
	}
	if _, err := c.Get(ctxFor(t, time.Second), "framework-id"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get while down = %v, want ErrUnavailable", err)
	}
	s.Restart()
	l2, err := c.Campaign(ctxFor(t, patience), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	if l2.Node() == l.Node() {
		t.Fatal("the old election node was reused")
	}
	waitFor(t, "the stale election node to be deleted", func() bool {
		ok, _, err := c.conn.Exists(l.Node())
		return err == nil && !ok
	})
	got, err := c.Get(ctxFor(t, patience), "framework-id")
	if err != nil || string(got.Data) != "fw" {
		t.Fatalf("framework-id = %q, %v", got.Data, err)
	}
}

func TestDisconnectGraceRidesOutAQuickReconnect(t *testing.T) {
	p, c, l := leaderBehindProxy(t)
	p.Block()
	waitFor(t, "the disconnect", func() bool { return !c.Connected() })
	p.Unblock()
	waitFor(t, "the reconnect", c.Connected)
	select {
	case <-l.Done():
		// On a very slow machine the reconnect can take longer than the
		// grace; then the leadership must have ended for that reason.
		if !errors.Is(l.Err(), ErrConnectionLost) {
			t.Fatalf("Err = %v", l.Err())
		}
		t.Skip("reconnect took longer than the grace on this machine")
	default:
	}
	if _, err := l.Put(ctxFor(t, patience), "k", []byte("v"), NoVersion); err != nil {
		t.Fatalf("Put after a quick reconnect: %v", err)
	}
	p.Block()
	waitDone(t, l, "leader past its grace")
	if !errors.Is(l.Err(), ErrConnectionLost) {
		t.Fatalf("Err = %v, want ErrConnectionLost", l.Err())
	}
}

func TestConfigValidate(t *testing.T) {
	u, _ := ParseURL("zk://h/t")
	err := Config{URL: u, SessionTimeout: 3 * time.Second, DisconnectGrace: time.Second}.Validate()
	if err == nil || !strings.Contains(err.Error(), "below a third") {
		t.Fatalf("Validate = %v", err)
	}
	err = Config{}.Validate()
	if err == nil || !strings.Contains(err.Error(), "no ZooKeeper servers") || !strings.Contains(err.Error(), "must be absolute") {
		t.Fatalf("Validate of an empty config = %v; want every problem", err)
	}
}

func TestStoreConditionalWrites(t *testing.T) {
	s := zktest.Start(t)
	c := newClient(t, s.URL("/store"))
	l, err := c.Campaign(ctxFor(t, patience), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, patience)

	if _, err := c.Get(ctx, "framework-id"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing = %v", err)
	}
	v0, err := l.Put(ctx, "framework-id", []byte("fw-1"), NoVersion)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(ctx, "framework-id", []byte("fw-2"), NoVersion); !errors.Is(err, ErrConflict) {
		t.Fatalf("create of an existing key = %v, want ErrConflict", err)
	}
	v1, err := l.Put(ctx, "framework-id", []byte("fw-2"), v0)
	if err != nil || v1 == v0 {
		t.Fatalf("Put = %d, %v", v1, err)
	}
	if _, err := l.Put(ctx, "framework-id", []byte("stale"), v0); !errors.Is(err, ErrConflict) {
		t.Fatalf("Put with a stale version = %v, want ErrConflict", err)
	}
	if _, err := l.Put(ctx, "absent", []byte("x"), 3); !errors.Is(err, ErrConflict) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("Put with a version to a missing key = %v, want ErrConflict and ErrNotFound", err)
	}
	got, err := c.Get(ctx, "framework-id")
	if err != nil || string(got.Data) != "fw-2" || got.Version != v1 {
		t.Fatalf("Get = %q@%d, %v", got.Data, got.Version, err)
	}

	// Nested keys, listing, empty values.
	for _, k := range []string{"tasks/t-2", "tasks/t-1", "specs/v1"} {
		if _, err := l.Put(ctx, k, []byte(k), NoVersion); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Put(ctx, "empty", nil, NoVersion); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "empty"); err != nil || len(got.Data) != 0 {
		t.Fatalf("empty value = %q, %v", got.Data, err)
	}
	keys, err := c.List(ctx, "tasks")
	if err != nil || strings.Join(keys, ",") != "t-1,t-2" {
		t.Fatalf("List(tasks) = %v, %v", keys, err)
	}
	top, err := c.List(ctx, "")
	if err != nil || strings.Join(top, ",") != "empty,framework-id,specs,tasks" {
		t.Fatalf("List() = %v, %v", top, err)
	}
	if keys, err := c.List(ctx, "nothing/here"); err != nil || len(keys) != 0 {
		t.Fatalf("List of a missing dir = %v, %v", keys, err)
	}
	// "tasks" is a parent only: not a value, but it can become one.
	if _, err := c.Get(ctx, "tasks"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(tasks) = %v, want ErrNotFound", err)
	}
	if _, err := l.Put(ctx, "tasks", []byte("index"), NoVersion); err != nil {
		t.Fatal(err)
	}
	tv, err := c.Get(ctx, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, "tasks", tv.Version); err == nil || !strings.Contains(err.Error(), "nested keys") {
		t.Fatalf("Delete of a key with nested keys = %v", err)
	}

	// Delete is conditional too.
	t1, _ := c.Get(ctx, "tasks/t-1")
	if err := l.Delete(ctx, "tasks/t-1", t1.Version+1); !errors.Is(err, ErrConflict) {
		t.Fatalf("Delete with a wrong version = %v", err)
	}
	if err := l.Delete(ctx, "tasks/t-1", t1.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "tasks/t-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}

	// Bad keys are refused before anything is sent.
	for _, k := range []string{"", "/a", "a/", "a//b", ".hidden", "a/.chunk-x", "sp ace", "ü"} {
		if _, err := l.Put(ctx, k, nil, NoVersion); err == nil || errors.Is(err, ErrUnavailable) {
			t.Errorf("Put(%q) = %v, want a key error", k, err)
		}
	}
}

// Values beyond ZooKeeper's 1 MB limit are chunked; readers see the whole
// old or the whole new value, and replaced chunks are collected.
func TestStoreLargeValues(t *testing.T) {
	s := zktest.Start(t)
	c := newClient(t, s.URL("/big"))
	reader := newClient(t, s.URL("/big"))
	l, err := c.Campaign(ctxFor(t, patience), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, patience)
	big := make([]byte, 3<<20+12345)
	_, _ = rand.Read(big)
	v, err := l.Put(ctx, "specs/history", big, NoVersion)
	if err != nil {
		t.Fatal(err)
	}
	got, err := reader.Get(ctx, "specs/history")
	if err != nil || !bytes.Equal(got.Data, big) || got.Version != v {
		t.Fatalf("Get of a chunked value: %d bytes @%d, %v", len(got.Data), got.Version, err)
	}

	bigger := make([]byte, 5<<20)
	_, _ = rand.Read(bigger)
	v2, err := l.Put(ctx, "specs/history", bigger, v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(ctx, "specs/history", big, v); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale chunked write = %v, want ErrConflict", err)
	}
	got, err = reader.Get(ctx, "specs/history")
	if err != nil || !bytes.Equal(got.Data, bigger) || got.Version != v2 {
		t.Fatalf("after replace: %d bytes @%d, %v", len(got.Data), got.Version, err)
	}
	chunks := func() int {
		ch, _, err := c.conn.Children(c.keyPath("specs/history"))
		if err != nil {
			t.Fatal(err)
		}
		return len(ch)
	}
	if n, want := chunks(), (len(bigger)+chunkSize-1)/chunkSize; n != want {
		t.Fatalf("%d chunk nodes after replace, want %d (old ones collected)", n, want)
	}
	// Back to a small value: every chunk goes.
	v3, err := l.Put(ctx, "specs/history", []byte("small"), v2)
	if err != nil {
		t.Fatal(err)
	}
	if n := chunks(); n != 0 {
		t.Fatalf("%d chunk nodes left after a small write", n)
	}
	if err := l.Delete(ctx, "specs/history", v3); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(ctx, "too/big", make([]byte, MaxValueSize+1), NoVersion); err == nil {
		t.Fatal("a value over MaxValueSize was accepted")
	}
}

func TestDigestCredentialsProtectTheData(t *testing.T) {
	s := zktest.Start(t)
	owner := newClient(t, "zk://alice:s3cret@"+s.Addr()+"/secure")
	l, err := owner.Campaign(ctxFor(t, patience), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(ctxFor(t, patience), "framework-id", []byte("fw"), NoVersion); err != nil {
		t.Fatal(err)
	}
	got, err := owner.Get(ctxFor(t, patience), "framework-id")
	if err != nil || string(got.Data) != "fw" {
		t.Fatalf("owner Get = %q, %v", got.Data, err)
	}
	for _, u := range []string{s.URL("/secure"), "zk://alice:wrong@" + s.Addr() + "/secure"} {
		other := newClient(t, u)
		_, err := other.Get(ctxFor(t, patience), "framework-id")
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not authorised") {
			t.Errorf("Get via %s = %v; want a not-authorised ErrUnavailable", u, err)
		}
	}
}

func TestCloseIsIdempotentAndEndsLeadership(t *testing.T) {
	s := zktest.Start(t)
	c := newClient(t, s.URL("/c"))
	l, err := c.Campaign(ctxFor(t, patience), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	_ = c.Close()
	waitDone(t, l, "leadership at Close")
	if !errors.Is(l.Err(), ErrClosed) {
		t.Fatalf("Err = %v", l.Err())
	}
	if _, err := c.Get(ctxFor(t, time.Second), "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(patience)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", patience, what)
		case <-tick.C:
		}
	}
}

// TestApplyEndsWithTheLeadership: a write made while the connection is
// down (within DisconnectGrace, still the leader) waits in go-zookeeper
// for a reconnect that does not come; when the leadership ends past the
// grace, Apply must return (ErrNotLeader) — not wait for ZooKeeper with the
// caller, the scheduler's loop that Close waits for (found by
// TestHALeaderCutWhileWriting, which hung in CI).
func TestApplyEndsWithTheLeadership(t *testing.T) {
	p, c, l := leaderBehindProxy(t)
	kv := l.KV()
	p.Block()
	waitFor(t, "the disconnect", func() bool { return !c.Connected() })
	done := make(chan error, 1)
	go func() { done <- kv.Apply(context.Background(), map[string][]byte{"k": []byte("v")}) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotLeader) {
			t.Fatalf("Apply = %v, want ErrNotLeader", err)
		}
	case <-time.After(patience):
		t.Fatal("Apply still waits for ZooKeeper after the leadership ended")
	}
	waitDone(t, l, "leader past its grace")
	p.Unblock() // so that Close's requests are answered
}

// leaderBehindProxy is a client, through a proxy that can cut it off,
// leading with a 1.9 s DisconnectGrace (6 s session).
func leaderBehindProxy(t *testing.T) (*zktest.Proxy, *Client, *Leadership) {
	t.Helper()
	s := zktest.Start(t)
	p := zktest.NewProxy(t, s.Addr())
	c := newClient(t, p.URL("/g"), func(cfg *Config) {
		cfg.SessionTimeout = 6 * time.Second
		cfg.DisconnectGrace = 1900 * time.Millisecond
	})
	l, err := c.Campaign(ctxFor(t, patience), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	return p, c, l
}
