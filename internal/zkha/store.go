package zkha

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/go-zookeeper/zk"
)

// Version is a key's version: ZooKeeper's data version of its znode. Pass
// the version a read returned to make the write conditional on nobody having
// written since.
type Version int32

// NoVersion makes Put create the key: it fails with ErrConflict if the key
// exists.
const NoVersion Version = -1

// Value is a stored byte blob and the version it was read at.
type Value struct {
	Data    []byte
	Version Version
}

// Layout of a key's znode data. The first byte says how the value is kept;
// a znode without data is not a value (a parent created for a nested key, or
// a chunked write that never committed) and reads as ErrNotFound.
const (
	formatInline  = 'v' // the rest is the value
	formatChunked = 'c' // the rest is a JSON manifest; chunks are children

	// chunkSize keeps every request well under ZooKeeper's default
	// jute.maxbuffer (1 MiB less one byte), which bounds a whole multi.
	chunkSize = 512 << 10
	// chunkPrefix starts the chunk children's names; keys cannot start
	// with '.', so chunks never collide with nested keys.
	chunkPrefix = ".chunk-"

	// MaxValueSize bounds one value: 128 chunks.
	MaxValueSize = 64 << 20
)

// manifest is the committed description of a chunked value.
type manifest struct {
	Gen    string `json:"gen"`    // names this write's chunks
	Chunks int    `json:"chunks"` // how many
	Size   int    `json:"size"`   // total bytes
	SHA256 string `json:"sha256"` // of the whole value
}

func chunkName(gen string, i int) string { return fmt.Sprintf("%s%s-%06d", chunkPrefix, gen, i) }

// CheckKey validates a key: '/'-separated segments of letters, digits, '.',
// '_' and '-', none empty or starting with '.', at most 200 bytes each.
func CheckKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("key %q has an empty segment", key)
		case seg[0] == '.':
			return fmt.Errorf("key %q: segment %q starts with '.'", key, seg)
		case len(seg) > 200:
			return fmt.Errorf("key %q: segment longer than 200 bytes", key)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				return fmt.Errorf("key %q: character %q is not allowed (use letters, digits, '.', '_', '-' and '/')", key, c)
			}
		}
	}
	return nil
}

func (c *Client) keyPath(key string) string { return c.stateDir() + "/" + key }

// Get reads a key. ErrNotFound means ZooKeeper answered that it does not
// exist; any failure to ask wraps ErrUnavailable. It waits for a session
// until ctx ends.
func (c *Client) Get(ctx context.Context, key string) (Value, error) {
	if err := CheckKey(key); err != nil {
		return Value{}, err
	}
	if err := c.prepare(ctx); err != nil {
		return Value{}, fmt.Errorf("cannot read %q: %w", key, err)
	}
	// A chunked value being replaced loses its old chunks after the new
	// manifest is committed; a reader caught in between reads again.
	for range 5 {
		v, retry, err := c.get(ctx, key)
		if !retry {
			return v, err
		}
	}
	return Value{}, fmt.Errorf("cannot read %q: %w: it kept changing while it was read", key, ErrUnavailable)
}

func (c *Client) get(ctx context.Context, key string) (v Value, retry bool, err error) {
	p := c.keyPath(key)
	var data []byte
	var stat *zk.Stat
	err = c.call(ctx, func() error {
		var err error
		data, stat, err = c.conn.Get(p)
		return err
	})
	if err != nil {
		return Value{}, false, fmt.Errorf("cannot read %q: %w", key, classify(err))
	}
	if len(data) == 0 {
		return Value{}, false, fmt.Errorf("cannot read %q: %w", key, ErrNotFound)
	}
	v.Version = Version(stat.Version)
	switch data[0] {
	case formatInline:
		v.Data = data[1:]
		return v, false, nil
	case formatChunked:
	default:
		return Value{}, false, fmt.Errorf("cannot read %q: znode %s does not hold a tiltai value (first byte %q)", key, p, data[0])
	}
	var m manifest
	if err := json.Unmarshal(data[1:], &m); err != nil || m.Chunks < 0 || m.Size < 0 || m.Size > MaxValueSize {
		return Value{}, false, fmt.Errorf("cannot read %q: bad chunk manifest in %s: %q", key, p, data[1:])
	}
	buf := make([]byte, 0, m.Size)
	for i := range m.Chunks {
		var chunk []byte
		err := c.call(ctx, func() error {
			var err error
			chunk, _, err = c.conn.Get(p + "/" + chunkName(m.Gen, i))
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			return Value{}, true, nil
		}
		if err != nil {
			return Value{}, false, fmt.Errorf("cannot read chunk %d of %q: %w", i, key, classify(err))
		}
		buf = append(buf, chunk...)
	}
	sum := sha256.Sum256(buf)
	if len(buf) != m.Size || hex.EncodeToString(sum[:]) != m.SHA256 {
		return Value{}, false, fmt.Errorf("cannot read %q: its chunks do not match the manifest (%d bytes, want %d)", key, len(buf), m.Size)
	}
	v.Data = buf
	return v, false, nil
}

// List returns the keys directly below dir ("" for the top), sorted; a dir
// that does not exist has none.
func (c *Client) List(ctx context.Context, dir string) ([]string, error) {
	p := c.stateDir()
	if dir != "" {
		if err := CheckKey(dir); err != nil {
			return nil, err
		}
		p = c.keyPath(dir)
	}
	if err := c.prepare(ctx); err != nil {
		return nil, fmt.Errorf("cannot list %q: %w", dir, err)
	}
	var children []string
	err := c.call(ctx, func() error {
		var err error
		children, _, err = c.conn.Children(p)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list %q: %w", dir, classify(err))
	}
	keys := make([]string, 0, len(children))
	for _, ch := range children {
		if !strings.HasPrefix(ch, ".") {
			keys = append(keys, ch)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// Put writes a key if its version is still expected (NoVersion: if it does
// not exist yet) and this process still leads, and returns the new version.
// ErrConflict: the version moved (read again and decide again). ErrNotLeader:
// fenced, nothing was written. ErrUnavailable: the outcome is unknown (read
// again). A value over one chunk is written as chunks first, invisible until
// one last conditional write of its manifest publishes it.
func (l *Leadership) Put(ctx context.Context, key string, data []byte, expected Version) (Version, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	if len(data) > MaxValueSize {
		return 0, fmt.Errorf("cannot write %q: %d bytes exceed the %d-byte limit", key, len(data), MaxValueSize)
	}
	if expected < NoVersion {
		return 0, fmt.Errorf("cannot write %q: invalid version %d", key, expected)
	}
	select {
	case <-l.done:
		return 0, fmt.Errorf("cannot write %q: %w", key, l.Err())
	default:
	}
	c := l.c
	if err := c.prepare(ctx); err != nil {
		return 0, fmt.Errorf("cannot write %q: %w", key, err)
	}
	v, err := l.put(ctx, key, data, expected)
	if err != nil {
		return 0, fmt.Errorf("cannot write %q: %w", key, err)
	}
	return v, nil
}

func (l *Leadership) put(ctx context.Context, key string, data []byte, expected Version) (Version, error) {
	c := l.c
	p := c.keyPath(key)
	// Where does the key stand? An empty znode (parent of nested keys, or
	// an uncommitted chunked write) counts as absent.
	var exists bool
	var stat *zk.Stat
	err := c.call(ctx, func() error {
		var err error
		exists, stat, err = c.conn.Exists(p)
		return err
	})
	if err != nil {
		return 0, classify(err)
	}
	base := int32(expected) // the data version the commit is conditional on
	if expected == NoVersion {
		if exists && stat.DataLength > 0 {
			return 0, fmt.Errorf("%w: it exists (version %d) and NoVersion was given", ErrConflict, stat.Version)
		}
		if exists {
			base = stat.Version
		}
	} else if !exists {
		return 0, fmt.Errorf("%w: %w (expected version %d)", ErrConflict, ErrNotFound, expected)
	} else if stat.Version != base {
		// Fail before writing any chunk; the commit below checks again.
		return 0, fmt.Errorf("%w: version is %d, not %d", ErrConflict, stat.Version, expected)
	}

	inline := len(data)+1 <= chunkSize
	if !exists {
		var ops []any
		missing, err := l.missingParents(ctx, key)
		if err != nil {
			return 0, err
		}
		for _, mp := range missing {
			ops = append(ops, &zk.CreateRequest{Path: mp, Acl: c.acl})
		}
		if inline {
			// One transaction: parents, the key and its value.
			ops = append(ops, &zk.CreateRequest{Path: p, Data: encodeInline(data), Acl: c.acl})
			if _, err := l.fenced(ctx, ops...); err != nil {
				return 0, err
			}
			return 0, nil
		}
		// Chunks need their parent: create the key empty (reads say "not
		// found") and commit its manifest below at version 0.
		ops = append(ops, &zk.CreateRequest{Path: p, Acl: c.acl})
		if _, err := l.fenced(ctx, ops...); err != nil {
			return 0, err
		}
		base = 0
	}

	if inline {
		res, err := l.fenced(ctx, &zk.SetDataRequest{Path: p, Data: encodeInline(data), Version: base})
		if err != nil {
			return 0, err
		}
		v := Version(res[1].Stat.Version)
		if stat != nil && stat.NumChildren > 0 {
			// The value it replaces may have been chunked.
			l.collectChunks(ctx, p, "")
		}
		return v, nil
	}

	gen, err := newGen()
	if err != nil {
		return 0, err
	}
	n := (len(data) + chunkSize - 1) / chunkSize
	for i := range n {
		chunk := data[i*chunkSize : min((i+1)*chunkSize, len(data))]
		if _, err := l.fenced(ctx, &zk.CreateRequest{Path: p + "/" + chunkName(gen, i), Data: chunk, Acl: c.acl}); err != nil {
			return 0, fmt.Errorf("chunk %d of %d: %w", i+1, n, err)
		}
	}
	sum := sha256.Sum256(data)
	m, err := json.Marshal(manifest{Gen: gen, Chunks: n, Size: len(data), SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		return 0, err
	}
	res, err := l.fenced(ctx, &zk.SetDataRequest{Path: p, Data: append([]byte{formatChunked}, m...), Version: base})
	if err != nil {
		// The new chunks are garbage: remove them now if we still may
		// write, else the next write collects them.
		l.collectGen(ctx, p, gen, n)
		return 0, err
	}
	v := Version(res[1].Stat.Version)
	l.collectChunks(ctx, p, gen)
	return v, nil
}

func encodeInline(data []byte) []byte {
	return append([]byte{formatInline}, data...)
}

func newGen() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("cannot make a chunk generation id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// missingParents lists the znodes to create, outermost first, so that a
// nested key's znode can be created.
func (l *Leadership) missingParents(ctx context.Context, key string) ([]string, error) {
	c := l.c
	segs := strings.Split(key, "/")
	var missing []string
	for i := len(segs) - 1; i > 0; i-- {
		pp := c.keyPath(strings.Join(segs[:i], "/"))
		var exists bool
		err := c.call(ctx, func() error {
			var err error
			exists, _, err = c.conn.Exists(pp)
			return err
		})
		if err != nil {
			return nil, classify(err)
		}
		if exists {
			break
		}
		missing = append([]string{pp}, missing...)
	}
	return missing, nil
}

// collectChunks deletes the chunk children of p that do not belong to the
// committed generation keep: the previous value's, and any left by a write
// that failed before its commit. Best effort: leftovers are collected by the
// next write.
func (l *Leadership) collectChunks(ctx context.Context, p, keep string) {
	c := l.c
	var children []string
	err := c.call(ctx, func() error {
		var err error
		children, _, err = c.conn.Children(p)
		return err
	})
	if err != nil {
		return
	}
	var ops []any
	for _, ch := range children {
		if strings.HasPrefix(ch, chunkPrefix) && (keep == "" || !strings.HasPrefix(ch, chunkPrefix+keep+"-")) {
			ops = append(ops, &zk.DeleteRequest{Path: p + "/" + ch, Version: -1})
		}
	}
	for len(ops) > 0 {
		batch := ops[:min(len(ops), 200)]
		ops = ops[len(batch):]
		if _, err := l.fenced(ctx, batch...); err != nil {
			c.log.Warn("cannot collect old chunks; the next write will", "path", p, "error", err)
			return
		}
	}
}

// collectGen deletes the n chunks of one generation, best effort.
func (l *Leadership) collectGen(ctx context.Context, p, gen string, n int) {
	var ops []any
	for i := range n {
		ops = append(ops, &zk.DeleteRequest{Path: p + "/" + chunkName(gen, i), Version: -1})
	}
	if _, err := l.fenced(ctx, ops...); err != nil {
		l.c.log.Debug("cannot remove the chunks of a failed write; the next write will", "path", p, "error", err)
	}
}

// Delete removes a key if its version is still expected and this process
// still leads. A key with nested keys below it cannot be deleted.
func (l *Leadership) Delete(ctx context.Context, key string, expected Version) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if expected < 0 {
		return fmt.Errorf("cannot delete %q: give the version read (not %d)", key, expected)
	}
	select {
	case <-l.done:
		return fmt.Errorf("cannot delete %q: %w", key, l.Err())
	default:
	}
	c := l.c
	if err := c.prepare(ctx); err != nil {
		return fmt.Errorf("cannot delete %q: %w", key, err)
	}
	p := c.keyPath(key)
	var children []string
	err := c.call(ctx, func() error {
		var err error
		children, _, err = c.conn.Children(p)
		return err
	})
	if err != nil {
		return fmt.Errorf("cannot delete %q: %w", key, classify(err))
	}
	var ops []any
	for _, ch := range children {
		if !strings.HasPrefix(ch, chunkPrefix) {
			return fmt.Errorf("cannot delete %q: it has nested keys (%s); delete them first", key, ch)
		}
		ops = append(ops, &zk.DeleteRequest{Path: p + "/" + ch, Version: -1})
	}
	ops = append(ops, &zk.DeleteRequest{Path: p, Version: int32(expected)})
	if _, err := l.fenced(ctx, ops...); err != nil {
		return fmt.Errorf("cannot delete %q: %w", key, err)
	}
	return nil
}

// fenced runs ops as one ZooKeeper transaction that also checks this
// leader's election node exists. If the session that owned the node has
// ended, ZooKeeper has deleted the node and the whole transaction fails:
// a deposed leader cannot write, even before it learns it was deposed. The
// result's index 0 is the check; the ops follow.
func (l *Leadership) fenced(ctx context.Context, ops ...any) ([]zk.MultiResponse, error) {
	select {
	case <-l.done:
		return nil, l.Err()
	default:
	}
	return l.multi(ctx, ops...)
}

// multi is fenced without the local check, so tests can show that
// ZooKeeper itself refuses a deposed leader.
func (l *Leadership) multi(ctx context.Context, ops ...any) ([]zk.MultiResponse, error) {
	all := append([]any{&zk.CheckVersionRequest{Path: l.node, Version: -1}}, ops...)
	var res []zk.MultiResponse
	err := l.c.call(ctx, func() error {
		var err error
		res, err = l.c.conn.Multi(all...)
		return err
	})
	if err == nil {
		return res, nil
	}
	for i, r := range res {
		if r.Error == nil {
			continue
		}
		if i == 0 {
			return nil, fmt.Errorf("%w: election node %s is gone (%w)", ErrNotLeader, l.node, r.Error)
		}
		if errors.Is(r.Error, zk.ErrNotEmpty) {
			return nil, fmt.Errorf("%w: nested keys were added meanwhile", ErrConflict)
		}
		return nil, classify(r.Error)
	}
	return nil, classify(err)
}
