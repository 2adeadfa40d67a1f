package simulate

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Set changes one scenario option by its TOML path ("nodes",
// "network.loss", "workload.rate", "duration"…), parsing value as the
// option's type. Unknown paths and bad values are errors naming them.
func (sc *Scenario) Set(path, value string) error {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(sc); err != nil {
		return err
	}
	var tree map[string]any
	if _, err := toml.Decode(buf.String(), &tree); err != nil {
		return err
	}
	parts := strings.Split(path, ".")
	m := tree
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			return fmt.Errorf("simulate: unknown option %q (see docs/simulate.md)", path)
		}
		m = next
	}
	last := parts[len(parts)-1]
	old, ok := m[last]
	if !ok {
		return fmt.Errorf("simulate: unknown option %q (see docs/simulate.md)", path)
	}
	switch old.(type) {
	case int64:
		v, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fmt.Errorf("simulate: %s wants an integer, not %q", path, value)
		}
		m[last] = v
	case float64:
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return fmt.Errorf("simulate: %s wants a number, not %q", path, value)
		}
		m[last] = v
	case bool:
		v, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("simulate: %s wants true or false, not %q", path, value)
		}
		m[last] = v
	case string:
		m[last] = value
	default:
		return fmt.Errorf("simulate: %s cannot be set from the command line", path)
	}
	buf.Reset()
	if err := toml.NewEncoder(&buf).Encode(tree); err != nil {
		return err
	}
	next := Defaults()
	next.Events = nil
	if _, err := toml.Decode(buf.String(), &next); err != nil {
		return fmt.Errorf("simulate: %s=%s: %v", path, value, err)
	}
	if err := next.Validate(); err != nil {
		return fmt.Errorf("simulate: %s=%s: %v", path, value, err)
	}
	*sc = next
	return nil
}

// Options lists every option of a resolved scenario as sorted path=value
// lines: what a run prints first so that it can be reproduced.
func (sc *Scenario) Options() []string {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(sc); err != nil {
		return []string{"(unprintable: " + err.Error() + ")"}
	}
	var tree map[string]any
	if _, err := toml.Decode(buf.String(), &tree); err != nil {
		return nil
	}
	var out []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch v := m[k].(type) {
			case map[string]any:
				walk(prefix+k+".", v)
			default:
				out = append(out, fmt.Sprintf("%s%s=%v", prefix, k, v))
			}
		}
	}
	walk("", tree)
	return out
}

// Axis is one --sweep parameter and its values.
type Axis struct {
	Path   string
	Values []string
}

// ParseAxis parses "param=a,b,c".
func ParseAxis(s string) (Axis, error) {
	p, vals, ok := strings.Cut(s, "=")
	if !ok || p == "" || vals == "" {
		return Axis{}, fmt.Errorf("simulate: --sweep wants param=a,b,c, not %q", s)
	}
	return Axis{Path: strings.TrimSpace(p), Values: strings.Split(vals, ",")}, nil
}

// Grid returns every combination of the axes' values, first axis slowest.
func Grid(axes []Axis) [][]string {
	out := [][]string{{}}
	for _, a := range axes {
		var next [][]string
		for _, combo := range out {
			for _, v := range a.Values {
				next = append(next, append(append([]string(nil), combo...), strings.TrimSpace(v)))
			}
		}
		out = next
	}
	return out
}

// SweepHeader and SweepRow format one CSV row per run of a sweep.
func SweepHeader(axes []Axis) string {
	var cols []string
	for _, a := range axes {
		cols = append(cols, a.Path)
	}
	cols = append(cols, "seed", "ok", "converged", "converged_after_heal_ms", "writes", "messages", "bytes", "edit_deliveries",
		"latency_p50_ms", "latency_p99_ms", "violations")
	return strings.Join(cols, ",")
}

func SweepRow(values []string, r *Report) string {
	cols := append([]string(nil), values...)
	cols = append(cols, strconv.FormatUint(r.Seed, 10), strconv.FormatBool(r.Result.OK), strconv.FormatBool(r.Result.Converged),
		strconv.FormatInt(r.Result.ConvergedAfterHealMs, 10), strconv.FormatInt(r.Totals.Writes, 10),
		strconv.FormatInt(r.Totals.Messages, 10), strconv.FormatInt(r.Totals.Bytes, 10), strconv.FormatInt(r.Totals.EditsDelivered, 10),
		strconv.FormatFloat(r.Result.LatencyP50Ms, 'f', -1, 64), strconv.FormatFloat(r.Result.LatencyP99Ms, 'f', -1, 64),
		strconv.Itoa(len(r.Result.Violations)))
	return strings.Join(cols, ",")
}
