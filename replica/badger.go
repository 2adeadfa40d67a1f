package replica

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	badger "github.com/dgraph-io/badger/v4"
)

// BadgerStore is the durable store of a running node: one Ready is one
// Badger transaction, synced to disk before Apply returns, so a crash
// leaves the state of the last completed Ready.
type BadgerStore struct {
	db *badger.DB
}

// BadgerOptions tunes the store; zero values take the defaults.
type BadgerOptions struct {
	// InMemory keeps everything in RAM (tests of the Badger code path).
	// Default: false.
	InMemory bool
	// SyncWrites fsyncs every Apply. Turning it off trades the durability of
	// the last writes for speed. Default: true.
	NoSyncWrites bool
	// Logger receives Badger's own warnings and errors. Default: discarded.
	Logger *slog.Logger
}

// OpenBadger opens (creating if needed) a Badger store in dir.
func OpenBadger(dir string, o BadgerOptions) (*BadgerStore, error) {
	if !o.InMemory {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("replica: creating store directory: %w", err)
		}
	}
	opts := badger.DefaultOptions(dir).
		WithInMemory(o.InMemory).
		WithSyncWrites(!o.NoSyncWrites).
		WithNumVersionsToKeep(1).
		// A Ready must fit one transaction: Badger caps a transaction at
		// 15% of the memtable, so 128 MiB allows ~19 MiB per Ready.
		WithMemTableSize(128 << 20).
		// Small values stay in the LSM tree, where compaction reclaims
		// overwritten versions without value-log garbage collection.
		WithValueThreshold(64 << 10).
		WithNumCompactors(2).
		// One writer (the driver persisting Readies): nothing to detect.
		WithDetectConflicts(false).
		WithLogger(badgerLogger{o.Logger})
	if o.InMemory {
		opts = opts.WithDir("").WithValueDir("")
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("replica: opening store in %s: %w (is another meridian process using this data directory?)", dir, err)
	}
	return &BadgerStore{db: db}, nil
}

func (s *BadgerStore) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		out, err = it.ValueCopy(nil)
		return err
	})
	return out, err
}

func (s *BadgerStore) Scan(prefix, start []byte, fn func(key, value []byte) bool) error {
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		from := prefix
		if start != nil && string(start) > string(prefix) {
			from = start
		}
		for it.Seek(from); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			var cont bool
			err := item.Value(func(v []byte) error {
				cont = fn(item.Key(), v)
				return nil
			})
			if err != nil {
				return err
			}
			if !cont {
				return nil
			}
		}
		return nil
	})
}

// Apply persists the writes of one Ready in one transaction.
func (s *BadgerStore) Apply(ws []Write) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	for _, w := range ws {
		var err error
		if w.Delete {
			err = txn.Delete(w.Key)
		} else {
			err = txn.Set(w.Key, w.Value)
		}
		if errors.Is(err, badger.ErrTxnTooBig) {
			return fmt.Errorf("replica: one Ready holds more than a Badger transaction can (%d writes); call Ready after fewer edits or messages (the node cuts one at 1,500 changed documents): %w", len(ws), err)
		}
		if err != nil {
			return fmt.Errorf("replica: store write: %w", err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("replica: store commit: %w", err)
	}
	return nil
}

// Compact flattens the LSM tree and collects the value log, reclaiming the
// space of overwritten and deleted keys. Nodes run it periodically.
func (s *BadgerStore) Compact() error {
	if err := s.db.Flatten(2); err != nil {
		return err
	}
	for {
		if err := s.db.RunValueLogGC(0.5); err != nil {
			if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
				return nil
			}
			return err
		}
	}
}

// Size returns the bytes Badger holds on disk (LSM tree and value log).
func (s *BadgerStore) Size() int64 {
	lsm, vlog := s.db.Size()
	return lsm + vlog
}

// DirSize returns the bytes of all files in the store directory.
func DirSize(dir string) (int64, error) {
	var total int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			total += info.Size()
		}
		return nil
	})
	return total, err
}

func (s *BadgerStore) Close() error { return s.db.Close() }

// badgerLogger routes Badger's log lines to slog, dropping info and debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	if b.l != nil {
		b.l.Error("badger: " + fmt.Sprintf(f, a...))
	}
}
func (b badgerLogger) Warningf(f string, a ...any) {
	if b.l != nil {
		b.l.Warn("badger: " + fmt.Sprintf(f, a...))
	}
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}
