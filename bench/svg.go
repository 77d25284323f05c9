package bench

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// The plot: two panels sharing one legend. The latency panel is the
// classic HdrHistogram percentile distribution (x: 1/(1-p) on a log scale,
// so the tail gets as much room as the median; y: latency, log scale); the
// throughput panel is successful answers per second over the measured
// window.
const (
	svgWidth   = 1040
	svgHeight  = 900
	plotLeft   = 80
	plotRight  = 760 // legend to the right
	latTop     = 60
	latBottom  = 400
	tputTop    = 500
	tputBottom = 840
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

type series struct {
	label string
	curve []CurvePoint
	tl    []float64
	step  float64
}

// WriteSVG writes a self-contained SVG of every phase's latency
// distribution and throughput over time.
func (r *Report) WriteSVG(w io.Writer) error {
	var ss []series
	for _, p := range r.Phases {
		for i := range p.Ops {
			op := &p.Ops[i]
			label := p.Name
			if len(p.Ops) > 1 {
				label += " · " + op.Op
			}
			ss = append(ss, series{label: label, curve: op.Latency.Curve, tl: op.Timeline, step: p.Step})
		}
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, svgHeight, svgWidth, svgHeight)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := "countersign bench: " + r.Scenario + ", " + r.Started.UTC().Format("2006-01-02 15:04 UTC")
	text(bw, plotLeft, 24, "start", 15, title)
	latencyPanel(bw, ss)
	throughputPanel(bw, ss)
	// Legend.
	for i, s := range ss {
		y := latTop + 10 + 20*i
		c := palette[i%len(palette)]
		fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", plotRight+20, y, plotRight+44, y, c)
		text(bw, plotRight+50, y+4, "start", 12, s.label)
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

// text writes an escaped text element.
func text(w io.Writer, x, y int, anchor string, size int, s string) {
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="%s" font-size="%d">`, x, y, anchor, size)
	_ = xml.EscapeText(w, []byte(s))
	fmt.Fprintln(w, "</text>")
}

func latencyPanel(w io.Writer, ss []series) {
	// x: log10(1/(1-p)), 0 at p=0; the maximum is drawn at the right edge.
	xMax := 2.0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, pt := range s.curve {
			if pt.Percentile < 100 {
				xMax = math.Max(xMax, math.Ceil(tailX(pt.Percentile)-1e-9))
			}
			if pt.Us > 0 {
				lo, hi = math.Min(lo, pt.Us), math.Max(hi, pt.Us)
			}
		}
	}
	xMax = math.Min(xMax, 6)
	if math.IsInf(lo, 1) {
		lo, hi = 10, 1000
	}
	yLo, yHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if yHi <= yLo {
		yHi = yLo + 1
	}
	px := func(x float64) float64 { return plotLeft + (plotRight-plotLeft)*x/xMax }
	py := func(us float64) float64 {
		return latBottom - (latBottom-latTop)*(math.Log10(math.Max(us, lo))-yLo)/(yHi-yLo)
	}
	frame(w, latTop, latBottom)
	text(w, plotLeft, latTop-12, "start", 13, "Latency by percentile (log scales; open loops from the intended send time)")
	for k := 0.0; k <= xMax; k++ {
		x := int(px(k))
		grid(w, x, latTop, x, latBottom)
		label := "0%"
		if k > 0 {
			label = strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.6f", 100*(1-math.Pow(10, -k))), "0"), ".") + "%"
		}
		text(w, x, latBottom+16, "middle", 11, label)
	}
	for e := yLo; e <= yHi; e++ {
		y := int(py(math.Pow(10, e)))
		grid(w, plotLeft, y, plotRight, y)
		text(w, plotLeft-6, y+4, "end", 11, decadeLabel(e))
	}
	text(w, (plotLeft+plotRight)/2, latBottom+34, "middle", 12, "percentile")
	for i, s := range ss {
		var pts []string
		for _, pt := range s.curve {
			x := xMax
			if pt.Percentile < 100 {
				x = math.Min(tailX(pt.Percentile), xMax)
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(x), py(pt.Us)))
		}
		polyline(w, pts, palette[i%len(palette)])
	}
}

// decadeLabel names 10^e microseconds: "10µs", "1ms", "100ms", "1s".
func decadeLabel(e float64) string {
	us := math.Pow(10, e)
	switch {
	case us < 1:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", us), "0"), ".") + "µs"
	case us < 1e3:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.0fms", us/1e3)
	}
	return fmt.Sprintf("%.0fs", us/1e6)
}

// tailX is log10(1/(1-p/100)).
func tailX(p float64) float64 {
	if p >= 100 {
		return math.Inf(1)
	}
	return -math.Log10(1 - p/100)
}

func throughputPanel(w io.Writer, ss []series) {
	tMax, lo, hi := 1.0, math.Inf(1), 0.0
	for _, s := range ss {
		tMax = math.Max(tMax, float64(len(s.tl))*s.step)
		for _, v := range s.tl {
			hi = math.Max(hi, v)
			if v > 0 {
				lo = math.Min(lo, v)
			}
		}
	}
	// A log scale when the series differ by more than 5x (the ceiling and
	// validate usually do), so that each one's variation stays visible.
	logScale := hi > 0 && hi/lo > 5
	var py func(float64) float64
	var ticks []float64
	if logScale {
		eLo, eHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		py = func(v float64) float64 {
			return tputBottom - (tputBottom-tputTop)*(math.Log10(math.Max(v, math.Pow(10, eLo)))-eLo)/(eHi-eLo)
		}
		for e := eLo; e <= eHi; e++ {
			for _, m := range []float64{1, 2, 5} {
				if v := m * math.Pow(10, e); v <= math.Pow(10, eHi) {
					ticks = append(ticks, v)
				}
			}
		}
	} else {
		yTop := niceCeil(hi * 1.05)
		py = func(v float64) float64 { return tputBottom - (tputBottom-tputTop)*v/yTop }
		for i := 0; i <= 5; i++ {
			ticks = append(ticks, yTop*float64(i)/5)
		}
	}
	px := func(t float64) float64 { return plotLeft + (plotRight-plotLeft)*t/tMax }
	frame(w, tputTop, tputBottom)
	title := "Throughput over time (successful answers per second)"
	if logScale {
		title += ", log scale"
	}
	text(w, plotLeft, tputTop-12, "start", 13, title)
	for _, v := range ticks {
		y := int(py(v))
		grid(w, plotLeft, y, plotRight, y)
		text(w, plotLeft-6, y+4, "end", 11, formatCount(v))
	}
	tick := niceCeil(tMax / 10)
	for t := 0.0; t <= tMax+1e-9; t += tick {
		x := int(px(t))
		grid(w, x, tputTop, x, tputBottom)
		text(w, x, tputBottom+16, "middle", 11, strings.TrimSuffix(fmt.Sprintf("%.1f", t), ".0")+"s")
	}
	text(w, (plotLeft+plotRight)/2, tputBottom+34, "middle", 12, "time in the measured window")
	for i, s := range ss {
		var pts []string
		for j, v := range s.tl {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px((float64(j)+0.5)*s.step), py(v)))
		}
		polyline(w, pts, palette[i%len(palette)])
	}
}

// niceCeil rounds x up to 1, 2 or 5 times a power of ten.
func niceCeil(x float64) float64 {
	if x <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= x {
			return m * e
		}
	}
	return 10 * e
}

func frame(w io.Writer, top, bottom int) {
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", plotLeft, top, plotRight-plotLeft, bottom-top)
}

func grid(w io.Writer, x1, y1, x2, y2 int) {
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#ddd"/>`+"\n", x1, y1, x2, y2)
}

func polyline(w io.Writer, pts []string, color string) {
	if len(pts) == 0 {
		return
	}
	fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
}
