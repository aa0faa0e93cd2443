package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/tiltai/tiltai/internal/backoff"
	"github.com/tiltai/tiltai/internal/zkha"
	"github.com/tiltai/tiltai/scheduler/httpapi"
)

// Config configures Run.
type Config struct {
	// ZK is the ZooKeeper to campaign on and keep the state in.
	ZK zkha.Config
	// Listen is the API address, the leader's and the standby's (a fixed
	// port: standbys point clients at the leader's).
	Listen string
	// Advertise is the host others reach this instance at (required with a
	// wildcard Listen).
	Advertise string
	// Logger receives the logs (nil: discarded).
	Logger *slog.Logger
}

// Scheduler is a scheduler started as leader: what Run needs of it.
type Scheduler interface {
	// Done is closed when it has stopped on its own; Err says why.
	Done() <-chan struct{}
	Err() error
	// Close stops it without tearing anything down, and waits.
	Close() error
}

// Start starts a scheduler on kv, the leader's fenced store in ZooKeeper.
// An error marked Fatal ends Run; any other gives the leadership back and
// campaigns again later.
type Start func(ctx context.Context, kv *zkha.KV) (Scheduler, error)

// fatalError is an error of Start that retrying cannot mend.
type fatalError struct{ err error }

func (f *fatalError) Error() string { return f.err.Error() }
func (f *fatalError) Unwrap() error { return f.err }

// Fatal marks err as one that ends Run (which returns err itself).
func Fatal(err error) error { return &fatalError{err} }

// Run campaigns for leadership until ctx ends, and leads with a scheduler
// from start until the leadership is lost, then stands by and campaigns
// again; it never runs a scheduler while it does not lead.
func Run(ctx context.Context, cfg Config, start Start) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	zc := cfg.ZK
	zc.Logger = log
	client, err := zkha.New(ctx, zc)
	if err != nil {
		return fmt.Errorf("cannot use ZooKeeper %s: %w", cfg.ZK.URL, err)
	}
	defer client.Close()
	advertise, err := advertiseAddr(cfg)
	if err != nil {
		return err
	}
	// A failed campaign or start waits 1s doubling to 30s before the next.
	retry := backoff.Policy{Initial: time.Second, Max: 30 * time.Second, Factor: 2}
	attempt := 0
	nextWait := func() time.Duration { attempt++; return retry.Envelope(attempt - 1) }
	var wait time.Duration // before campaigning again, standing by
	for ctx.Err() == nil {
		stop := standby(cfg.Listen, client, log)
		if wait > 0 && !sleep(ctx, wait) {
			stop()
			return nil
		}
		wait = 0
		lead, err := client.Campaign(ctx, advertise)
		stop()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait = nextWait()
			log.Warn("cannot campaign for leadership; retrying", "err", err, "retry_in", wait)
			continue
		}
		log.Info("leading", "node", lead.Node(), "advertise", advertise)
		s, err := start(ctx, lead.KV())
		if err != nil {
			lead.Resign()
			var fatal *fatalError
			if errors.As(err, &fatal) {
				return fatal.err
			}
			// The store may be unreachable: never guess (no new framework
			// ID); give the leadership back and try again.
			wait = nextWait()
			log.Error("cannot start as leader; resigning", "err", err, "retry_in", wait)
			continue
		}
		attempt = 0
		select {
		case <-ctx.Done():
			s.Close()
			lead.Resign()
			return nil
		case <-lead.Done():
			// Deposed (session expired, partition): stop at once. Writes
			// would fail anyway (fenced), but a deposed leader must not
			// launch or kill on stale state.
			s.Close()
			log.Warn("lost the leadership; standing by", "err", lead.Err())
		case <-s.Done():
			err := s.Err()
			s.Close()
			lead.Resign()
			if !LostStore(err) {
				return err
			}
			// A state write failed because ZooKeeper went away or fenced
			// it (the leadership was lost while writing, often just
			// before lead.Done says so): the scheduler stopped before
			// acting on it. Stand by like any deposed leader; the next
			// leader, maybe this one, reloads the state from ZooKeeper.
			wait = nextWait()
			log.Warn("cannot write the state to ZooKeeper; standing by", "err", err, "retry_in", wait)
		}
	}
	return nil
}

// LostStore tells a failure of the ZooKeeper state store (unreachable,
// fenced, or changed by another leader) from the scheduler's own fatal
// errors: the first ends this leadership only, the others the process.
func LostStore(err error) bool {
	return errors.Is(err, zkha.ErrNotLeader) || errors.Is(err, zkha.ErrUnavailable) || errors.Is(err, zkha.ErrConflict)
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// advertiseAddr is host:port of this instance's API as others reach it.
func advertiseAddr(cfg Config) (string, error) {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	if port == "0" {
		return "", errors.New("with --zk the API needs a fixed port (--listen HOST:PORT): standbys point clients at the leader's")
	}
	if cfg.Advertise != "" {
		host = cfg.Advertise
	} else if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", errors.New("with --zk and a wildcard --listen, set --advertise to the host others reach this scheduler at")
	}
	return net.JoinHostPort(host, port), nil
}

// standby serves the API on listen while not leading: health says so,
// reads are answered by the leader (proxied), writes are redirected to it
// (307).
func standby(listen string, client *zkha.Client, log *slog.Logger) (stop func()) {
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		log.Warn("cannot serve the standby API", "listen", listen, "err", err)
		return func() {}
	}
	leader := func(r *http.Request) (string, error) {
		if !client.Connected() {
			// Do not make every health check wait for a ZooKeeper that is
			// not there: nobody can be known to lead.
			return "", errors.New("zookeeper is unreachable")
		}
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		info, err := client.Leader(ctx)
		if err != nil {
			return "", err
		}
		return info.Address, nil
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr, err := leader(r)
		if r.URL.Path == "/health" {
			h := map[string]any{"status": "standby", "leader": addr}
			if err != nil {
				h["error"] = err.Error()
			}
			httpapi.WriteJSON(w, http.StatusOK, h)
			return
		}
		if err != nil || addr == "" {
			httpapi.WriteError(w, http.StatusServiceUnavailable, "this scheduler is a standby and no leader is elected yet; retry")
			return
		}
		target := &url.URL{Scheme: "http", Host: addr}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			u := *r.URL
			u.Scheme, u.Host = target.Scheme, target.Host
			w.Header().Set("X-Tiltai-Leader", addr)
			http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
			return
		}
		p := httputil.NewSingleHostReverseProxy(target)
		p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			httpapi.WriteError(w, http.StatusBadGateway, "the leader at %s did not answer: %v", addr, err)
		}
		w.Header().Set("X-Tiltai-Leader", addr)
		p.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(lis) }()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(sctx)
		cancel()
		srv.Close()
		wg.Wait()
	}
}
