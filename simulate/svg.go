package simulate

import (
	"fmt"
	"math"
	"strings"
)

// Plots are plain SVG written by hand: a few lines and axes need no library.

type point struct{ x, y float64 }

type line struct {
	label string
	color string
	pts   []point
}

const (
	plotW, plotH = 720.0, 360.0
	padL, padB   = 70.0, 50.0
	padT, padR   = 40.0, 20.0
)

// chart draws lines over x and y ranges starting at zero (or at xmin for
// a logarithmic x axis).
func chart(title, xlabel, ylabel string, logX bool, lines []line) []byte {
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, l := range lines {
		for _, p := range l.pts {
			xmin = math.Min(xmin, p.x)
			xmax = math.Max(xmax, p.x)
			ymax = math.Max(ymax, p.y)
		}
	}
	if math.IsInf(xmin, 1) {
		xmin, xmax = 0, 1
	}
	if !logX {
		xmin = 0
	}
	if logX {
		xmin = math.Max(xmin, 1e-3)
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	ymax = niceMax(ymax)
	w, h := plotW-padL-padR, plotH-padT-padB
	sx := func(x float64) float64 {
		if logX {
			return padL + w*(math.Log10(math.Max(x, xmin))-math.Log10(xmin))/(math.Log10(xmax)-math.Log10(xmin))
		}
		return padL + w*(x-xmin)/(xmax-xmin)
	}
	sy := func(y float64) float64 { return padT + h - h*y/ymax }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%g" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", padL, esc(title))
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", padL, padT+h, padL+w, padT+h)
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", padL, padT, padL, padT+h)
	for i := 0; i <= 4; i++ {
		y := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="end">%s</text>`+"\n", padL-6, sy(y)+4, num(y))
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#ddd"/>`+"\n", padL, sy(y), padL+w, sy(y))
	}
	for i := 0; i <= 4; i++ {
		var x float64
		if logX {
			x = math.Pow(10, math.Log10(xmin)+(math.Log10(xmax)-math.Log10(xmin))*float64(i)/4)
		} else {
			x = xmin + (xmax-xmin)*float64(i)/4
		}
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", sx(x), padT+h+18, num(x))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", padL+w/2, plotH-8, esc(xlabel))
	fmt.Fprintf(&b, `<text x="14" y="%g" transform="rotate(-90 14 %g)" text-anchor="middle">%s</text>`+"\n", padT+h/2, padT+h/2, esc(ylabel))
	for i, l := range lines {
		if len(l.pts) == 0 {
			continue
		}
		var d strings.Builder
		for j, p := range l.pts {
			cmd := "L"
			if j == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, sx(p.x), sy(p.y))
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", strings.TrimSpace(d.String()), l.color)
		if l.label != "" {
			fmt.Fprintf(&b, `<text x="%g" y="%g" fill="%s">%s</text>`+"\n", padL+w-150, padT+14+16*float64(i), l.color, esc(l.label))
		}
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// niceMax rounds a maximum up to 1, 2, 4 or 8 times a power of ten, so the
// four grid lines fall on round values.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 4, 8, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case math.Abs(v) >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// DivergenceSVG plots how many replicas differ from the majority over time.
func (r *Report) DivergenceSVG() []byte {
	var div, up line
	div.label, div.color = "divergent replicas", "#c0392b"
	up.label, up.color = "sites up", "#2980b9"
	for _, s := range r.Series {
		div.pts = append(div.pts, point{float64(s.TMs) / 1000, float64(s.Divergent)})
		up.pts = append(up.pts, point{float64(s.TMs) / 1000, float64(s.Up)})
	}
	return chart(fmt.Sprintf("%s: replicas diverging from the majority (seed %d)", r.Scenario.Name, r.Seed), "simulated time (s)", "sites", false, []line{up, div})
}

// LatencySVG plots the propagation-latency CDF.
func (r *Report) LatencySVG() []byte {
	l := line{label: "edits delivered", color: "#27ae60"}
	for _, p := range r.Latency {
		l.pts = append(l.pts, point{p.Ms, p.Fraction})
	}
	return chart(fmt.Sprintf("%s: write-to-delivery latency CDF (seed %d)", r.Scenario.Name, r.Seed), "latency (ms, log scale)", "fraction of deliveries", true, []line{l})
}

// SitesSVG plots bytes and messages sent per site.
func (r *Report) SitesSVG() []byte {
	kb := line{label: "KiB sent", color: "#8e44ad"}
	msgs := line{label: "messages sent", color: "#d35400"}
	for i, s := range r.Sites {
		kb.pts = append(kb.pts, point{float64(i), float64(s.SentBytes) / 1024})
		msgs.pts = append(msgs.pts, point{float64(i), float64(s.SentMsgs)})
	}
	return chart(fmt.Sprintf("%s: traffic per site (seed %d)", r.Scenario.Name, r.Seed), "site index", "KiB / messages", false, []line{kb, msgs})
}
