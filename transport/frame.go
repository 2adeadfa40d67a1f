package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// FrameHeaderSize is the size of a frame's big-endian uint32 length prefix.
const FrameHeaderSize = 4

// readChunk bounds how much ReadFrame allocates ahead of the bytes actually
// received, so a peer announcing a 16 MiB frame and sending nothing costs
// 64 KiB, not 16 MiB.
const readChunk = 64 << 10

// WriteFrame writes payload as one frame: a 4-byte big-endian length followed
// by the payload. It fails with ErrFrameTooLarge, writing nothing, if payload
// is longer than maxSize bytes.
func WriteFrame(w io.Writer, payload []byte, maxSize int) error {
	if len(payload) > maxSize || uint64(len(payload)) > math.MaxUint32 {
		return fmt.Errorf("%w: payload has %d bytes, limit %d", ErrFrameTooLarge, len(payload), maxSize)
	}
	// One buffer for small frames keeps header and payload in one muxer frame;
	// large ones are written in two calls to avoid copying megabytes.
	var hdr [FrameHeaderSize]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	if len(payload) <= readChunk {
		buf := make([]byte, 0, FrameHeaderSize+len(payload))
		buf = append(append(buf, hdr[:]...), payload...)
		_, err := w.Write(buf)
		return err
	}
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// ReadFrame reads one frame written by WriteFrame and returns its payload.
//
// It returns io.EOF, unwrapped, when r ends cleanly before a frame starts;
// an error wrapping ErrFrameTruncated (and io.ErrUnexpectedEOF) when r ends
// inside a frame; and an error wrapping ErrFrameTooLarge, after reading only
// the header, when the frame announces more than maxSize bytes. Any other
// read error is returned as is.
func ReadFrame(r io.Reader, maxSize int) ([]byte, error) {
	var hdr [FrameHeaderSize]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: stream ended after %d of %d header bytes: %w",
				ErrFrameTruncated, n, FrameHeaderSize, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	size := uint64(binary.BigEndian.Uint32(hdr[:]))
	if maxSize < 0 || size > uint64(maxSize) {
		return nil, fmt.Errorf("%w: frame announces %d bytes, limit %d", ErrFrameTooLarge, size, maxSize)
	}
	n := int(size)
	buf := make([]byte, 0, min(n, readChunk))
	for len(buf) < n {
		step := min(n-len(buf), readChunk)
		buf = slices.Grow(buf, step)
		got, err := io.ReadFull(r, buf[len(buf):len(buf)+step])
		buf = buf[:len(buf)+got]
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: stream ended after %d of %d payload bytes: %w",
					ErrFrameTruncated, len(buf), n, io.ErrUnexpectedEOF)
			}
			return nil, err
		}
	}
	return buf, nil
}
