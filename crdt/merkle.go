package crdt

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
)

// A batch's writes are the leaves of a Merkle tree shaped as in RFC 6962
// (a left subtree of the largest power of two below n, then the rest), with
// domain-separated hashes: a leaf node is SHA-256(0x00 ‖ leaf), an inner
// node SHA-256(0x01 ‖ left ‖ right). The origin signs the root. A replica
// serving some of the writes later sends them with a multiproof — the
// hashes of the subtrees holding none of them — so the bytes of a catch-up
// grow with what is sent, not with the batches it came from.

// Node is the hash of the subtree over leaves [Lo, Hi).
type Node struct {
	Lo, Hi uint32
	Hash   [32]byte
}

// Tree is what a replica keeps of a batch's tree: enough subtree hashes to
// compute its root — every leaf for a batch sealed or received whole, the
// carried leaves and the proof for a batch received in part.
type Tree struct {
	Leaves uint32
	Nodes  []Node // sorted by (Lo, Hi)
}

// Proof shows that some writes belong to a batch without the others.
type Proof struct {
	Leaves  uint32     // writes in the whole batch
	Indices []uint32   // position of each carried write, increasing
	Hashes  [][32]byte // subtrees without carried writes, left to right
}

func leafNode(leaf [32]byte) [32]byte {
	var b [33]byte
	copy(b[1:], leaf[:])
	return sha256.Sum256(b[:])
}

func innerNode(l, r [32]byte) [32]byte {
	var b [65]byte
	b[0] = 1
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// split returns where the RFC 6962 tree over [lo, hi) divides.
func split(lo, hi uint32) uint32 {
	k := uint32(1)
	for k*2 < hi-lo {
		k *= 2
	}
	return lo + k
}

// fullRoot is the root of a tree whose nodes are its leaves, all known, in
// order: computed straight down, without looking nodes up. With par, the
// (up to eight) subtrees three levels down are hashed at once, then the
// top of the tree from their hashes (see Batch.SealWith).
func fullRoot(nodes []Node, par func(n int, f func(i int))) [32]byte {
	var direct func(lo, hi uint32) [32]byte
	direct = func(lo, hi uint32) [32]byte {
		if hi-lo == 1 {
			return nodes[lo].Hash
		}
		m := split(lo, hi)
		return innerNode(direct(lo, m), direct(m, hi))
	}
	n := uint32(len(nodes))
	if par == nil || n < 1024 {
		return direct(0, n)
	}
	const depth = 3
	var parts [][2]uint32 // the subtrees at depth, left to right
	var cut func(lo, hi uint32, d int)
	cut = func(lo, hi uint32, d int) {
		if d == 0 || hi-lo == 1 {
			parts = append(parts, [2]uint32{lo, hi})
			return
		}
		m := split(lo, hi)
		cut(lo, m, d-1)
		cut(m, hi, d-1)
	}
	cut(0, n, depth)
	hashes := make([][32]byte, len(parts))
	par(len(parts), func(i int) { hashes[i] = direct(parts[i][0], parts[i][1]) })
	next := 0
	var top func(lo, hi uint32, d int) [32]byte
	top = func(lo, hi uint32, d int) [32]byte {
		if d == 0 || hi-lo == 1 {
			next++
			return hashes[next-1]
		}
		m := split(lo, hi)
		return innerNode(top(lo, m, d-1), top(m, hi, d-1))
	}
	return top(0, n, depth)
}

func (t *Tree) find(lo, hi uint32) (int, bool) {
	i := sort.Search(len(t.Nodes), func(i int) bool {
		n := t.Nodes[i]
		return n.Lo > lo || (n.Lo == lo && n.Hi >= hi)
	})
	return i, i < len(t.Nodes) && t.Nodes[i].Lo == lo && t.Nodes[i].Hi == hi
}

// hash computes the hash of the subtree [lo, hi) from the known nodes.
func (t *Tree) hash(lo, hi uint32) ([32]byte, bool) {
	if i, ok := t.find(lo, hi); ok {
		return t.Nodes[i].Hash, true
	}
	if hi-lo < 2 {
		return [32]byte{}, false
	}
	m := split(lo, hi)
	l, ok := t.hash(lo, m)
	if !ok {
		return [32]byte{}, false
	}
	r, ok := t.hash(m, hi)
	if !ok {
		return [32]byte{}, false
	}
	return innerNode(l, r), true
}

// Root returns the tree's root hash.
func (t *Tree) Root() ([32]byte, error) {
	if t.Leaves == 0 {
		return [32]byte{}, errors.New("empty tree")
	}
	h, ok := t.hash(0, t.Leaves)
	if !ok {
		return [32]byte{}, errors.New("tree does not determine its root")
	}
	return h, nil
}

// indexOf returns the position of a leaf the tree knows.
func (t *Tree) indexOf(leaf [32]byte) (uint32, bool) {
	want := leafNode(leaf)
	for _, n := range t.Nodes {
		if n.Hi == n.Lo+1 && n.Hash == want {
			return n.Lo, true
		}
	}
	return 0, false
}

// Prove builds the multiproof of the leaves at indices (increasing).
func (t *Tree) Prove(indices []uint32) ([][32]byte, error) {
	var out [][32]byte
	var walk func(lo, hi uint32, idx []uint32) error
	walk = func(lo, hi uint32, idx []uint32) error {
		if len(idx) == 0 {
			h, ok := t.hash(lo, hi)
			if !ok {
				return fmt.Errorf("subtree [%d, %d) unknown", lo, hi)
			}
			out = append(out, h)
			return nil
		}
		if hi-lo == 1 {
			return nil
		}
		m := split(lo, hi)
		k := sort.Search(len(idx), func(i int) bool { return idx[i] >= m })
		if err := walk(lo, m, idx[:k]); err != nil {
			return err
		}
		return walk(m, hi, idx[k:])
	}
	if err := walk(0, t.Leaves, indices); err != nil {
		return nil, err
	}
	return out, nil
}

// verifyProof recomputes the root from carried leaves and a proof, and
// returns the tree of what it learnt (to keep and re-prove from later).
func verifyProof(p *Proof, leaves [][32]byte) ([32]byte, Tree, error) {
	t := Tree{Leaves: p.Leaves}
	if p.Leaves == 0 || len(p.Indices) != len(leaves) || len(p.Indices) > int(p.Leaves) {
		return [32]byte{}, t, errors.New("proof does not match the carried writes")
	}
	for i, ix := range p.Indices {
		if ix >= p.Leaves || (i > 0 && p.Indices[i-1] >= ix) {
			return [32]byte{}, t, errors.New("proof indices out of range or not increasing")
		}
	}
	next := 0
	var walk func(lo, hi uint32, idx []uint32, lv [][32]byte) ([32]byte, error)
	walk = func(lo, hi uint32, idx []uint32, lv [][32]byte) ([32]byte, error) {
		if len(idx) == 0 {
			if next >= len(p.Hashes) {
				return [32]byte{}, errors.New("proof is short of hashes")
			}
			h := p.Hashes[next]
			next++
			t.Nodes = append(t.Nodes, Node{Lo: lo, Hi: hi, Hash: h})
			return h, nil
		}
		if hi-lo == 1 {
			h := leafNode(lv[0])
			t.Nodes = append(t.Nodes, Node{Lo: lo, Hi: hi, Hash: h})
			return h, nil
		}
		m := split(lo, hi)
		k := sort.Search(len(idx), func(i int) bool { return idx[i] >= m })
		l, err := walk(lo, m, idx[:k], lv[:k])
		if err != nil {
			return l, err
		}
		r, err := walk(m, hi, idx[k:], lv[k:])
		if err != nil {
			return r, err
		}
		return innerNode(l, r), nil
	}
	root, err := walk(0, p.Leaves, p.Indices, leaves)
	if err != nil {
		return root, t, err
	}
	if next != len(p.Hashes) {
		return root, t, errors.New("proof has extra hashes")
	}
	sort.Slice(t.Nodes, func(i, j int) bool {
		if t.Nodes[i].Lo != t.Nodes[j].Lo {
			return t.Nodes[i].Lo < t.Nodes[j].Lo
		}
		return t.Nodes[i].Hi < t.Nodes[j].Hi
	})
	return root, t, nil
}

// Merge adds what o knows of the same batch's tree to t: a batch received
// in several parts must be able to prove every part it holds. It reports
// whether t learnt anything. Trees of another size or root (an origin that
// signed two different batches for one range) are not merged. Nodes of a
// tree are subtrees, so any two are nested or disjoint; where both trees
// know a region, the finer nodes are kept, which keeps the leaves.
func (t *Tree) Merge(o Tree) bool {
	if o.Leaves != t.Leaves || len(o.Nodes) == 0 {
		return false
	}
	a, errA := t.Root()
	b, errB := o.Root()
	if errA != nil || errB != nil || a != b {
		return false
	}
	all := make([]Node, 0, len(t.Nodes)+len(o.Nodes))
	all = append(all, t.Nodes...)
	all = append(all, o.Nodes...)
	sort.Slice(all, func(i, j int) bool {
		if all[i].Lo != all[j].Lo {
			return all[i].Lo < all[j].Lo
		}
		return all[i].Hi > all[j].Hi // containers before what they contain
	})
	out := make([]Node, 0, len(all))
	for i, n := range all {
		if i+1 < len(all) && all[i+1].Lo < n.Hi {
			continue // a finer node inside n is known (or n's duplicate)
		}
		out = append(out, n)
	}
	if len(out) == len(t.Nodes) {
		return false // nodes never get coarser, so the same count is the same set
	}
	t.Nodes = out
	return true
}
