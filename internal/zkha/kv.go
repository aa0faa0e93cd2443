package zkha

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"
)

// KV presents a leader's store as whole loads and batched writes, the shape
// of the scheduler's state store (Load a prefix, Apply a batch where a nil
// value deletes). Keys are any strings of '/'-separated, non-empty
// segments; bytes outside [A-Za-z0-9.-] are escaped in znode names ("_5f"
// for '_'), so "tasks/web.1" is the znode state/tasks/web.1.
//
// Every write is fenced by the leader's election node and conditional on
// the version this KV last saw of the key (from Load or its own writes), so
// a write by anyone else since then is a conflict, not an overwrite. A
// batch is one ZooKeeper transaction, atomic, when it fits in one request
// (about 900 KB, no value over 512 KiB); a larger batch is written in key
// order as several transactions and large values as chunks, each step still
// fenced and conditional.
type KV struct {
	l *Leadership

	mu       sync.Mutex // serialises Load and Apply, and guards versions
	versions map[string]Version
}

// KV returns the leader's view of the store as a KV.
func (l *Leadership) KV() *KV { return &KV{l: l, versions: map[string]Version{}} }

// Close does nothing: the KV borrows the Leadership's client.
func (kv *KV) Close() error { return nil }

// maxTxn keeps one multi well under ZooKeeper's default jute.maxbuffer.
const maxTxn = 900 << 10

// EscapeKey turns a KV key into a store key (znode names).
func EscapeKey(key string) (string, error) {
	if key == "" {
		return "", errors.New("empty key")
	}
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		if seg == "" {
			return "", fmt.Errorf("key %q has an empty segment", key)
		}
		var b strings.Builder
		for j := 0; j < len(seg); j++ {
			c := seg[j]
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' && j > 0 {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "_%02x", c)
			}
		}
		segs[i] = b.String()
	}
	out := strings.Join(segs, "/")
	if err := CheckKey(out); err != nil {
		return "", fmt.Errorf("key %q: %w", key, err)
	}
	return out, nil
}

// UnescapeKey reverses EscapeKey.
func UnescapeKey(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '_' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("store key %q: truncated escape", s)
		}
		var c byte
		if _, err := fmt.Sscanf(s[i+1:i+3], "%02x", &c); err != nil {
			return "", fmt.Errorf("store key %q: bad escape %q", s, s[i:i+3])
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), nil
}

// Load returns every key that starts with prefix ("" for all) and its value.
// It fails, wrapping ErrUnavailable, unless it could read them all.
func (kv *KV) Load(ctx context.Context, prefix string) (map[string][]byte, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	c := kv.l.c
	if err := c.prepare(ctx); err != nil {
		return nil, fmt.Errorf("cannot load the state: %w", err)
	}
	out := map[string][]byte{}
	var walk func(dir string) error
	walk = func(dir string) error {
		names, err := c.List(ctx, dir)
		if err != nil {
			return err
		}
		for _, name := range names {
			stored := name
			if dir != "" {
				stored = dir + "/" + name
			}
			key, err := UnescapeKey(stored)
			if err != nil {
				return err
			}
			if strings.HasPrefix(key, prefix) {
				v, err := c.Get(ctx, stored)
				switch {
				case err == nil:
					out[key] = v.Data
					kv.versions[key] = v.Version
				case !errors.Is(err, ErrNotFound):
					return err
				}
			}
			// Only directories that can hold matching keys are entered.
			if strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") || prefix == "" {
				if err := walk(stored); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, fmt.Errorf("cannot load the state: %w", err)
	}
	return out, nil
}

// Apply writes a batch: each key set to its value, or deleted for a nil
// value. It returns once ZooKeeper has committed it. ErrNotLeader: fenced,
// nothing written. ErrConflict: a key changed since this KV saw it.
// ErrUnavailable: the outcome is unknown; Load again.
func (kv *KV) Apply(ctx context.Context, batch map[string][]byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	l := kv.l
	select {
	case <-l.done:
		return fmt.Errorf("cannot apply the batch: %w", l.Err())
	default:
	}
	// A request made while the connection is down waits in go-zookeeper
	// for a reconnect, which may never come (a partition): the end of the
	// leadership (the session is lost) must end the wait, or the caller —
	// the scheduler's loop, which its Close waits for — hangs with it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := kv.apply(ctx, batch)
	if err != nil && ctx.Err() != nil {
		select {
		case <-l.done:
			return fmt.Errorf("cannot apply the batch: %w: the leadership ended while writing (%v); the outcome is unknown (%w)", ErrNotLeader, l.Err(), ErrUnavailable)
		default:
		}
	}
	return err
}

func (kv *KV) apply(ctx context.Context, batch map[string][]byte) error {
	l, c := kv.l, kv.l.c
	if err := c.prepare(ctx); err != nil {
		return fmt.Errorf("cannot apply the batch: %w", err)
	}
	keys := make([]string, 0, len(batch))
	for k := range batch {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	var txn []any        // the inline ops, in key order
	var txnKeys []string // the key of each op in txn (parents: "")
	var large []string   // keys with values too big for a transaction
	largeVer := map[string]Version{}
	var collect []string // replaced values that may have been chunked
	parents := map[string]bool{}
	for _, key := range keys {
		stored, err := EscapeKey(key)
		if err != nil {
			return err
		}
		p := c.keyPath(stored)
		val := batch[key]
		if len(val) > MaxValueSize {
			return fmt.Errorf("cannot write %q: %d bytes exceed the %d-byte limit", key, len(val), MaxValueSize)
		}
		// The key's znode as it is now; a version this KV saw before must
		// still be the current one.
		ver, known := kv.versions[key]
		var exists bool
		var stat *zk.Stat
		err = c.call(ctx, func() error {
			var err error
			exists, stat, err = c.conn.Exists(p)
			return err
		})
		if err != nil {
			return fmt.Errorf("cannot apply the batch: %w", classify(err))
		}
		switch {
		case known && !exists:
			return fmt.Errorf("cannot apply the batch: %w: %q was deleted by someone else", ErrConflict, key)
		case known && stat.Version != int32(ver):
			return fmt.Errorf("cannot apply the batch: %w: %q is at version %d, not %d", ErrConflict, key, stat.Version, ver)
		case !exists:
			ver, stat = NoVersion, nil
		default:
			// Written by an earlier leader, or an empty parent (which
			// setData turns into a value).
			ver = Version(stat.Version)
		}
		if val == nil {
			if stat == nil {
				continue // deleting what is not there
			}
			var children []string
			if stat.NumChildren > 0 {
				err := c.call(ctx, func() error {
					var err error
					children, _, err = c.conn.Children(p)
					return err
				})
				if err != nil {
					return fmt.Errorf("cannot apply the batch: %w", classify(err))
				}
			}
			for _, ch := range children {
				if !strings.HasPrefix(ch, chunkPrefix) {
					return fmt.Errorf("cannot delete %q: it has nested keys (%s); delete them first", key, ch)
				}
				txn = append(txn, &zk.DeleteRequest{Path: p + "/" + ch, Version: -1})
				txnKeys = append(txnKeys, "")
			}
			txn = append(txn, &zk.DeleteRequest{Path: p, Version: int32(ver)})
			txnKeys = append(txnKeys, key)
			continue
		}
		if len(val)+1 > chunkSize {
			large = append(large, key)
			largeVer[key] = ver
			continue
		}
		if stat != nil && stat.NumChildren > 0 {
			collect = append(collect, p)
		}
		if ver == NoVersion {
			missing, err := l.missingParents(ctx, stored)
			if err != nil {
				return fmt.Errorf("cannot apply the batch: %w", err)
			}
			for _, mp := range missing {
				if !parents[mp] {
					parents[mp] = true
					txn = append(txn, &zk.CreateRequest{Path: mp, Acl: c.acl})
					txnKeys = append(txnKeys, "")
				}
			}
			txn = append(txn, &zk.CreateRequest{Path: p, Data: encodeInline(val), Acl: c.acl})
		} else {
			txn = append(txn, &zk.SetDataRequest{Path: p, Data: encodeInline(val), Version: int32(ver)})
		}
		txnKeys = append(txnKeys, key)
	}

	// One transaction when it fits; otherwise transactions of up to
	// maxTxn bytes, in key order.
	for len(txn) > 0 {
		n, sz := 0, 0
		for n < len(txn) && (n == 0 || sz+opSize(txn[n]) <= maxTxn) {
			sz += opSize(txn[n])
			n++
		}
		res, err := l.fenced(ctx, txn[:n]...)
		if err != nil {
			for _, k := range txnKeys[:n] {
				delete(kv.versions, k)
			}
			return fmt.Errorf("cannot apply the batch: %w", err)
		}
		for i, k := range txnKeys[:n] {
			if k == "" {
				continue
			}
			switch txn[i].(type) {
			case *zk.DeleteRequest:
				delete(kv.versions, k)
			case *zk.CreateRequest:
				kv.versions[k] = 0
			case *zk.SetDataRequest:
				kv.versions[k] = Version(res[i+1].Stat.Version)
			}
		}
		txn, txnKeys = txn[n:], txnKeys[n:]
	}
	for _, p := range collect {
		l.collectChunks(ctx, p, "")
	}
	for _, key := range large {
		stored, _ := EscapeKey(key)
		v, err := l.Put(ctx, stored, batch[key], largeVer[key])
		if err != nil {
			delete(kv.versions, key)
			return fmt.Errorf("cannot apply the batch: %w", err)
		}
		kv.versions[key] = v
	}
	return nil
}

// opSize estimates an op's share of a multi request.
func opSize(op any) int {
	switch o := op.(type) {
	case *zk.CreateRequest:
		return len(o.Path) + len(o.Data) + 64
	case *zk.SetDataRequest:
		return len(o.Path) + len(o.Data) + 64
	case *zk.DeleteRequest:
		return len(o.Path) + 64
	}
	return 64
}
