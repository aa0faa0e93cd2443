package scheduler

import (
	"context"
	"errors"

	"github.com/tiltai/tiltai/internal/zkha"
	"github.com/tiltai/tiltai/scheduler/ha"
)

// HA runs several schedulers on one ZooKeeper: one leads (and acts, with its
// state in ZooKeeper, every write fenced by its leadership), the others
// stand by, answer reads by asking the leader, and point writes at it
// (scheduler/ha).
type HA struct {
	ZK zkha.Config
}

// Run runs the scheduler until ctx ends or it fails. Without HA it is one
// scheduler on cfg.Store. With HA it campaigns for leadership, and leads
// with its state in ZooKeeper until the leadership is lost, then stands by
// and campaigns again; it never acts while it does not lead.
func Run(ctx context.Context, cfg Config, h *HA) error {
	if h == nil {
		s, err := New(ctx, cfg)
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-s.Done():
		}
		s.Close()
		return s.Err()
	}
	c := cfg.withDefaults()
	hc := ha.Config{ZK: h.ZK, Listen: c.Listen, Advertise: c.Advertise, Logger: c.Logger}
	return ha.Run(ctx, hc, func(ctx context.Context, kv *zkha.KV) (ha.Scheduler, error) {
		lcfg := cfg
		lcfg.Store = kv
		s, err := New(ctx, lcfg)
		if err != nil {
			var lost *FrameworkIDLostError
			if errors.As(err, &lost) {
				// No leader could start on this state: stop, for the
				// operator to restore the ID.
				return nil, ha.Fatal(err)
			}
			return nil, err
		}
		return s, nil
	})
}
