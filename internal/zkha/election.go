package zkha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/tiltai/tiltai/internal/backoff"
)

// memberPrefix names the election nodes: go-zookeeper's protected form is
// "_c_<guid>-member_<10-digit sequence>", the guid letting a create that
// lost its connection find its own node again instead of leaving a ghost.
const memberPrefix = "member_"

// nodeData is what each contender writes into its election node, so
// followers can tell clients where the leader's HTTP API is.
type nodeData struct {
	Address string `json:"address"` // host:port of the scheduler HTTP API
}

// LeaderInfo is the current leader as its election node describes it.
type LeaderInfo struct {
	Address string // host:port of the leader's scheduler HTTP API
	Node    string // its election znode
}

// member is one election node with its sequence number.
type member struct {
	name string
	seq  int64
}

// sortedMembers keeps the election nodes and orders them by sequence;
// anything else in the directory is ignored.
func sortedMembers(children []string) []member {
	var ms []member
	for _, name := range children {
		i := strings.LastIndex(name, memberPrefix)
		if i < 0 {
			continue
		}
		digits := name[i+len(memberPrefix):]
		seq, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || len(digits) != 10 {
			continue
		}
		ms = append(ms, member{name: name, seq: seq})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
	return ms
}

// Campaign joins the election with this process's advertised address
// (host:port of its scheduler HTTP API) and blocks until it leads, ctx ends
// or the client closes. It survives ZooKeeper being down (it waits) and
// session expiry (it joins again). Each contender watches only the node just
// ahead of it, so a departure wakes one process.
func (c *Client) Campaign(ctx context.Context, advertise string) (*Leadership, error) {
	data, err := json.Marshal(nodeData{Address: advertise})
	if err != nil {
		return nil, err
	}
	var node string // our election node, once created
	giveUp := func(err error) (*Leadership, error) {
		if node != "" {
			c.deleteNode(node)
		}
		return nil, err
	}
	var backoff retry
	for {
		if err := ctx.Err(); err != nil {
			return giveUp(err)
		}
		if err := c.prepare(ctx); err != nil {
			return giveUp(err)
		}
		if node == "" {
			created, err := c.createMember(ctx, data)
			if err != nil {
				if errors.Is(err, ErrClosed) || ctx.Err() != nil {
					return giveUp(err)
				}
				c.log.Warn("cannot join the election; retrying", "error", err)
				if err := backoff.wait(ctx, c.closing); err != nil {
					return giveUp(err)
				}
				continue
			}
			node = created
			c.log.Info("joined the leader election", "node", node)
		}
		lead, owner, watch, wait, err := c.position(ctx, node)
		if err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return giveUp(err)
			}
			if errors.Is(err, ErrNotFound) {
				// Our node is gone: the session that owned it expired.
				node = ""
				continue
			}
			c.log.Warn("cannot read the election; retrying", "error", err)
			if err := backoff.wait(ctx, c.closing); err != nil {
				return giveUp(err)
			}
			continue
		}
		backoff.reset()
		if lead {
			l := c.newLeadership(node, owner, watch, advertise)
			c.log.Info("elected leader", "node", node, "address", advertise)
			return l, nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return giveUp(ctx.Err())
		case <-c.closing:
			return nil, ErrClosed
		}
	}
}

// createMember creates our election node. If ctx ends first, the node the
// request may still create is deleted as soon as it exists, so an abandoned
// campaign leaves no node at the head of the queue.
func (c *Client) createMember(ctx context.Context, data []byte) (string, error) {
	var mu sync.Mutex
	var created string
	abandoned := false
	err := c.call(ctx, func() error {
		p, err := c.conn.CreateProtectedEphemeralSequential(c.electionDir()+"/"+memberPrefix, data, c.acl)
		mu.Lock()
		defer mu.Unlock()
		if err == nil && abandoned {
			_ = c.conn.Delete(p, -1)
			return nil
		}
		created = p
		return err
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		abandoned = true
		if created != "" {
			// Created after all, just before we gave up on it.
			_ = c.conn.Delete(created, -1)
		}
		return "", classify(err)
	}
	return created, nil
}

// position reports whether node leads. If it does, owner is the session that
// owns it and watch fires when it changes or goes; if not, wait fires when
// the node just ahead of it changes or goes. ErrNotFound means node itself no
// longer exists.
func (c *Client) position(ctx context.Context, node string) (lead bool, owner int64, watch, wait <-chan zk.Event, err error) {
	var children []string
	err = c.call(ctx, func() error {
		var err error
		children, _, err = c.conn.Children(c.electionDir())
		return err
	})
	if err != nil {
		return false, 0, nil, nil, classify(err)
	}
	ms := sortedMembers(children)
	name := node[strings.LastIndex(node, "/")+1:]
	idx := -1
	for i, m := range ms {
		if m.name == name {
			idx = i
		}
	}
	if idx < 0 {
		return false, 0, nil, nil, ErrNotFound
	}
	target := node
	if idx > 0 {
		target = c.electionDir() + "/" + ms[idx-1].name
	}
	var exists bool
	var stat *zk.Stat
	var ev <-chan zk.Event
	err = c.call(ctx, func() error {
		var err error
		exists, stat, ev, err = c.conn.ExistsW(target)
		return err
	})
	if err != nil {
		return false, 0, nil, nil, classify(err)
	}
	switch {
	case idx == 0 && !exists:
		return false, 0, nil, nil, ErrNotFound
	case idx == 0:
		// The node's owner, not our current session id, is what the
		// leadership must outlive: ZooKeeper deletes the node when that
		// session ends.
		return true, stat.EphemeralOwner, ev, nil, nil
	case !exists:
		// The predecessor left between the listing and the watch: look
		// again at once.
		closed := make(chan zk.Event)
		close(closed)
		return false, 0, nil, closed, nil
	default:
		return false, 0, nil, ev, nil
	}
}

// Leader returns the current leader's advertised address, read from the
// lowest election node; ErrNoLeader when there is none.
func (c *Client) Leader(ctx context.Context) (LeaderInfo, error) {
	if err := c.prepare(ctx); err != nil {
		return LeaderInfo{}, err
	}
	for range 5 {
		var children []string
		err := c.call(ctx, func() error {
			var err error
			children, _, err = c.conn.Children(c.electionDir())
			return err
		})
		if err != nil {
			return LeaderInfo{}, fmt.Errorf("cannot list the election: %w", classify(err))
		}
		ms := sortedMembers(children)
		if len(ms) == 0 {
			return LeaderInfo{}, ErrNoLeader
		}
		node := c.electionDir() + "/" + ms[0].name
		var data []byte
		err = c.call(ctx, func() error {
			var err error
			data, _, err = c.conn.Get(node)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			continue // it left while we looked; look again
		}
		if err != nil {
			return LeaderInfo{}, fmt.Errorf("cannot read the leader's node %s: %w", node, classify(err))
		}
		var nd nodeData
		if err := json.Unmarshal(data, &nd); err != nil || nd.Address == "" {
			return LeaderInfo{}, fmt.Errorf("the leader's node %s does not hold {\"address\": \"host:port\"}: %q", node, data)
		}
		return LeaderInfo{Address: nd.Address, Node: node}, nil
	}
	return LeaderInfo{}, fmt.Errorf("%w: the election kept changing while it was read", ErrUnavailable)
}

// deleteNode removes an election node we own, best effort (the session's end
// removes it anyway).
func (c *Client) deleteNode(node string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.sessionTimeout())
	defer cancel()
	err := c.call(ctx, func() error { return c.conn.Delete(node, -1) })
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		c.log.Warn("cannot delete our election node; it goes when the session ends", "node", node, "error", classify(err))
	}
}

// Leadership is held by the process whose election node is the lowest. It
// ends (Done closes) when the session expires, when the connection has been
// down longer than Config.DisconnectGrace, when the node is deleted, on
// Resign, or on Client.Close. Its writes are fenced by the node: ZooKeeper
// refuses them once the node is gone, whatever this process believes.
type Leadership struct {
	c         *Client
	node      string
	address   string
	sessionID int64
	done      chan struct{}
	resign    chan struct{}
	resigned  chan error

	mu  sync.Mutex
	err error
}

func (c *Client) newLeadership(node string, sessionID int64, watch <-chan zk.Event, address string) *Leadership {
	l := &Leadership{
		c: c, node: node, address: address, sessionID: sessionID,
		done:     make(chan struct{}),
		resign:   make(chan struct{}),
		resigned: make(chan error, 1),
	}
	c.wg.Add(1)
	go l.monitor(watch)
	return l
}

// Done is closed when the leadership ends.
func (l *Leadership) Done() <-chan struct{} { return l.done }

// Err says why the leadership ended (it wraps ErrNotLeader and one of
// ErrSessionExpired, ErrConnectionLost, ErrNodeDeleted, ErrResigned,
// ErrClosed); nil while it lasts.
func (l *Leadership) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Node is the leader's election znode, the fence of its writes.
func (l *Leadership) Node() string { return l.node }

// Address is what this leader advertised.
func (l *Leadership) Address() string { return l.address }

// Resign gives the leadership up: the election node is deleted so the next
// contender takes over at once. It returns when the leadership has ended;
// an error means the node could not be deleted now (it goes with the
// session, or is deleted on reconnect).
func (l *Leadership) Resign() error {
	select {
	case l.resign <- struct{}{}:
		return <-l.resigned
	case <-l.done:
		return nil
	}
}

func (l *Leadership) end(reason error) {
	l.mu.Lock()
	l.err = fmt.Errorf("%w: %w", ErrNotLeader, reason)
	l.mu.Unlock()
	close(l.done)
	l.c.log.Warn("leadership ended", "node", l.node, "reason", reason)
}

// monitor is the leadership's one goroutine: it ends the leadership on the
// first sign of loss, then makes sure the node does not outlive it.
func (l *Leadership) monitor(watch <-chan zk.Event) {
	defer l.c.wg.Done()
	var graceC <-chan time.Time
	var grace *time.Timer
	defer func() {
		if grace != nil {
			grace.Stop()
		}
	}()
	for {
		st, changed := l.c.state()
		switch {
		case st.closed:
			l.end(ErrClosed)
			return
		case st.sessionID != l.sessionID:
			// Reset to 0 when the server said the session expired, or
			// already a new session's id.
			l.end(ErrSessionExpired)
			return
		case !st.connected && l.c.cfg.DisconnectGrace == 0:
			l.end(ErrConnectionLost)
			l.cleanup()
			return
		case !st.connected && grace == nil:
			grace = time.NewTimer(l.c.cfg.DisconnectGrace)
			graceC = grace.C
		case st.connected && grace != nil:
			grace.Stop()
			grace, graceC = nil, nil
		}
		select {
		case <-changed:
		case <-graceC:
			l.end(ErrConnectionLost)
			l.cleanup()
			return
		case ev, ok := <-watch:
			if !ok || ev.Type == zk.EventNotWatching {
				// The watch died with the session or the client; the
				// session state says which on the next turn.
				watch = nil
				continue
			}
			if ev.Type == zk.EventNodeDeleted {
				select {
				case <-l.c.closing:
					// Our own Close ended the session and so the node.
					l.end(ErrClosed)
				default:
					l.end(ErrNodeDeleted)
				}
				return
			}
			// Anything else (data changed) leaves us leading; watch again.
			ctx, cancel := context.WithTimeout(context.Background(), l.c.cfg.sessionTimeout())
			var exists bool
			var again <-chan zk.Event
			err := l.c.call(ctx, func() error {
				var err error
				exists, _, again, err = l.c.conn.ExistsW(l.node)
				return err
			})
			cancel()
			if err == nil && !exists {
				l.end(ErrNodeDeleted)
				return
			}
			if err == nil {
				watch = again
			}
		case <-l.resign:
			l.end(ErrResigned)
			ctx, cancel := context.WithTimeout(context.Background(), l.c.cfg.sessionTimeout())
			err := l.c.call(ctx, func() error { return l.c.conn.Delete(l.node, -1) })
			cancel()
			if err != nil && !errors.Is(err, zk.ErrNoNode) {
				err = fmt.Errorf("cannot delete election node %s: %w", l.node, classify(err))
				l.resigned <- err
				l.cleanup()
				return
			}
			l.resigned <- nil
			return
		}
	}
}

// cleanup deletes the node of a leadership given up while the session may
// still live (connection lost, failed resign), once the connection is back;
// otherwise this process would sit at the head of the election without
// leading. It stops when the session is gone (the node with it) or the
// client closes.
func (l *Leadership) cleanup() {
	for {
		st, changed := l.c.state()
		switch {
		case st.closed, st.sessionID != l.sessionID:
			return
		case st.connected:
			ctx, cancel := context.WithTimeout(context.Background(), l.c.cfg.sessionTimeout())
			err := l.c.call(ctx, func() error { return l.c.conn.Delete(l.node, -1) })
			cancel()
			if err == nil || errors.Is(err, zk.ErrNoNode) {
				return
			}
			l.c.log.Warn("cannot delete the election node of a lost leadership; retrying", "node", l.node, "error", classify(err))
		}
		select {
		case <-changed:
		case <-l.c.closing:
			return
		}
	}
}

// retry spaces out retries: 50 ms doubling to 2 s.
type retry struct{ attempt int }

var retryPolicy = backoff.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Factor: 2}

func (b *retry) reset() { b.attempt = 0 }

func (b *retry) wait(ctx context.Context, closing <-chan struct{}) error {
	t := time.NewTimer(retryPolicy.Envelope(b.attempt))
	defer t.Stop()
	b.attempt++
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-closing:
		return ErrClosed
	}
}
