package detect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/tiltai/tiltai/internal/backoff"
)

// Master is a leading Mesos master.
type Master struct {
	// URL is the base of the master's HTTP API: scheme://host:port and, for a
	// static --master, any path prefix given. Masters found in ZooKeeper are
	// reached over http at the IP they advertise (MasterInfo carries no
	// scheme, and an IP needs no resolver).
	URL *url.URL
	// From ZooKeeper's MasterInfo; empty for a static master.
	ID       string
	Hostname string
	Version  string
	Node     string // the json.info_ znode it was read from
}

// SchedulerEndpoint is where the v1 scheduler API of this master is.
func (m Master) SchedulerEndpoint() string {
	return strings.TrimSuffix(m.URL.String(), "/") + "/api/v1/scheduler"
}

func (m Master) String() string {
	if m.ID == "" {
		return m.URL.String()
	}
	return fmt.Sprintf("%s (id %s, version %s)", m.URL, m.ID, m.Version)
}

// sessionTimeout matches Mesos' own ZOOKEEPER_SESSION_TIMEOUT.
const sessionTimeout = 10 * time.Second

// Detector reports the leading master and every change of leader. Its
// methods are safe for concurrent use.
type Detector struct {
	src     Source
	log     *slog.Logger
	changed chan struct{} // capacity 1: "look again"
	closing chan struct{}
	wg      sync.WaitGroup
	conn    *zk.Conn

	mu      sync.Mutex
	cur     *Master
	updated chan struct{} // closed and replaced whenever cur changes

	closeOnce sync.Once
}

// New parses the --master value and, for zk://, starts following the masters'
// election. It does not wait for a leader; Leader does. Close releases it.
func New(ctx context.Context, master string, log *slog.Logger) (*Detector, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	src, err := ParseFlag(master)
	if err != nil {
		return nil, err
	}
	if src.Kind == File {
		b, err := os.ReadFile(src.Path)
		if err != nil {
			return nil, fmt.Errorf("cannot read the master from %s: %w", src.Path, err)
		}
		inner := strings.TrimSpace(string(b))
		if strings.HasPrefix(inner, "file://") {
			return nil, fmt.Errorf("the master file %s points at another file (%s); write the master itself there", src.Path, inner)
		}
		src, err = ParseFlag(inner)
		if err != nil {
			return nil, fmt.Errorf("in %s: %w", master, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := &Detector{
		src:     src,
		log:     log.With("master_source", src.String()),
		changed: make(chan struct{}, 1),
		closing: make(chan struct{}),
		updated: make(chan struct{}),
	}
	if src.Kind == Static {
		d.cur = &Master{URL: src.URL}
		return d, nil
	}
	conn, _, err := zk.Connect(src.ZK.Servers, sessionTimeout,
		zk.WithLogger(zkLogger{d.log}), zk.WithLogInfo(false), zk.WithMaxBufferSize(4<<20))
	if err != nil {
		return nil, fmt.Errorf("cannot connect to ZooKeeper %s: %w", src.ZK, err)
	}
	d.conn = conn
	d.wg.Add(1)
	go d.follow()
	return d, nil
}

// Source is the parsed --master value in use.
func (d *Detector) Source() Source { return d.src }

// Leader returns the leading master's base URL (scheme://host:port and any
// path prefix), waiting until one is known or ctx ends. While ZooKeeper is
// unreachable it keeps answering the last leader seen. With Changed, it
// makes a Detector a scheduler.MasterSource.
func (d *Detector) Leader(ctx context.Context) (string, error) {
	m, err := d.Master(ctx)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(m.URL.String(), "/"), nil
}

// Master is Leader with what MasterInfo says about the master.
func (d *Detector) Master(ctx context.Context) (Master, error) {
	for {
		d.mu.Lock()
		cur, updated := d.cur, d.updated
		d.mu.Unlock()
		if cur != nil {
			return *cur, nil
		}
		select {
		case <-updated:
		case <-d.closing:
			return Master{}, errors.New("master detector closed")
		case <-ctx.Done():
			return Master{}, fmt.Errorf("no leading Mesos master found in %s: %w", d.src, ctx.Err())
		}
	}
}

// Changed is signalled whenever a leader is found, the first one included
// (signals coalesce; call Leader for the current one). It is nil, so never
// ready, for a static --master.
func (d *Detector) Changed() <-chan struct{} {
	if d.src.Kind == Static {
		return nil
	}
	return d.changed
}

// Close stops following ZooKeeper and waits for the goroutine. Idempotent.
func (d *Detector) Close() error {
	d.closeOnce.Do(func() {
		close(d.closing)
		if d.conn != nil {
			d.conn.Close()
		}
	})
	d.wg.Wait()
	return nil
}

// follow is the detector's one goroutine: it reads the election, publishes
// the leader, and waits on a watch for the next change.
func (d *Detector) follow() {
	defer d.wg.Done()
	path := d.src.ZK.Path
	authed := d.src.ZK.Username == ""
	// Retries after errors wait 50ms doubling to 2s.
	retry := backoff.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Factor: 2}
	attempt := 0
	pause := func() bool {
		t := time.NewTimer(retry.Envelope(attempt))
		defer t.Stop()
		attempt++
		select {
		case <-t.C:
			return true
		case <-d.closing:
			return false
		}
	}
	wait := func(w <-chan zk.Event) bool {
		select {
		case <-w:
			return true
		case <-d.closing:
			return false
		}
	}
	var lastProblem string
	problem := func(msg string, args ...any) {
		// Log each distinct problem once, not on every retry.
		if msg != lastProblem {
			d.log.Warn(msg, args...)
			lastProblem = msg
		}
	}
	for {
		select {
		case <-d.closing:
			return
		default:
		}
		if !authed {
			// go-zookeeper forgets credentials whose AddAuth failed, so add
			// them once a server answers; it resends them on reconnects.
			err := d.conn.AddAuth("digest", []byte(d.src.ZK.Username+":"+d.src.ZK.Password))
			if err != nil {
				problem("cannot authenticate to ZooKeeper; retrying", "error", err)
				if !pause() {
					return
				}
				continue
			}
			authed = true
		}
		children, _, w, err := d.conn.ChildrenW(path)
		if errors.Is(err, zk.ErrNoNode) {
			exists, _, ew, err := d.conn.ExistsW(path)
			if err == nil && !exists {
				problem("no Mesos master has registered in ZooKeeper yet (the path does not exist)", "path", path)
				if !wait(ew) {
					return
				}
			}
			continue
		}
		if err != nil {
			problem("cannot read the Mesos masters from ZooKeeper; retrying", "path", path, "error", err)
			if !pause() {
				return
			}
			continue
		}
		node, ok := lowestJSONInfo(children)
		if !ok {
			problem("no Mesos master is registered in ZooKeeper (no json.info_ nodes)", "path", path, "children", len(children))
			if !wait(w) {
				return
			}
			continue
		}
		data, _, err := d.conn.Get(path + "/" + node)
		if errors.Is(err, zk.ErrNoNode) {
			continue // it left while we looked
		}
		if err != nil {
			problem("cannot read the leading master's node; retrying", "node", node, "error", err)
			if !pause() {
				return
			}
			continue
		}
		m, err := ParseMasterInfo(data)
		if err != nil {
			problem("the leading master's node does not hold a usable MasterInfo", "node", node, "error", err)
			if !wait(w) {
				return
			}
			continue
		}
		m.Node = path + "/" + node
		attempt, lastProblem = 0, ""
		d.publish(m)
		if !wait(w) {
			return
		}
	}
}

func (d *Detector) publish(m Master) {
	d.mu.Lock()
	prev := d.cur
	same := prev != nil && prev.Node == m.Node && prev.URL.String() == m.URL.String()
	if !same {
		d.cur = &m
		close(d.updated)
		d.updated = make(chan struct{})
	}
	d.mu.Unlock()
	if same {
		return
	}
	if prev == nil {
		d.log.Info("leading Mesos master found", "master", m.String(), "node", m.Node)
	} else {
		d.log.Info("leading Mesos master changed", "master", m.String(), "previous", prev.String(), "node", m.Node)
	}
	select {
	case d.changed <- struct{}{}:
	default: // a signal is already pending
	}
}

// jsonInfoPrefix is Mesos' MASTER_INFO_JSON_LABEL plus the group's "_".
const jsonInfoPrefix = "json.info_"

// lowestJSONInfo picks the json.info_ child with the lowest sequence number.
func lowestJSONInfo(children []string) (string, bool) {
	type cand struct {
		name string
		seq  int64
	}
	var cs []cand
	for _, ch := range children {
		digits, ok := strings.CutPrefix(ch, jsonInfoPrefix)
		if !ok {
			continue
		}
		seq, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || seq < 0 {
			continue
		}
		cs = append(cs, cand{ch, seq})
	}
	if len(cs) == 0 {
		return "", false
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].seq < cs[j].seq })
	return cs[0].name, true
}

// masterInfo is the part of Mesos' MasterInfo (JSON, proto field names) we
// use; see ../mesos-1.11/01-subscribe-json.json for a real one.
type masterInfo struct {
	ID       string `json:"id"`
	IP       uint32 `json:"ip"`
	Port     int    `json:"port"`
	PID      string `json:"pid"`
	Hostname string `json:"hostname"`
	Version  string `json:"version"`
	Address  *struct {
		Hostname string `json:"hostname"`
		IP       string `json:"ip"`
		Port     int    `json:"port"`
	} `json:"address"`
}

// ParseMasterInfo turns a json.info_ node's data into a Master. The host is
// the advertised IP (address.ip, else the packed ip field), falling back to
// the host name; the port is address.port, else port.
func ParseMasterInfo(data []byte) (Master, error) {
	var mi masterInfo
	if err := json.Unmarshal(data, &mi); err != nil {
		return Master{}, fmt.Errorf("not MasterInfo JSON: %w", err)
	}
	host, port := "", mi.Port
	if a := mi.Address; a != nil {
		if a.Port != 0 {
			port = a.Port
		}
		if net.ParseIP(a.IP) != nil {
			host = a.IP
		}
	}
	if host == "" && mi.IP != 0 {
		// A uint32 holding the address in network byte order as read on a
		// little-endian machine: 16777343 is 127.0.0.1.
		host = net.IPv4(byte(mi.IP), byte(mi.IP>>8), byte(mi.IP>>16), byte(mi.IP>>24)).String()
	}
	if host == "" && mi.Address != nil {
		host = mi.Address.Hostname
	}
	if host == "" {
		host = mi.Hostname
	}
	switch {
	case host == "":
		return Master{}, errors.New("MasterInfo has no address, ip or hostname")
	case port < 1 || port > 65535:
		return Master{}, fmt.Errorf("MasterInfo has no valid port (%d)", port)
	}
	hostname := mi.Hostname
	if hostname == "" && mi.Address != nil {
		hostname = mi.Address.Hostname
	}
	return Master{
		URL:      &url.URL{Scheme: "http", Host: net.JoinHostPort(host, strconv.Itoa(port))},
		ID:       mi.ID,
		Hostname: hostname,
		Version:  mi.Version,
	}, nil
}

// zkLogger sends go-zookeeper's log lines to slog at debug level.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug("go-zookeeper", "detail", fmt.Sprintf(format, args...))
}
