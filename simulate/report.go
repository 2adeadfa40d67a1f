package simulate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"meridian/crdt"
	"meridian/replica"
)

// Report is the outcome of a run. It holds nothing that depends on the
// machine or the wall clock, so the same seed gives the same bytes.
type Report struct {
	Seed     uint64      `json:"seed"`
	Scenario Scenario    `json:"scenario"`
	Result   Result      `json:"result"`
	Failures []string    `json:"failures"`
	Totals   Totals      `json:"totals"`
	Latency  []CDFPoint  `json:"propagation_latency_cdf"`
	Series   []Sample    `json:"series"`
	Sites    []SiteStats `json:"sites"`

	lastDivergent int
	sample        int64
}

// Result says whether the run passed.
type Result struct {
	OK                   bool     `json:"ok"`
	Converged            bool     `json:"converged"`
	ConvergedAfterHealMs int64    `json:"converged_after_heal_ms"`
	SimulatedMs          int64    `json:"simulated_ms"`
	Events               int64    `json:"events"`
	LatencyP50Ms         float64  `json:"latency_p50_ms"`
	LatencyP99Ms         float64  `json:"latency_p99_ms"`
	Violations           []string `json:"violations"`
}

// Totals are counters over the whole run.
type Totals struct {
	Writes            int64 `json:"writes"`
	Acked             int64 `json:"acked"`
	ConflictingWrites int64 `json:"conflicting_writes"`
	Messages          int64 `json:"messages"`
	Bytes             int64 `json:"bytes"`
	Deliveries        int64 `json:"deliveries"`
	EditsDelivered    int64 `json:"edits_delivered"`
	Dropped           int64 `json:"dropped_by_network"`
	LostToCrash       int64 `json:"lost_to_crashed_site"`
	Crashes           int64 `json:"crashes"`
	Partitions        int64 `json:"partition_changes"`
	Rejected          int64 `json:"rejected"`
	Held              int64 `json:"held_for_clock_skew"`
	Buffered          int64 `json:"buffered_for_dependencies"`
	BufferDrops       int64 `json:"buffer_drops"`
	Divergences       int64 `json:"divergence_reports"`
	Collected         int64 `json:"tombstones_collected"`
	Records           int64 `json:"authority_records_issued,omitempty"`
	Flagged           int64 `json:"flagged_deprecated,omitempty"`
	Waiting           int64 `json:"waiting_for_grant,omitempty"`
	RefusedWrites     int64 `json:"writes_refused_locally,omitempty"`
}

// Sample is one point of the time series.
type Sample struct {
	TMs       int64 `json:"t_ms"`
	Up        int   `json:"up"`
	Divergent int   `json:"divergent"`
	Messages  int64 `json:"messages"`
	Bytes     int64 `json:"bytes"`
}

// SiteStats are one site's counters.
type SiteStats struct {
	ID        string `json:"id"`
	SentMsgs  int64  `json:"sent_messages"`
	SentBytes int64  `json:"sent_bytes"`
	RecvMsgs  int64  `json:"received_messages"`
	Crashes   int    `json:"crashes"`
}

// CDFPoint is a point of the propagation-latency distribution: Fraction of
// edits reached a site within Ms milliseconds of being written.
type CDFPoint struct {
	Ms       float64 `json:"ms"`
	Fraction float64 `json:"fraction"`
	Count    int64   `json:"count"`
}

func newReport(sc *Scenario, seed uint64) *Report {
	return &Report{Seed: seed, Scenario: *sc, sample: ms(sc.Sample), Failures: []string{}}
}

func (r *Report) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// bucket returns the series point of time t (µs).
func (r *Report) bucket(t int64) *Sample {
	i := int(t / r.sample)
	for len(r.Series) <= i {
		r.Series = append(r.Series, Sample{TMs: int64(len(r.Series)) * r.sample / 1000})
	}
	return &r.Series[i]
}

func (s *Sample) addMsg(size int) {
	s.Messages++
	s.Bytes += int64(size)
}

func (r *Report) countEvent(e replica.Event) {
	switch e.Kind {
	case replica.EventRejected:
		r.Totals.Rejected++
	case replica.EventHeld:
		r.Totals.Held++
	case replica.EventBuffered:
		r.Totals.Buffered++
	case replica.EventDropped:
		r.Totals.BufferDrops++
	case replica.EventDivergence:
		r.Totals.Divergences++
	case replica.EventCollected:
		r.Totals.Collected += int64(e.Count)
	case replica.EventFlagged:
		r.Totals.Flagged++
	case replica.EventWaiting:
		r.Totals.Waiting++
	}
}

// explainDivergence names the replicas that did not converge and why.
func (r *Report) explainDivergence(s *Sim) {
	for _, dt := range []string{"Item", "Customer"} {
		// The union of what every running site delivered is what each must reach.
		all := crdt.VersionVector{}
		for _, st := range s.sites {
			if !st.up {
				continue
			}
			vv := st.r.VersionVector(dt)
			for _, site := range vv.Sites() {
				e := vv[site]
				all.Add(site, 1, e.Max)
				for _, iv := range e.Extra {
					all.Add(site, iv.Lo, iv.Hi)
				}
			}
		}
		for _, st := range s.sites {
			if !st.up {
				r.fail("%s is down", st.id)
				continue
			}
			missing := st.r.VersionVector(dt).Missing(all)
			if len(missing) > 0 || st.r.Waiting() > 0 {
				shown := missing
				if len(shown) > 4 {
					shown = shown[:4]
				}
				r.fail("%s lacks %d ranges of %s (first %v); %d batches waiting; peers %d", st.id, len(missing), dt, shown, st.r.Waiting(), len(st.r.Peers()))
			}
		}
	}
	if len(r.Failures) == 0 {
		r.fail("every site delivered the same edits, but states differ: a merge bug (digests differ)")
	}
}

// WriteFiles writes report.json, series.csv, latency.csv and the SVG
// plots into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := r.JSON()
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"report.json":    j,
		"series.csv":     r.SeriesCSV(),
		"latency.csv":    r.LatencyCSV(),
		"sites.csv":      r.SitesCSV(),
		"divergence.svg": r.DivergenceSVG(),
		"latency.svg":    r.LatencySVG(),
		"sites.svg":      r.SitesSVG(),
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), files[n], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// JSON returns the report as indented JSON.
func (r *Report) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (r *Report) SeriesCSV() []byte {
	var b strings.Builder
	b.WriteString("t_ms,up,divergent,messages,bytes\n")
	for _, s := range r.Series {
		fmt.Fprintf(&b, "%d,%d,%d,%d,%d\n", s.TMs, s.Up, s.Divergent, s.Messages, s.Bytes)
	}
	return []byte(b.String())
}

func (r *Report) LatencyCSV() []byte {
	var b strings.Builder
	b.WriteString("ms,fraction,count\n")
	for _, p := range r.Latency {
		fmt.Fprintf(&b, "%g,%g,%d\n", p.Ms, p.Fraction, p.Count)
	}
	return []byte(b.String())
}

func (r *Report) SitesCSV() []byte {
	var b strings.Builder
	b.WriteString("site,sent_messages,sent_bytes,received_messages,crashes\n")
	for _, s := range r.Sites {
		fmt.Fprintf(&b, "%s,%d,%d,%d,%d\n", s.ID, s.SentMsgs, s.SentBytes, s.RecvMsgs, s.Crashes)
	}
	return []byte(b.String())
}

// Summary is a few human-readable lines about the run.
func (r *Report) Summary() string {
	var b strings.Builder
	status := "PASS"
	if !r.Result.OK {
		status = "FAIL"
	}
	fmt.Fprintf(&b, "%s: %s, %d sites, %d writes (%d acknowledged), %d messages, %.1f MiB, %d edit deliveries\n",
		status, r.Scenario.Name, r.Scenario.Nodes, r.Totals.Writes, r.Totals.Acked, r.Totals.Messages, float64(r.Totals.Bytes)/(1<<20), r.Totals.EditsDelivered)
	if r.Result.Converged {
		fmt.Fprintf(&b, "converged %d ms after the heal; propagation latency p50 %.1f ms, p99 %.1f ms\n",
			r.Result.ConvergedAfterHealMs, r.Result.LatencyP50Ms, r.Result.LatencyP99Ms)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  - %s\n", f)
	}
	return b.String()
}
