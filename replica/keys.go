package replica

import (
	"encoding/binary"

	"meridian/crdt"
)

// Key layout. Names never contain NUL (crdt.ValidateName), so NUL separates
// the parts and prefixes never collide.
//
//	m\0<name>                       replica metadata (HLC, format version)
//	v\0<doctype>\0<site>            version vector entry (crdt.Seen)
//	d\0<doctype>\0<name>            document base: its digest (32 bytes), then its canonical CBOR
//	d\0<doctype>\0<name>\0<n:4>     delta n since the base: digest after it, then a patch of
//	                                the registers that changed (compacted into the base now and then)
//	b\0<doctype>\0<site>\0<first:8>\0<last:8>  batch header, kept while a write of it lives
//	g\0<doctype>\0<bucket:1>        bucket digest of the doctype
//	p\0<site>                       a known consumer (a peer seen once)
//	t\0<doctype>\0<name>            document holding removed-row tombstones
const (
	pMeta    = 'm'
	pVV      = 'v'
	pDoc     = 'd'
	pBatch   = 'b'
	pBucket  = 'g'
	pPeer    = 'p'
	pTomb    = 't'
	sepByte  = 0
	metaHLC  = "hlc"
	metaVers = "format"
)

// formatVersion is written on first use; a store of another version is refused.
const formatVersion = 1

func key(prefix byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += 1 + len(p)
	}
	b := make([]byte, 0, n+9)
	b = append(b, prefix)
	for _, p := range parts {
		b = append(b, sepByte)
		b = append(b, p...)
	}
	return b
}

func withSeq(b []byte, seq uint64) []byte {
	b = append(b, sepByte)
	return binary.BigEndian.AppendUint64(b, seq)
}

func metaKey(name string) []byte               { return key(pMeta, name) }
func vvPrefix() []byte                         { return []byte{pVV, sepByte} }
func vvKey(dt string, site crdt.SiteID) []byte { return key(pVV, dt, string(site)) }
func docKey(dt, name string) []byte            { return key(pDoc, dt, name) }
func deltaKey(dt, name string, n int) []byte {
	return binary.BigEndian.AppendUint32(append(docKey(dt, name), sepByte), uint32(n))
}
func docPrefix(dt string) []byte { return append(key(pDoc, dt), sepByte) }
func batchKey(dt string, site crdt.SiteID, first, last uint64) []byte {
	return withSeq(withSeq(key(pBatch, dt, string(site)), first), last)
}
func batchPrefix() []byte                    { return []byte{pBatch, sepByte} }
func bucketKey(dt string, bucket int) []byte { return append(key(pBucket, dt), sepByte, byte(bucket)) }
func bucketPrefix(dt string) []byte          { return append(key(pBucket, dt), sepByte) }
func peerKey(s crdt.SiteID) []byte           { return key(pPeer, string(s)) }
func peerPrefix() []byte                     { return []byte{pPeer, sepByte} }
func tombKey(dt, name string) []byte         { return key(pTomb, dt, name) }
func tombPrefix() []byte                     { return []byte{pTomb, sepByte} }
