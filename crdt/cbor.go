package crdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// A minimal canonical CBOR writer and strict reader for the hot paths
// (documents, batches, leaf hashes), which fxamacker/cbor's reflection made
// the bottleneck of durable writes. They produce and accept exactly the
// Core Deterministic encoding (RFC 8949 §4.2.1) of the same structures:
// shortest-form heads, definite lengths. Anything else is rejected, so
// decode followed by encode always reproduces the input bytes.

const (
	majUint   = 0
	majNeg    = 1
	majBytes  = 2
	majText   = 3
	majArray  = 4
	cborNull  = 0xf6
	cborUndef = 0xf7
)

type cborWriter struct{ b []byte }

func (w *cborWriter) head(major byte, n uint64) {
	m := major << 5
	switch {
	case n < 24:
		w.b = append(w.b, m|byte(n))
	case n <= math.MaxUint8:
		w.b = append(w.b, m|24, byte(n))
	case n <= math.MaxUint16:
		w.b = append(w.b, m|25)
		w.b = binary.BigEndian.AppendUint16(w.b, uint16(n))
	case n <= math.MaxUint32:
		w.b = append(w.b, m|26)
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(n))
	default:
		w.b = append(w.b, m|27)
		w.b = binary.BigEndian.AppendUint64(w.b, n)
	}
}

func (w *cborWriter) array(n int)    { w.head(majArray, uint64(n)) }
func (w *cborWriter) uint(n uint64)  { w.head(majUint, n) }
func (w *cborWriter) text(s string)  { w.head(majText, uint64(len(s))); w.b = append(w.b, s...) }
func (w *cborWriter) bytes(p []byte) { w.head(majBytes, uint64(len(p))); w.b = append(w.b, p...) }
func (w *cborWriter) int(i int64) {
	if i >= 0 {
		w.head(majUint, uint64(i))
	} else {
		w.head(majNeg, uint64(-(i + 1)))
	}
}

func (w *cborWriter) value(v Value) {
	switch v.Kind {
	case KindNull:
		w.b = append(w.b, cborNull)
	case KindRemoved:
		w.b = append(w.b, cborUndef)
	case KindStr:
		w.text(v.Str)
	case KindInt:
		w.int(v.Int)
	case KindDec:
		w.array(1)
		w.text(v.Str)
	}
}

// cborReader decodes strictly; the first error sticks and every later read
// returns zero values, so callers check r.err once at the end.
type cborReader struct {
	b   []byte
	err error
}

var errCBOR = errors.New("not canonical CBOR")

func (r *cborReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *cborReader) head() (major byte, n uint64) {
	if r.err != nil {
		return 0, 0
	}
	if len(r.b) == 0 {
		r.fail("unexpected end of input")
		return 0, 0
	}
	c := r.b[0]
	major, info := c>>5, c&0x1f
	r.b = r.b[1:]
	need := 0
	switch {
	case info < 24:
		return major, uint64(info)
	case info == 24:
		need = 1
	case info == 25:
		need = 2
	case info == 26:
		need = 4
	case info == 27:
		need = 8
	default:
		r.fail("%w: indefinite length or reserved head 0x%02x", errCBOR, c)
		return 0, 0
	}
	if len(r.b) < need {
		r.fail("unexpected end of input")
		return 0, 0
	}
	switch need {
	case 1:
		n = uint64(r.b[0])
		if n < 24 {
			r.fail("%w: non-shortest integer", errCBOR)
		}
	case 2:
		n = uint64(binary.BigEndian.Uint16(r.b))
		if n <= math.MaxUint8 {
			r.fail("%w: non-shortest integer", errCBOR)
		}
	case 4:
		n = uint64(binary.BigEndian.Uint32(r.b))
		if n <= math.MaxUint16 {
			r.fail("%w: non-shortest integer", errCBOR)
		}
	case 8:
		n = binary.BigEndian.Uint64(r.b)
		if n <= math.MaxUint32 {
			r.fail("%w: non-shortest integer", errCBOR)
		}
	}
	r.b = r.b[need:]
	return major, n
}

// array reads an array head of at most max elements.
func (r *cborReader) array(max int) int {
	m, n := r.head()
	if r.err != nil {
		return 0
	}
	if m != majArray {
		r.fail("expected an array, found major type %d", m)
		return 0
	}
	if n > uint64(max) || n > uint64(len(r.b)) {
		r.fail("array of %d elements is too long", n)
		return 0
	}
	return int(n)
}

// arrayN reads an array head that must have exactly n elements.
func (r *cborReader) arrayN(n int, what string) {
	if got := r.array(n); r.err == nil && got != n {
		r.fail("%s has %d elements, want %d", what, got, n)
	}
}

func (r *cborReader) uint() uint64 {
	m, n := r.head()
	if r.err == nil && m != majUint {
		r.fail("expected an unsigned integer, found major type %d", m)
	}
	return n
}

func (r *cborReader) payload(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("unexpected end of input")
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *cborReader) text() string {
	m, n := r.head()
	if r.err == nil && m != majText {
		r.fail("expected text, found major type %d", m)
		return ""
	}
	p := r.payload(n)
	if r.err == nil && !utf8.Valid(p) {
		r.fail("text is not valid UTF-8")
	}
	return string(p)
}

func (r *cborReader) bytes() []byte {
	m, n := r.head()
	if r.err == nil && m != majBytes {
		r.fail("expected a byte string, found major type %d", m)
		return nil
	}
	return r.payload(n)
}

func (r *cborReader) value() Value {
	if r.err != nil {
		return Null
	}
	if len(r.b) == 0 {
		r.fail("unexpected end of input")
		return Null
	}
	switch r.b[0] {
	case cborNull:
		r.b = r.b[1:]
		return Null
	case cborUndef:
		r.b = r.b[1:]
		return Removed
	}
	m := r.b[0] >> 5
	switch m {
	case majUint:
		n := r.uint()
		if n > math.MaxInt64 {
			r.fail("integer %d overflows int64", n)
		}
		return Int(int64(n))
	case majNeg:
		_, n := r.head()
		if n > math.MaxInt64 {
			r.fail("integer overflows int64")
		}
		return Int(-1 - int64(n))
	case majText:
		return Str(r.text())
	case majArray:
		r.arrayN(1, "decimal")
		v := Value{Kind: KindDec, Str: r.text()}
		if r.err == nil {
			if err := v.Validate(); err != nil {
				r.fail("%v", err)
			}
		}
		return v
	}
	r.fail("unexpected CBOR major type %d for a value", m)
	return Null
}

func (r *cborReader) end(what string) {
	if r.err == nil && len(r.b) > 0 {
		r.fail("%d trailing bytes after the %s", len(r.b), what)
	}
}
