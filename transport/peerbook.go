package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// PeerBookFileName is the peer book inside the data directory.
const PeerBookFileName = "peers.json"

// protectTag marks peer-book peers in the connection manager, which never
// trims their connections.
const protectTag = "meridian-peerbook"

// maxLearntAddrs bounds the addresses remembered per learnt peer.
const maxLearntAddrs = 16

// PeerSource says how a peer entered the peer book.
type PeerSource string

const (
	// SourceOperator: added by the operator with AddPeer.
	SourceOperator PeerSource = "operator"
	// SourceLearnt: learnt from memberlist.
	SourceLearnt PeerSource = "learnt"
)

// PeerInfo describes one peer of the peer book.
type PeerInfo struct {
	ID        peer.ID
	Addrs     []ma.Multiaddr // without /p2p/; operator-given first, then learnt
	Connected bool
	LastSeen  time.Time // last time a connection opened or closed; zero if never
	Source    PeerSource
}

// AddPeer remembers the peer at maddr (/ip4/…/tcp/…/p2p/<id>) in the peer
// book, saves the book, and dials the peer in the background, retrying with
// back-off until it answers; once connected, the host joins the mesh through
// it. Adding a known peer adds the address. It returns the peer's ID.
func (h *Host) AddPeer(maddr string) (peer.ID, error) {
	info, err := ParsePeerAddr(maddr)
	if err != nil {
		return "", err
	}
	if info.ID == h.ID() {
		return "", fmt.Errorf("%w: %s is this node's own peer ID", ErrInvalidMultiaddr, info.ID)
	}
	h.book.addOperator(info.ID, info.Addrs)
	if err := h.book.flush(); err != nil {
		return info.ID, err
	}
	h.cm.Protect(info.ID, protectTag)
	h.dial.reset(info.ID)
	return info.ID, nil
}

// RemovePeer forgets id and saves the book. It does not disconnect: a peer
// that is still a mesh member will be learnt again; to shut a peer out, the
// node refuses it through Config.Gater.
func (h *Host) RemovePeer(id peer.ID) error {
	if !h.book.remove(id) {
		return fmt.Errorf("%w: %s", ErrUnknownPeer, id)
	}
	h.cm.Unprotect(id, protectTag)
	h.dial.forget(id)
	return h.book.flush()
}

// Peers lists the peer book, sorted by peer ID.
func (h *Host) Peers() []PeerInfo {
	entries := h.book.list()
	out := make([]PeerInfo, 0, len(entries))
	for _, e := range entries {
		out = append(out, PeerInfo{
			ID:        e.id,
			Addrs:     e.addrs(),
			Connected: h.connected(e.id),
			LastSeen:  e.lastSeen,
			Source:    e.source,
		})
	}
	return out
}

// learnPeer records a member's addresses in the peer book, and dials it if
// not connected.
func (h *Host) learnPeer(id peer.ID, addrs []ma.Multiaddr) error {
	if h.book.learn(id, addrs) {
		h.cm.Protect(id, protectTag)
	}
	if !h.connected(id) {
		h.dial.reset(id)
	}
	return h.book.flush()
}

type bookEntry struct {
	id       peer.ID
	source   PeerSource
	operator []ma.Multiaddr // given by the operator
	learnt   []ma.Multiaddr // advertised in memberlist
	lastSeen time.Time
}

func (e bookEntry) addrs() []ma.Multiaddr {
	out := slices.Clone(e.operator)
	for _, a := range e.learnt {
		if !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	return out
}

// peerBook is the set of peers the node dials on start, persisted in
// peers.json. Writes go to a temporary file renamed over the old one, so a
// crash leaves either the old or the new book.
type peerBook struct {
	path string

	mu      sync.Mutex
	entries map[peer.ID]*bookEntry
	dirty   bool

	saveMu sync.Mutex // serialises file writes
}

type peerBookFile struct {
	Version int          `json:"version"`
	Peers   []peerRecord `json:"peers"`
}

type peerRecord struct {
	ID          string     `json:"id"`
	Source      PeerSource `json:"source"`
	Addrs       []string   `json:"addrs,omitempty"`
	LearntAddrs []string   `json:"learnt_addrs,omitempty"`
	LastSeen    time.Time  `json:"last_seen,omitzero"`
}

const peerBookVersion = 1

func loadPeerBook(path string) (*peerBook, error) {
	b := &peerBook{path: path, entries: make(map[peer.ID]*bookEntry)}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("transport: read peer book: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s; fix the file, or move it away to start with an empty peer book",
			ErrMalformedPeerBook, path, fmt.Sprintf(format, args...))
	}
	var f peerBookFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, bad("%v", err)
	}
	if f.Version != peerBookVersion {
		return nil, bad("version %d, this Meridian reads version %d", f.Version, peerBookVersion)
	}
	for i, r := range f.Peers {
		id, err := peer.Decode(r.ID)
		if err != nil {
			return nil, bad("peer %d: id %q: %v", i, r.ID, err)
		}
		if r.Source != SourceOperator && r.Source != SourceLearnt {
			return nil, bad("peer %s: source %q is neither %q nor %q", r.ID, r.Source, SourceOperator, SourceLearnt)
		}
		e := &bookEntry{id: id, source: r.Source, lastSeen: r.LastSeen}
		if e.operator, err = parseAddrs(r.Addrs); err != nil {
			return nil, bad("peer %s: %v", r.ID, err)
		}
		if e.learnt, err = parseAddrs(r.LearntAddrs); err != nil {
			return nil, bad("peer %s: %v", r.ID, err)
		}
		b.entries[id] = e
	}
	return b, nil
}

func parseAddrs(ss []string) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("address %q: %v", s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func (b *peerBook) addOperator(id peer.ID, addrs []ma.Multiaddr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[id]
	if !ok {
		e = &bookEntry{id: id}
		b.entries[id] = e
	}
	e.source = SourceOperator
	for _, a := range addrs {
		if !slices.ContainsFunc(e.operator, a.Equal) {
			e.operator = append(e.operator, a)
		}
	}
	b.dirty = true
}

// learn records a member's current addresses; it reports whether the peer
// is new to the book.
func (b *peerBook) learn(id peer.ID, addrs []ma.Multiaddr) bool {
	if len(addrs) > maxLearntAddrs {
		addrs = addrs[:maxLearntAddrs]
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[id]
	if !ok {
		e = &bookEntry{id: id, source: SourceLearnt}
		b.entries[id] = e
	}
	if !slices.EqualFunc(e.learnt, addrs, ma.Multiaddr.Equal) {
		e.learnt = slices.Clone(addrs)
		b.dirty = true
	}
	return !ok
}

func (b *peerBook) remove(id peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.entries[id]; !ok {
		return false
	}
	delete(b.entries, id)
	b.dirty = true
	return true
}

// touch sets a known peer's last-seen time to now.
func (b *peerBook) touch(id peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.entries[id]; ok {
		e.lastSeen = time.Now().UTC().Truncate(time.Second)
		b.dirty = true
	}
}

func (b *peerBook) list() []bookEntry {
	b.mu.Lock()
	out := make([]bookEntry, 0, len(b.entries))
	for _, e := range b.entries {
		c := *e
		c.operator = slices.Clone(e.operator)
		c.learnt = slices.Clone(e.learnt)
		out = append(out, c)
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(x, y bookEntry) int { return strings.Compare(string(x.id), string(y.id)) })
	return out
}

// flush writes the book if it changed since the last write.
func (b *peerBook) flush() error {
	b.saveMu.Lock()
	defer b.saveMu.Unlock()
	b.mu.Lock()
	dirty := b.dirty
	b.dirty = false
	b.mu.Unlock()
	if !dirty {
		return nil
	}
	if err := b.write(); err != nil {
		b.mu.Lock()
		b.dirty = true
		b.mu.Unlock()
		return err
	}
	return nil
}

func (b *peerBook) write() error {
	f := peerBookFile{Version: peerBookVersion, Peers: []peerRecord{}}
	for _, e := range b.list() {
		r := peerRecord{ID: e.id.String(), Source: e.source, LastSeen: e.lastSeen}
		for _, a := range e.operator {
			r.Addrs = append(r.Addrs, a.String())
		}
		for _, a := range e.learnt {
			r.LearntAddrs = append(r.LearntAddrs, a.String())
		}
		f.Peers = append(f.Peers, r)
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("transport: encode peer book: %w", err)
	}
	data = append(data, '\n')
	if err := writeFileAtomic(b.path, data, 0o644); err != nil {
		return fmt.Errorf("transport: save peer book: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data: temporary file in the same
// directory, fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}
