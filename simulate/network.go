package simulate

import (
	"math"
	"math/rand/v2"
)

// network decides, for every message, whether and when it arrives:
// latency per link, loss, duplication, reordering, bandwidth queues,
// partitions (symmetric or one-way) and clogged sites.
type network struct {
	sc   *Scenario
	rng  *rand.Rand
	n    int
	part partition
	// clogged[i]: messages to or from site i wait until this time.
	clogged []int64
	busy    map[[2]int]int64 // link → until when its bandwidth is in use
	links   map[[2]int]*linkParams
	def     linkParams
	drops   int64
}

type linkParams struct {
	lat  Latency
	loss float64
	bw   int64
}

// partition says which directed links are cut.
type partition struct {
	mode   string // "", "groups", "ring"
	group  []int  // group of each site (mode groups)
	oneWay bool   // only messages from group 0 to the others are cut
}

func newNetwork(sc *Scenario, rng *rand.Rand) *network {
	n := &network{sc: sc, rng: rng, n: sc.Nodes, clogged: make([]int64, sc.Nodes), busy: map[[2]int]int64{}, links: map[[2]int]*linkParams{}}
	n.def = linkParams{lat: sc.Network.Latency, loss: sc.Network.Loss, bw: int64(sc.Network.Bandwidth)}
	for _, o := range sc.Network.Links {
		for a := 0; a < sc.Nodes; a++ {
			if o.From != -1 && o.From != a {
				continue
			}
			for b := 0; b < sc.Nodes; b++ {
				if a == b || (o.To != -1 && o.To != b) {
					continue
				}
				p := n.link(a, b)
				cp := *p
				if o.Latency != nil {
					cp.lat = *o.Latency
				}
				if o.Loss != nil {
					cp.loss = *o.Loss
				}
				if o.Bandwidth != nil {
					cp.bw = int64(*o.Bandwidth)
				}
				n.links[[2]int{a, b}] = &cp
			}
		}
	}
	return n
}

func (n *network) link(a, b int) *linkParams {
	if p := n.links[[2]int{a, b}]; p != nil {
		return p
	}
	return &n.def
}

// blocked reports whether the partition cuts messages from a to b.
func (n *network) blocked(a, b int) bool {
	switch n.part.mode {
	case "groups":
		ga, gb := n.part.group[a], n.part.group[b]
		if ga == gb {
			return false
		}
		return !n.part.oneWay || ga == 0
	case "ring":
		d := (b - a + n.n) % n.n
		return d != 1 && d != n.n-1
	}
	return false
}

// connected reports whether a and b can talk both ways (a transport
// connection would stay up).
func (n *network) connected(a, b int) bool { return !n.blocked(a, b) && !n.blocked(b, a) }

// sample draws a latency in µs.
func (n *network) sample(l *Latency) int64 {
	var v float64
	switch l.Dist {
	case "constant":
		v = float64(ms(l.Median))
	case "uniform":
		v = float64(ms(l.Min)) + n.rng.Float64()*float64(ms(l.Max)-ms(l.Min))
	default: // lognormal around the median
		v = float64(ms(l.Median)) * math.Exp(l.Sigma*n.rng.NormFloat64())
	}
	if min := float64(ms(l.Min)); v < min {
		v = min
	}
	if l.Max > 0 && v > float64(ms(l.Max)) {
		v = float64(ms(l.Max))
	}
	if v < 1 {
		v = 1
	}
	return int64(v)
}

// transmit returns the delivery times of a message sent now (none if it is
// lost, two if duplicated).
func (n *network) transmit(from, to, size int, now int64) []int64 {
	if n.blocked(from, to) {
		n.drops++
		return nil
	}
	p := n.link(from, to)
	if p.loss > 0 && n.rng.Float64() < p.loss {
		n.drops++
		return nil
	}
	start := now
	if p.bw > 0 {
		k := [2]int{from, to}
		if b := n.busy[k]; b > start {
			start = b
		}
		tx := int64(size) * 1_000_000 / p.bw
		n.busy[k] = start + tx
		start += tx
	}
	at := start + n.sample(&p.lat)
	if n.sc.Network.Reorder > 0 && n.rng.Float64() < n.sc.Network.Reorder {
		at += n.sample(&p.lat) // held back: later messages overtake it
	}
	if c := max(n.clogged[from], n.clogged[to]); c > at {
		at = c + n.sample(&p.lat)
	}
	out := []int64{at}
	if n.sc.Network.Duplicate > 0 && n.rng.Float64() < n.sc.Network.Duplicate {
		out = append(out, at+n.sample(&p.lat))
	}
	return out
}

// setPartition installs a partition; it replaces any partition in force.
func (n *network) setPartition(p partition) { n.part = p }

func (n *network) healAll() {
	n.part = partition{}
	for i := range n.clogged {
		n.clogged[i] = 0
	}
}
