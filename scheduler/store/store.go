package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrUnavailable wraps failures to reach the store: the caller must
// not mistake them for "nothing stored" (that would mint a new framework ID).
var ErrUnavailable = errors.New("state store unavailable")

// Mem is a store in memory, for tests and for `tiltai up`'s throwaway
// runs. It survives a Scheduler being closed and a new one opened on it,
// which is how tests crash and restart a scheduler in-process.
type Mem struct {
	mu   sync.Mutex
	data map[string][]byte
	// Fail, when set, makes every call fail with it (tests: store down).
	Fail error
}

// NewMem returns an empty Mem.
func NewMem() *Mem { return &Mem{data: map[string][]byte{}} }

// Load returns every key under prefix ("" for all).
func (m *Mem) Load(_ context.Context, prefix string) (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, m.Fail)
	}
	out := map[string][]byte{}
	for k, v := range m.data {
		if strings.HasPrefix(k, prefix) {
			out[k] = append([]byte(nil), v...)
		}
	}
	return out, nil
}

// Apply writes a batch (a nil value deletes the key).
func (m *Mem) Apply(_ context.Context, batch map[string][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, m.Fail)
	}
	for k, v := range batch {
		if v == nil {
			delete(m.data, k)
		} else {
			m.data[k] = append([]byte(nil), v...)
		}
	}
	return nil
}

// Close releases the store.
func (m *Mem) Close() error { return nil }

// SetFail makes the store fail (or work again with nil).
func (m *Mem) SetFail(err error) {
	m.mu.Lock()
	m.Fail = err
	m.mu.Unlock()
}

// Bolt keeps the state in a bbolt file: each batch is one fsynced
// transaction, so a crash leaves either all of a batch or none of it.
type Bolt struct {
	db *bolt.DB
}

var boltBucket = []byte("tiltai")

// OpenBolt opens (creating) the state file. A second scheduler on the
// same file waits up to 5 s for the lock, then fails: two schedulers must
// never share a state file.
func OpenBolt(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the state directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("cannot open state file %s: another tiltai scheduler holds it", path)
		}
		return nil, fmt.Errorf("cannot open state file %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot initialise state file %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// Load returns every key under prefix ("" for all).
func (b *Bolt) Load(_ context.Context, prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(boltBucket).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
			out[string(k)] = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return out, nil
}

// Apply writes a batch (a nil value deletes the key).
func (b *Bolt) Apply(_ context.Context, batch map[string][]byte) error {
	keys := make([]string, 0, len(batch))
	for k := range batch {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(boltBucket)
		for _, k := range keys {
			var err error
			if v := batch[k]; v == nil {
				err = bk.Delete([]byte(k))
			} else {
				err = bk.Put([]byte(k), v)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: cannot write the state file: %w", ErrUnavailable, err)
	}
	return nil
}

// Close releases the store.
func (b *Bolt) Close() error { return b.db.Close() }
