package simulate

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Scenario describes one simulated run. Files are TOML; every field has a
// default (Defaults), and docs/simulate.md documents the schema.
type Scenario struct {
	Name string `toml:"name"`
	// Nodes is the number of simulated sites.
	Nodes int `toml:"nodes"`
	// Duration is how long the workload runs (simulated time).
	Duration Duration `toml:"duration"`
	// Tick is how often each site's loop runs (Tick, then Ready).
	Tick Duration `toml:"tick"`
	// DiskLatency is how long persisting one Ready takes; a crash before it
	// completes loses the Ready (nothing of it was sent or acknowledged).
	DiskLatency Duration `toml:"disk_latency"`
	// SyncInterval is the replicas' anti-entropy period.
	SyncInterval Duration `toml:"sync_interval"`
	// SyncFanout is how many peers each anti-entropy round contacts.
	SyncFanout int `toml:"sync_fanout"`
	// Liveness bounds how long after the final heal every replica must
	// reach the same state.
	Liveness Duration `toml:"liveness"`
	// Sample is the period of the divergence time series and safety checks.
	Sample Duration `toml:"sample"`
	// Degree is how many peers each site keeps connections to (0: every
	// other site). Large meshes cap it, as libp2p's connection manager
	// does; edits then reach non-neighbours through anti-entropy.
	Degree int `toml:"degree"`
	// DocCache is how many decoded documents each site keeps (the rest are
	// decoded from its store when needed): memory against speed, for runs
	// with very many sites.
	DocCache int `toml:"doc_cache"`
	// ClockSkew is the largest offset of a site's clock from true time;
	// each site draws its own offset uniformly in [-ClockSkew, ClockSkew].
	ClockSkew Duration `toml:"clock_skew"`

	// Authority runs the mesh under an authority: signed records (versions,
	// grants) replicate as documents and every site enforces them; events
	// "grant" (a doctype for every site) and "deprecate" (a version) change
	// them during the run.
	Authority bool `toml:"authority"`

	Network  Network  `toml:"network"`
	Workload Workload `toml:"workload"`
	Events   []Event  `toml:"events"`
}

// Network is the default behaviour of every directed link.
type Network struct {
	// Latency of one message.
	Latency Latency `toml:"latency"`
	// Loss is the probability a message is dropped.
	Loss float64 `toml:"loss"`
	// Duplicate is the probability a message is delivered twice.
	Duplicate float64 `toml:"duplicate"`
	// Reorder is the probability a message is held back by up to Latency.Max
	// extra, so that later messages overtake it.
	Reorder float64 `toml:"reorder"`
	// Bandwidth caps each link in bytes per second (0: unlimited); messages
	// queue behind each other.
	Bandwidth Bytes `toml:"bandwidth"`
	// Links overrides the defaults for some directed links.
	Links []LinkOverride `toml:"links"`
}

// Latency is a delay distribution: constant, uniform or lognormal.
type Latency struct {
	Dist   string   `toml:"dist"`   // "constant", "uniform", "lognormal"
	Min    Duration `toml:"min"`    // uniform: lower bound; all: floor
	Max    Duration `toml:"max"`    // uniform: upper bound; all: ceiling
	Median Duration `toml:"median"` // constant: the value; lognormal: the median
	Sigma  float64  `toml:"sigma"`  // lognormal: shape (0.5: p99 ≈ 3.2× median)
}

// LinkOverride changes one or more directed links. From and To are site
// indexes; -1 means every site.
type LinkOverride struct {
	From      int      `toml:"from"`
	To        int      `toml:"to"`
	Latency   *Latency `toml:"latency"`
	Loss      *float64 `toml:"loss"`
	Bandwidth *Bytes   `toml:"bandwidth"`
}

// Workload generates Frappe-like master edits.
type Workload struct {
	// Items and Customers are how many documents of each the workload uses.
	Items     int `toml:"items"`
	Customers int `toml:"customers"`
	// Rows is the number of child rows (barcodes, uoms) an Item starts with.
	Rows int `toml:"rows"`
	// Rate is writes per second across the whole mesh.
	Rate float64 `toml:"rate"`
	// Writes caps the number of writes (0: as many as Rate × Duration).
	Writes int `toml:"writes"`
	// HotKeys documents receive HotFraction of the writes.
	HotKeys     int     `toml:"hot_keys"`
	HotFraction float64 `toml:"hot_fraction"`
	// Conflicts is the probability that a write is paired with a
	// concurrent write of the same field on another site.
	Conflicts float64 `toml:"conflicts"`
	// Deletes is the probability that a write deletes its document (the
	// next write to it re-creates it).
	Deletes float64 `toml:"deletes"`
	// RowEdits is the probability that a write adds, changes or removes a
	// child row rather than fields.
	RowEdits float64 `toml:"row_edits"`
}

// Event is a scheduled fault or repair.
type Event struct {
	At Duration `toml:"at"`
	// Kind: partition, heal, crash, restart, clog, unclog, flap, skew; with
	// authority: grant, deprecate.
	Kind string `toml:"kind"`
	// Mode of a partition: halves, isolate, random-groups, ring, groups.
	Mode string `toml:"mode"`
	// Groups for mode "groups": lists of site indexes.
	Groups [][]int `toml:"groups"`
	// Groups is the number of groups for mode "random-groups".
	NGroups int `toml:"n_groups"`
	// Asymmetric: only messages from the first side to the rest are cut.
	Asymmetric bool `toml:"asymmetric"`
	// Sites the event applies to (crash, restart, clog, skew, isolate);
	// empty: drawn at random (Count of them).
	Sites []int `toml:"sites"`
	Count int   `toml:"count"`
	// For heals after a while: the event is undone after For.
	For Duration `toml:"for"`
	// Flap: the partition goes up and down every Period until For ends.
	Period Duration `toml:"period"`
	// Skew: the new clock offset of the sites.
	Skew Duration `toml:"skew"`
	// Every repeats the event (a crash storm) until Until.
	Every Duration `toml:"every"`
	Until Duration `toml:"until"`
	// Doctype and Version of an authority event (grant, deprecate).
	Doctype string `toml:"doctype"`
	Version int    `toml:"version"`
}

// Duration is a time.Duration written as "250ms", "5s", "2m".
type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like 250ms, 5s or 2m", b)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Ms returns the duration in milliseconds.
func (d Duration) Ms() int64 { return time.Duration(d).Milliseconds() }

func (d Duration) String() string { return time.Duration(d).String() }

// Bytes is a size or rate written as "10MB", "512KB" or a plain number.
type Bytes int64

func (b *Bytes) UnmarshalText(t []byte) error {
	s := strings.TrimSuffix(strings.TrimSpace(string(t)), "/s")
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a size like 10MB or 512KB", t)
	}
	*b = Bytes(v * float64(mult))
	return nil
}

// Defaults returns the scenario every file starts from.
func Defaults() Scenario {
	return Scenario{
		Name: "default", Nodes: 5,
		Duration: Duration(60 * time.Second), Tick: Duration(10 * time.Millisecond),
		DiskLatency: Duration(2 * time.Millisecond), SyncInterval: Duration(time.Second), SyncFanout: 3,
		Liveness: Duration(60 * time.Second), Sample: Duration(time.Second),
		Network: Network{
			Latency: Latency{Dist: "lognormal", Median: Duration(20 * time.Millisecond), Sigma: 0.5,
				Min: Duration(time.Millisecond), Max: Duration(2 * time.Second)},
		},
		Workload: Workload{Items: 200, Customers: 50, Rows: 2, Rate: 20, HotKeys: 5, HotFraction: 0.1,
			Conflicts: 0.02, Deletes: 0.01, RowEdits: 0.2},
	}
}

// LoadScenario reads a scenario file over the defaults and validates it.
func LoadScenario(path string) (Scenario, error) {
	sc := Defaults()
	data, err := os.ReadFile(path)
	if err != nil {
		return sc, fmt.Errorf("simulate: reading scenario: %w", err)
	}
	md, err := toml.Decode(string(data), &sc)
	if err != nil {
		return sc, fmt.Errorf("simulate: scenario %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return sc, fmt.Errorf("simulate: scenario %s: unknown keys %s (see docs/simulate.md)", path, strings.Join(keys, ", "))
	}
	if err := sc.Validate(); err != nil {
		return sc, fmt.Errorf("simulate: scenario %s: %w", path, err)
	}
	return sc, nil
}

// Validate reports the first thing wrong with a scenario.
func (sc *Scenario) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if sc.Nodes < 1 {
		bad("nodes must be at least 1, not %d", sc.Nodes)
	}
	if sc.Duration < 0 || sc.Tick <= 0 || sc.Sample <= 0 || sc.SyncInterval <= 0 || sc.Liveness <= 0 {
		bad("duration must be ≥ 0 and tick, sample, sync_interval and liveness positive")
	}
	if sc.DocCache < 0 {
		bad("doc_cache must not be negative (0: the default, 256)")
	}
	if sc.Degree < 0 {
		bad("degree must not be negative")
	}
	if sc.DiskLatency < 0 || sc.ClockSkew < 0 {
		bad("disk_latency and clock_skew must not be negative")
	}
	if err := sc.Network.Latency.validate(); err != nil {
		bad("network.latency: %v", err)
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"network.loss", sc.Network.Loss}, {"network.duplicate", sc.Network.Duplicate}, {"network.reorder", sc.Network.Reorder},
		{"workload.hot_fraction", sc.Workload.HotFraction}, {"workload.conflicts", sc.Workload.Conflicts},
		{"workload.deletes", sc.Workload.Deletes}, {"workload.row_edits", sc.Workload.RowEdits}} {
		if p.v < 0 || p.v > 1 {
			bad("%s must be a probability in [0, 1], not %g", p.name, p.v)
		}
	}
	if sc.Network.Loss >= 1 {
		bad("network.loss must be below 1: nothing would ever arrive")
	}
	for i, l := range sc.Network.Links {
		if l.From < -1 || l.From >= sc.Nodes || l.To < -1 || l.To >= sc.Nodes {
			bad("network.links[%d]: from/to must be a site index below %d or -1", i, sc.Nodes)
		}
		if l.Latency != nil {
			if err := l.Latency.validate(); err != nil {
				bad("network.links[%d].latency: %v", i, err)
			}
		}
	}
	w := sc.Workload
	if w.Items < 0 || w.Customers < 0 || w.Items+w.Customers == 0 {
		bad("workload needs some items or customers")
	}
	if w.Rate < 0 || w.Writes < 0 || w.Rows < 0 || w.HotKeys < 0 {
		bad("workload rate, writes, rows and hot_keys must not be negative")
	}
	for i, e := range sc.Events {
		if (e.Kind == "grant" || e.Kind == "deprecate") && !sc.Authority {
			bad("events[%d] (%s at %s): needs authority = true", i, e.Kind, e.At)
		}
		if err := e.validate(sc.Nodes); err != nil {
			bad("events[%d] (%s at %s): %v", i, e.Kind, e.At, err)
		}
	}
	return errors.Join(errs...)
}

func (l *Latency) validate() error {
	switch l.Dist {
	case "constant", "uniform", "lognormal":
	default:
		return fmt.Errorf("dist must be constant, uniform or lognormal, not %q", l.Dist)
	}
	if l.Min < 0 || (l.Max > 0 && l.Max < l.Min) || l.Median < 0 || l.Sigma < 0 {
		return errors.New("need 0 ≤ min ≤ max, median ≥ 0, sigma ≥ 0")
	}
	if l.Dist == "uniform" && l.Max <= 0 {
		return errors.New("uniform needs max")
	}
	return nil
}

var eventKinds = map[string]bool{"partition": true, "heal": true, "crash": true, "restart": true,
	"clog": true, "unclog": true, "flap": true, "skew": true, "grant": true, "deprecate": true}

func (e *Event) validate(nodes int) error {
	if !eventKinds[e.Kind] {
		return fmt.Errorf("unknown kind; use one of partition, heal, crash, restart, clog, unclog, flap, skew, grant, deprecate")
	}
	if (e.Kind == "grant" || e.Kind == "deprecate") && e.Doctype != "Item" && e.Doctype != "Customer" {
		return fmt.Errorf("a %s event needs doctype Item or Customer", e.Kind)
	}
	if e.At < 0 || e.For < 0 || e.Every < 0 {
		return errors.New("at, for and every must not be negative")
	}
	if e.Kind == "partition" || e.Kind == "flap" {
		switch e.Mode {
		case "halves", "isolate", "ring", "random-groups", "groups":
		default:
			return fmt.Errorf("mode must be halves, isolate, random-groups, ring or groups, not %q", e.Mode)
		}
		if e.Mode == "groups" && len(e.Groups) < 2 {
			return errors.New("mode groups needs at least two groups")
		}
	}
	if e.Kind == "flap" && (e.Period <= 0 || e.For <= 0) {
		return errors.New("flap needs period and for")
	}
	if e.Every > 0 && e.Until <= e.At {
		return errors.New("every needs until after at")
	}
	for _, s := range e.Sites {
		if s < 0 || s >= nodes {
			return fmt.Errorf("site %d out of range 0..%d", s, nodes-1)
		}
	}
	for _, g := range e.Groups {
		for _, s := range g {
			if s < 0 || s >= nodes {
				return fmt.Errorf("site %d out of range 0..%d", s, nodes-1)
			}
		}
	}
	return nil
}

func (b Bytes) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(b), 10)), nil }
