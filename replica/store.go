package replica

import (
	"bytes"
	"errors"
	"sync"

	"github.com/google/btree"
)

// Store is the replica's read-only view of durable state. The core never
// writes to it: it returns writes in Ready, and the caller applies them
// (all of one Ready atomically) before calling Advance.
type Store interface {
	// Get returns the value of key, or nil (and no error) if it is absent.
	Get(key []byte) ([]byte, error)
	// Scan calls fn for each key with the given prefix that is >= start
	// (start nil: from the beginning of the prefix), in key order, until fn
	// returns false. Slices passed to fn are valid only during the call.
	Scan(prefix, start []byte, fn func(key, value []byte) bool) error
}

// Write is one key to set, or to delete when Delete is true.
type Write struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// DurableStore is a Store that can persist a Ready's writes atomically.
type DurableStore interface {
	Store
	// Apply persists all writes or none of them. The store may keep the
	// slices it is given: the replica never reuses them.
	Apply(ws []Write) error
	Close() error
}

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("replica: store is closed")

// MemStore is an in-memory DurableStore, ordered like Badger. The simulator
// uses it as a site's disk: a crash keeps exactly what was applied.
type MemStore struct {
	mu     sync.RWMutex
	tree   *btree.BTreeG[kv]
	bytes  int64
	closed bool
}

type kv struct {
	k, v []byte
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore {
	less := func(a, b kv) bool { return bytes.Compare(a.k, b.k) < 0 }
	return &MemStore{tree: btree.NewWithFreeListG(32, less, btree.NewFreeListG[kv](4))}
}

func (m *MemStore) Get(key []byte) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	it, ok := m.tree.Get(kv{k: key})
	if !ok {
		return nil, nil
	}
	return it.v, nil
}

func (m *MemStore) Scan(prefix, start []byte, fn func(key, value []byte) bool) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	from := prefix
	if start != nil && bytes.Compare(start, prefix) > 0 {
		from = start
	}
	m.tree.AscendGreaterOrEqual(kv{k: from}, func(it kv) bool {
		if !bytes.HasPrefix(it.k, prefix) {
			return false
		}
		return fn(it.k, it.v)
	})
	return nil
}

func (m *MemStore) Apply(ws []Write) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for _, w := range ws {
		if w.Delete {
			if old, ok := m.tree.Delete(kv{k: w.Key}); ok {
				m.bytes -= int64(len(old.k) + len(old.v))
			}
			continue
		}
		k, v := w.Key, w.Value
		if old, ok := m.tree.ReplaceOrInsert(kv{k, v}); ok {
			m.bytes -= int64(len(old.k) + len(old.v))
		}
		m.bytes += int64(len(k) + len(v))
	}
	return nil
}

// Size returns the bytes of keys and values held.
func (m *MemStore) Size() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.bytes
}

// Len returns the number of keys held.
func (m *MemStore) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.tree.Len()
}

func (m *MemStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// Reopen returns a store sharing this one's contents, as a restarted
// process would find its disk; the old handle is closed.
func (m *MemStore) Reopen() *MemStore {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return &MemStore{tree: m.tree.Clone(), bytes: m.bytes}
}
