package gate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/internal/backoff"
)

// peer is one configured peer of an out-gate: a goroutine that dials it in
// the background with fast retry and serves the connection, reconnecting
// until the peer is removed.
type peer struct {
	ep      string
	addr    string
	removed chan struct{}
	cancel  context.CancelFunc // stops dialling
	done    chan struct{}
}

// setPeers makes eps (sorted) the out-gate's peers: new ones start dialling at
// once, removed ones drain. The returned channel closes when every removed
// peer has finished.
func (g *Gate) setPeers(eps []string) <-chan struct{} {
	g.lmu.Lock()
	defer g.lmu.Unlock()
	var removed []*peer
	for ep, p := range g.peers {
		if !slices.Contains(eps, ep) {
			delete(g.peers, ep)
			close(p.removed)
			p.cancel()
			removed = append(removed, p)
		}
	}
	if !g.closing {
		for _, ep := range eps {
			if _, ok := g.peers[ep]; ok {
				continue
			}
			e, err := control.ParseEndpoint(ep)
			if err != nil { // snapshots are validated before they get here
				g.log.Error("ignoring invalid peer", "gate", g.name, "peer", ep, "error", err)
				continue
			}
			ctx, cancel := context.WithCancel(g.ctx)
			p := &peer{ep: ep, addr: e.Addr(), removed: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
			g.peers[ep] = p
			g.wg.Add(1)
			go g.runPeer(ctx, p)
		}
	}
	g.linkSig.notify()
	done := make(chan struct{})
	go func() {
		for _, p := range removed {
			<-p.done
		}
		close(done)
	}()
	return done
}

func (g *Gate) runPeer(ctx context.Context, p *peer) {
	defer g.wg.Done()
	defer close(p.done)
	defer p.cancel()
	retry := backoff.Policy{Initial: g.opt.RetryMin, Max: g.opt.RetryMax, Factor: 2, Jitter: backoff.Equal}
	failures := 0
	for {
		select {
		case <-p.removed:
			return
		default:
		}
		d := net.Dialer{Timeout: g.opt.DialTimeout, KeepAlive: 10 * time.Second}
		nc, err := d.DialContext(ctx, "tcp", p.addr)
		var l *link
		if err == nil {
			l, err = g.handshake(nc, false, p.ep)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if failures == 1 || failures%100 == 0 {
				g.log.Info("cannot reach peer yet; retrying", "gate", g.name, "peer", p.ep, "attempts", failures, "error", err)
			}
			// Jittered exponential backoff, capped low so that a peer that
			// becomes reachable gets its first message within RetryMax.
			t := time.NewTimer(retry.Next(failures-1, rand.Float64()))
			select {
			case <-t.C:
			case <-p.removed:
				t.Stop()
				return
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		if failures > 0 {
			g.log.Info("connected to peer", "gate", g.name, "peer", p.ep, "attempts", failures+1)
		}
		failures = 0
		g.serve(l, p.removed)
		if errors.Is(l.err, errRemoved) || errors.Is(l.err, ErrClosed) {
			return
		}
		g.log.Warn("peer connection lost; reconnecting", "gate", g.name, "peer", p.ep, "error", l.err)
	}
}

// listen binds an in-gate.
func (g *Gate) listen(bind string) error {
	e, err := control.ParseBindEndpoint(bind)
	if err != nil {
		return fmt.Errorf("cannot bind gate %q: %w", g.name, err)
	}
	lc := net.ListenConfig{KeepAlive: 10 * time.Second}
	ln, err := lc.Listen(g.ctx, "tcp", e.Addr())
	if err != nil {
		return fmt.Errorf("cannot bind gate %q on %s: %w", g.name, bind, err)
	}
	g.ln = ln
	a := ln.Addr().(*net.TCPAddr)
	g.bound = control.Endpoint{Host: a.IP.String(), Port: a.Port}.String()
	g.wg.Add(1)
	go g.acceptLoop()
	return nil
}

func (g *Gate) acceptLoop() {
	defer g.wg.Done()
	for {
		nc, err := g.ln.Accept()
		if err != nil {
			if g.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Warn("accept failed", "gate", g.name, "error", err)
			t := time.NewTimer(20 * time.Millisecond) // EMFILE: do not spin
			select {
			case <-t.C:
			case <-g.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		g.lmu.Lock()
		n, draining := len(g.links), g.draining || g.closing
		g.lmu.Unlock()
		limit := g.opt.MaxConns
		if g.pattern == control.Pair {
			limit = 1
		}
		if draining || n >= limit {
			g.ctr.refused.Add(1)
			g.log.Warn("refusing connection", "gate", g.name, "peer", nc.RemoteAddr().String(), "draining", draining, "connections", n)
			nc.Close()
			continue
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			remote := nc.RemoteAddr().String()
			l, err := g.handshake(nc, true, remote)
			if err != nil {
				g.ctr.refused.Add(1)
				g.log.Warn("refused connection: bad handshake", "gate", g.name, "peer", remote, "error", err)
				return
			}
			if g.pattern == control.Pair {
				g.lmu.Lock()
				busy := len(g.links) > 0
				g.lmu.Unlock()
				if busy {
					g.ctr.refused.Add(1)
					l.close(errors.New("pair gate already has a peer"))
					return
				}
			}
			g.serve(l, nil)
		}()
	}
}

// drain stops an in-gate taking connections, waits until its peers have
// closed theirs (they do once they stop routing to this gate) or until
// deadline, then closes what is left. Messages already received stay for the
// application; Recv returns ErrDrained after the last.
func (g *Gate) drain(deadline time.Time) {
	g.lmu.Lock()
	if g.draining {
		g.lmu.Unlock()
		<-g.drainDone
		return
	}
	g.draining = true
	g.lmu.Unlock()
	defer close(g.drainDone)
	if g.ln != nil {
		g.ln.Close()
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		g.lmu.Lock()
		n := len(g.links)
		g.lmu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-g.linkSig:
			continue
		case <-t.C:
		case <-g.ctx.Done():
		}
		g.log.Warn("drain deadline passed; closing remaining connections", "gate", g.name, "connections", n)
		g.closeLinks(errors.New("drain deadline passed"))
		break
	}
	if g.recvQ != nil {
		g.recvQ.finish()
	}
}

func (g *Gate) closeLinks(err error) {
	g.lmu.Lock()
	ls := slices.Collect(mapKeys(g.links))
	g.lmu.Unlock()
	for _, l := range ls {
		l.close(err)
	}
}

// Close closes the gate and waits for its goroutines. An out-gate first
// drains: Send fails from now on, and what is queued or in flight is
// delivered and acknowledged, for at most Options.DrainTimeout and never past
// the hub's stop deadline (Hub.SetStopDeadline: the executor's, when it
// stops the service); what is left is counted as dropped and stop_dropped.
// An in-gate stops at once; what it holds and the application has not taken
// is counted as dropped (use Hub.Drain first for a loss-free stop). Close
// returns an error if messages were lost. It is idempotent.
func (g *Gate) Close() error { return g.closeCtx(context.Background()) }

// CloseContext is Close with an out-gate delivering what it holds only until
// ctx ends (as well as the stop deadline and DrainTimeout).
func (g *Gate) CloseContext(ctx context.Context) error { return g.closeCtx(ctx) }

func (g *Gate) closeCtx(ctx context.Context) error {
	g.closeOnce.Do(func() {
		before := g.ctr.dropped.Load()
		out := g.dir == control.Out && (g.sendQ != nil || g.pattern == control.Pub)
		why := ""
		if out {
			why = g.flush(ctx, time.Now().Add(g.opt.DrainTimeout))
		}
		g.lmu.Lock()
		g.closing = true
		g.lmu.Unlock()
		if g.sendQ != nil {
			g.sendQ.close()
		}
		if g.ln != nil {
			g.ln.Close()
		}
		done := g.setPeers(nil)
		g.cancel()
		g.closeLinks(ErrClosed)
		<-done
		g.wg.Wait()
		if g.sendQ != nil {
			g.ctr.dropped.Add(uint64(g.sendQ.drop()))
		}
		if g.recvQ != nil {
			g.ctr.dropped.Add(uint64(g.recvQ.drop()))
		}
		if lost := g.ctr.dropped.Load() - before; lost > 0 {
			if out {
				g.ctr.stopDropped.Add(lost)
			}
			switch {
			case why != "":
			case out:
				why = "lost while closing"
			default:
				why = "not taken by the application"
			}
			g.closeErr = fmt.Errorf("gate %q closed with %d messages undelivered (dropped: %s)", g.name, lost, why)
		}
		g.hub.forget(g)
	})
	return g.closeErr
}

// flush waits until an out-gate's queues are empty and nothing is in flight,
// or until the first of deadline, the hub's stop deadline and ctx's end. It
// returns why it gave up, "" if it did not.
func (g *Gate) flush(ctx context.Context, deadline time.Time) string {
	if g.sendQ != nil {
		g.sendQ.close()
	}
	why := fmt.Sprintf("no peer took them within the drain timeout (%s)", g.opt.DrainTimeout)
	stopSet := g.hub.stopSet
	limit := func() time.Time {
		if by := g.hub.stopDeadline(); !by.IsZero() && by.Before(deadline) {
			why = "stopped: no peer took them before the stop deadline"
			return by
		}
		return deadline
	}
	t := time.NewTimer(time.Until(limit()))
	defer t.Stop()
	for {
		st := g.Stats()
		if st.QueueDepth == 0 && st.InFlight == 0 {
			return ""
		}
		select {
		case <-g.progress:
			continue
		case <-g.linkSig:
			continue
		case <-stopSet:
			// The executor gave a stop deadline while we were flushing.
			stopSet = nil
			t.Reset(time.Until(limit()))
			continue
		case <-t.C:
		case <-ctx.Done():
			why = "stopped: no peer took them before the close deadline"
		}
		g.log.Warn("closing gate with messages undelivered", "gate", g.name, "queued", st.QueueDepth, "in_flight", st.InFlight, "reason", why)
		return why
	}
}
