package node

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"meridian/crdt"
	"meridian/replica"
)

// BundleFormat names the offline bundle format.
const BundleFormat = "meridian/bundle/1"

// maxBundleBytes bounds what an import decompresses.
const maxBundleBytes = 4 << 30

// BundleHeader says who made a bundle, for whom, and what its maker held
// (the acknowledgement a reply carries back).
type BundleHeader struct {
	_       struct{} `cbor:",toarray"`
	Format  string
	Mesh    string
	From    string // the exporting site
	For     string // the site it was made for ("" for any site)
	Created int64  // Unix ms
	// Have is the exporter's version vector per doctype when it exported:
	// the importer records it as what the exporter holds.
	Have map[string][]crdt.Range
}

type bundleBody struct {
	_        struct{} `cbor:",toarray"`
	Header   BundleHeader
	Messages [][]byte // serve messages (§ protocol), each as EncodeMessage bytes
}

// bundleFile is [body, sig]: sig is the exporter's ed25519 signature of
// SHA-256(body).
type bundleFile struct {
	_    struct{} `cbor:",toarray"`
	Body []byte
	Sig  []byte
}

var bundleDec = mustDecMode(cbor.DecOptions{MaxArrayElements: 1 << 24, MaxMapPairs: 1 << 16, MaxNestedLevels: 8})
var bundleEnc, _ = cbor.CoreDetEncOptions().EncMode()

func vvRanges(vv crdt.VersionVector) []crdt.Range {
	var out []crdt.Range
	for _, site := range vv.Sites() {
		s := vv[site]
		if s.Max > 0 {
			out = append(out, crdt.Range{Site: site, Lo: 1, Hi: s.Max})
		}
		for _, iv := range s.Extra {
			out = append(out, crdt.Range{Site: site, Lo: iv.Lo, Hi: iv.Hi})
		}
	}
	return out
}

func rangesVV(rs []crdt.Range) crdt.VersionVector {
	vv := crdt.VersionVector{}
	for _, r := range rs {
		if r.Lo >= 1 && r.Lo <= r.Hi {
			vv.Add(r.Site, r.Lo, r.Hi)
		}
	}
	return vv
}

// bundleAcks are, per site, the version vectors it acknowledged in the
// bundles it sent here: what an export for it may leave out.
type bundleAcks struct {
	mu   sync.Mutex
	path string
}

func (b *bundleAcks) load() (map[string]map[string][]crdt.Range, error) {
	out := map[string]map[string][]crdt.Range{}
	data, err := os.ReadFile(b.path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("node: %s: %w (move it away to forget what sites acknowledged)", b.path, err)
	}
	return out, nil
}

func (b *bundleAcks) get(site string) (map[string]crdt.VersionVector, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	all, err := b.load()
	if err != nil {
		return nil, err
	}
	out := map[string]crdt.VersionVector{}
	for dt, rs := range all[site] {
		out[dt] = rangesVV(rs)
	}
	return out, nil
}

func (b *bundleAcks) record(site string, have map[string][]crdt.Range) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	all, err := b.load()
	if err != nil {
		return err
	}
	cur := all[site]
	if cur == nil {
		cur = map[string][]crdt.Range{}
	}
	for dt, rs := range have { // join: acknowledgements only grow
		vv := rangesVV(cur[dt])
		for _, r := range rs {
			if r.Lo >= 1 && r.Lo <= r.Hi {
				vv.Add(r.Site, r.Lo, r.Hi)
			}
		}
		cur[dt] = vvRanges(vv)
	}
	all[site] = cur
	data, err := json.Marshal(all)
	if err != nil {
		return err
	}
	return writeFileAtomic(b.path, data)
}

// ExportBundle writes a signed, compressed bundle of everything the target
// lacks: with forSite "" everything; else what the target has not
// acknowledged (since, when given, overrides the acknowledgements: the
// header of a bundle the target made). progress is told the documents'
// messages as they are gathered.
func (n *Node) ExportBundle(ctx context.Context, w io.Writer, forSite string, since *BundleHeader, progress func(done, total int)) (int, error) {
	target := map[string]crdt.VersionVector{}
	if forSite != "" {
		var err error
		if target, err = n.acks.get(forSite); err != nil {
			return 0, err
		}
		if since != nil {
			for dt, rs := range since.Have {
				vv := target[dt]
				if vv == nil {
					vv = crdt.VersionVector{}
				}
				for _, r := range rs {
					if r.Lo >= 1 && r.Lo <= r.Hi {
						vv.Add(r.Site, r.Lo, r.Hi)
					}
				}
				target[dt] = vv
			}
		}
	}
	body := bundleBody{Header: BundleHeader{Format: BundleFormat, From: string(n.site), For: forSite, Created: time.Now().UnixMilli(), Have: map[string][]crdt.Range{}}}
	if n.auth != nil {
		body.Header.Mesh = n.auth.mesh
	}
	var doctypes []string
	if err := n.do(ctx, func(r *replica.Replica) error {
		doctypes = r.Doctypes()
		return nil
	}); err != nil {
		return 0, err
	}
	sort.Strings(doctypes)
	count := 0
	for i, dt := range doctypes {
		if forSite != "" && n.auth != nil && !n.auth.canRead(crdt.SiteID(forSite), dt) {
			continue // the target may not read it
		}
		var msgs []replica.Message
		if err := n.do(ctx, func(r *replica.Replica) error {
			mine := r.DurableVersionVector(dt)
			body.Header.Have[dt] = vvRanges(mine)
			theirs := target[dt]
			if theirs == nil {
				theirs = crdt.VersionVector{}
			}
			var err error
			msgs, err = r.ServeRanges(crdt.SiteID(forSite), dt, theirs.Missing(mine))
			return err
		}); err != nil {
			return 0, err
		}
		for j := range msgs {
			raw, err := replica.EncodeMessage(&msgs[j])
			if err != nil {
				return 0, err
			}
			body.Messages = append(body.Messages, raw)
			for _, b := range msgs[j].Batches {
				count += len(b.Docs)
			}
		}
		if progress != nil {
			progress(i+1, len(doctypes))
		}
	}
	raw, err := bundleEnc.Marshal(body)
	if err != nil {
		return 0, err
	}
	sum := sha256.Sum256(raw)
	file, err := bundleEnc.Marshal(bundleFile{Body: raw, Sig: ed25519.Sign(n.key, sum[:])})
	if err != nil {
		return 0, err
	}
	zw := gzip.NewWriter(w)
	if _, err := zw.Write(file); err != nil {
		return 0, err
	}
	return count, zw.Close()
}

// ReadBundle decompresses, decodes and verifies a bundle: its signature by
// the site that made it, its mesh, and every message in it. Nothing is
// applied here; a bundle that fails any check is refused whole.
func ReadBundle(r io.Reader, mesh string) (*BundleHeader, []*replica.Message, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, fmt.Errorf("not a Meridian bundle (not gzip-compressed): %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, maxBundleBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("the bundle is truncated or corrupt: %w", err)
	}
	if len(data) > maxBundleBytes {
		return nil, nil, fmt.Errorf("the bundle decompresses to more than %d bytes", maxBundleBytes)
	}
	var f bundleFile
	if err := bundleDec.Unmarshal(data, &f); err != nil {
		return nil, nil, fmt.Errorf("the bundle is malformed: %w", err)
	}
	var body bundleBody
	if err := bundleDec.Unmarshal(f.Body, &body); err != nil {
		return nil, nil, fmt.Errorf("the bundle's content is malformed: %w", err)
	}
	h := &body.Header
	if h.Format != BundleFormat {
		return nil, nil, fmt.Errorf("bundle format %q; this node reads %q", h.Format, BundleFormat)
	}
	pub, err := crdt.PeerIDPublicKey(h.From)
	if err != nil {
		return nil, nil, fmt.Errorf("the bundle's maker %q is not a site ID: %w", h.From, err)
	}
	sum := sha256.Sum256(f.Body)
	if !ed25519.Verify(pub, sum[:], f.Sig) {
		return nil, nil, fmt.Errorf("the bundle's signature by %s does not verify: it was altered after it was made", h.From)
	}
	if mesh != "" && h.Mesh != mesh {
		return nil, nil, fmt.Errorf("the bundle belongs to mesh %q, not %q", h.Mesh, mesh)
	}
	msgs := make([]*replica.Message, 0, len(body.Messages))
	for i, raw := range body.Messages {
		m, err := replica.DecodeMessage(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("message %d of the bundle: %w", i+1, err)
		}
		if m.Type != replica.MsgServe {
			return nil, nil, fmt.Errorf("message %d of the bundle is a %s, not a serve", i+1, m.Type)
		}
		msgs = append(msgs, m)
	}
	return h, msgs, nil
}

// ImportBundle applies a verified bundle: its serves are stepped as if its
// maker had sent them (batch signatures and the authority's rules apply as
// on the network), then everything is made durable and the maker's
// acknowledgement recorded. Importing twice, or in any order, is harmless.
func (n *Node) ImportBundle(ctx context.Context, h *BundleHeader, msgs []*replica.Message, progress func(done, total int)) (ImportStats, error) {
	var st ImportStats
	if h.From == string(n.site) {
		return st, errors.New("this bundle was made by this site")
	}
	for i, m := range msgs {
		backlog := 0
		if err := n.do(ctx, func(r *replica.Replica) error {
			m.From = crdt.SiteID(h.From)
			if err := r.Step(*m); err != nil {
				st.Refused++
				n.log.Warn("bundle: a message was refused", "from", shortID(h.From), "doctype", m.Doctype, "err", err)
			}
			for _, b := range m.Batches {
				st.Documents += len(b.Docs)
			}
			backlog = r.Backlog()
			return nil
		}); err != nil {
			return st, err
		}
		if backlog > maxBacklog { // one Ready must fit in one store transaction
			if err := n.drained(ctx); err != nil {
				return st, err
			}
		}
		if progress != nil && (i%16 == 15 || i == len(msgs)-1) {
			progress(i+1, len(msgs))
		}
	}
	if err := n.durable(ctx); err != nil {
		return st, err
	}
	st.Messages = len(msgs)
	return st, n.acks.record(h.From, h.Have)
}

// ImportStats says what an import did.
type ImportStats struct {
	Messages  int `json:"messages"`
	Documents int `json:"documents"`
	Refused   int `json:"refused"`
}

func newBundleAcks(dir string) *bundleAcks {
	return &bundleAcks{path: filepath.Join(dir, "bundle-acks.json")}
}

// bundleBytes is a helper for tests and the API: export into memory.
func (n *Node) bundleBytes(ctx context.Context, forSite string, since *BundleHeader) ([]byte, int, error) {
	var buf bytes.Buffer
	count, err := n.ExportBundle(ctx, &buf, forSite, since, nil)
	return buf.Bytes(), count, err
}
