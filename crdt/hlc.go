package crdt

import "fmt"

// HLC is a hybrid logical clock timestamp: the high 48 bits are physical
// milliseconds since the Unix epoch, the low 16 bits a logical counter that
// orders events within one millisecond. Timestamps compare as integers;
// ties between sites are broken by site ID where an order is needed.
type HLC uint64

const logicalBits = 16

// MakeHLC builds a timestamp from its parts.
func MakeHLC(physicalMs int64, logical uint16) HLC {
	return HLC(uint64(physicalMs)<<logicalBits | uint64(logical))
}

// Physical returns the physical part in Unix milliseconds.
func (h HLC) Physical() int64 { return int64(uint64(h) >> logicalBits) }

// Logical returns the logical counter.
func (h HLC) Logical() uint16 { return uint16(h) }

func (h HLC) String() string { return fmt.Sprintf("%d.%d", h.Physical(), h.Logical()) }

// Clock issues HLC timestamps. It never reads the wall clock: the caller
// passes the physical time in, which is what lets the simulator drive it.
type Clock struct {
	last HLC
}

// NewClock starts a clock after the given timestamp (zero for a fresh site).
func NewClock(last HLC) *Clock { return &Clock{last: last} }

// Last returns the greatest timestamp issued or observed.
func (c *Clock) Last() HLC { return c.last }

// Now returns a timestamp for a local event at physical time nowMs. It is
// strictly greater than every timestamp issued or observed before.
func (c *Clock) Now(nowMs int64) HLC {
	if nowMs > c.last.Physical() {
		c.last = MakeHLC(nowMs, 0)
		return c.last
	}
	c.last = c.bump(c.last)
	return c.last
}

// Observe folds a remote timestamp into the clock so that later local
// events are ordered after it. Callers must reject timestamps too far
// ahead of nowMs before observing them (see replica's max clock skew).
func (c *Clock) Observe(remote HLC, nowMs int64) {
	if remote > c.last {
		c.last = remote
	}
	if nowMs > c.last.Physical() {
		c.last = MakeHLC(nowMs, 0)
	}
}

// bump advances the logical part, carrying into the physical part when the
// counter overflows (65,536 events in one millisecond).
func (c *Clock) bump(h HLC) HLC {
	if h.Logical() == 0xffff {
		return MakeHLC(h.Physical()+1, 0)
	}
	return h + 1
}
