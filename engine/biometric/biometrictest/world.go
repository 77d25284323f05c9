// Package biometrictest interprets the small language the fixtures of
// engine/biometric and engine/policy use to describe sessions: named
// embeddings built deterministically, the user's template, and frames folded
// into an aggregate. It is shared by both packages' datadriven tests so that a
// session reads the same in either file, and it stays free of testing and os
// imports so that the engine's purity check covers it too.
//
// Commands (arguments are key=value, or key=(a, b) for lists):
//
//	dim n=8                           embedding dimension (default 8); clears everything
//	thresholds [default] faceMatch=0.6 liveness=0.8 quality=0.5 maxFrameGapMs=2000
//	           minVerifiedFrames=3 minVerifiedRatio=0.8 idvMatch=0.5 minEnrollFrames=5
//	vector name=N seed=S              a random (Gaussian) vector
//	vector name=N v=(1, 0, 0.5)       explicit components (the rest are 0)
//	vector name=N from=F noise=X seed=S   unit(F) + X * a random unit vector
//	vector name=N from=F cos=C seed=S     a unit vector whose cosine to F is C
//	vector name=N from=F ulp=K        F with its first component K float32 steps larger
//	vector name=N from=F scale=X      F times X (same direction, other bytes)
//	template vec=N version=V | template none    the user's current template (unit(N))
//	fold [continue] [quiet]           fold the frames of the input (a new session unless continue)
//	rescore                           Reset, then fold the session's frames against the current template
//	enroll version=V [show=(N, ...)]  enroll from the frames of the input against the current template
//	roundtrip                         encode the aggregate, decode it into a reused one, compare
//
// Frame lines (input of fold and enroll); faces, q and l default to 1, 0.9, 0.95:
//
//	frame seq=1 ts=0 faces=1 q=0.9 l=0.95 emb=N [ulp=K]
//	doc seq=9 ts=100 type=driver_license q=0.9 l=0.95 emb=N
//	gen n=6 seq=1 ts=0 dt=500 from=N noise=0.1 seed=10 [faces= q= l=]   n face frames,
//	    seq and ts stepping by 1 and dt, each embedding unit(N) + noise * random (seed+i)
package biometrictest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/countersign/countersign/engine/biometric"
)

// Arg is one argument of a command: key=value has one value, key=(a, b) several.
type Arg struct {
	Key  string
	Vals []string
}

// World is the state of one fixture file: named vectors, thresholds, the
// user's current template, and the session being folded.
type World struct {
	Dim        int
	Thresholds biometric.Thresholds
	Vectors    map[string][]float32
	Template   *biometric.Template // nil: the user has no template
	Agg        *biometric.Aggregate
	Frames     []biometric.Frame // the session's frames, in arrival order

	scorer *biometric.Scorer
	names  []string // vector names in creation order, for stable output
}

// NewWorld returns an empty world with embeddings of dim components and
// DESIGN's default thresholds.
func NewWorld(dim int) *World {
	w := &World{}
	w.reset(dim)
	return w
}

func (w *World) reset(dim int) {
	*w = World{
		Dim:        dim,
		Thresholds: biometric.DefaultThresholds(),
		Vectors:    map[string][]float32{},
		Agg:        biometric.NewAggregate(dim),
	}
	w.scorer = biometric.NewScorer(w.Thresholds, dim)
}

// SetThresholds makes the session's frames be scored under t from now on,
// as when an organization's policy changes.
func (w *World) SetThresholds(t biometric.Thresholds) {
	w.Thresholds = t
	w.scorer = biometric.NewScorer(t, w.Dim)
}

// ErrUnknownCommand is returned by Run for a command it does not interpret,
// so that a caller can try its own.
var ErrUnknownCommand = errors.New("biometrictest: unknown command")

// Run executes one command and returns its output.
func (w *World) Run(cmd string, args []Arg, input string) (string, error) {
	switch cmd {
	case "dim":
		n, err := intArg(args, "n", 8)
		if err != nil {
			return "", err
		}
		if n < 1 || n > biometric.MaxDim {
			return "", fmt.Errorf("dim %d out of range", n)
		}
		w.reset(n)
		return "ok\n", nil
	case "thresholds":
		return w.thresholds(args)
	case "vector":
		return w.vector(args)
	case "template":
		return w.template(args)
	case "fold":
		return w.fold(args, input)
	case "rescore":
		w.Agg.Reset(w.Dim)
		for i := range w.Frames {
			w.scorer.Fold(w.Agg, &w.Frames[i], w.Template)
		}
		return w.Agg.String(), nil
	case "enroll":
		return w.enroll(args, input)
	case "roundtrip":
		return w.roundtrip()
	}
	return "", ErrUnknownCommand
}

func (w *World) thresholds(args []Arg) (string, error) {
	t := w.Thresholds
	for _, a := range args {
		if a.Key == "default" {
			t = biometric.DefaultThresholds()
			continue
		}
		if len(a.Vals) != 1 {
			return "", fmt.Errorf("thresholds: %s needs one value", a.Key)
		}
		v := a.Vals[0]
		var err error
		switch a.Key {
		case "faceMatch":
			t.FaceMatch, err = parseF32(v)
		case "liveness":
			t.Liveness, err = parseF32(v)
		case "quality":
			t.Quality, err = parseF32(v)
		case "minVerifiedRatio":
			t.MinVerifiedRatio, err = parseF32(v)
		case "idvMatch":
			t.IDVMatch, err = parseF32(v)
		case "maxFrameGapMs":
			t.MaxFrameGapMs, err = strconv.ParseInt(v, 10, 64)
		case "minVerifiedFrames":
			t.MinVerifiedFrames, err = strconv.Atoi(v)
		case "minEnrollFrames":
			t.MinEnrollFrames, err = strconv.Atoi(v)
		default:
			return "", fmt.Errorf("thresholds: unknown key %s", a.Key)
		}
		if err != nil {
			return "", err
		}
	}
	if err := t.Validate(); err != nil {
		return err.Error() + "\n", nil
	}
	w.SetThresholds(t)
	return fmt.Sprintf("faceMatch=%v liveness=%v quality=%v maxFrameGapMs=%d minVerifiedFrames=%d minVerifiedRatio=%v idvMatch=%v minEnrollFrames=%d\n",
		t.FaceMatch, t.Liveness, t.Quality, t.MaxFrameGapMs, t.MinVerifiedFrames, t.MinVerifiedRatio, t.IDVMatch, t.MinEnrollFrames), nil
}

func (w *World) vector(args []Arg) (string, error) {
	name := strArg(args, "name", "")
	if name == "" {
		return "", errors.New("vector: name= is required")
	}
	if _, dup := w.Vectors[name]; dup {
		return "", fmt.Errorf("vector: %s already defined", name)
	}
	seed, err := intArg(args, "seed", 0)
	if err != nil {
		return "", err
	}
	v := make([]float32, w.Dim)
	from := strArg(args, "from", "")
	var base []float32
	if from != "" {
		var ok bool
		if base, ok = w.Vectors[from]; !ok {
			return "", fmt.Errorf("vector: unknown vector %s", from)
		}
	}
	switch {
	case hasArg(args, "v"):
		vals := argVals(args, "v")
		if len(vals) > w.Dim {
			return "", fmt.Errorf("vector: %d components for dim %d", len(vals), w.Dim)
		}
		for i, s := range vals {
			if v[i], err = parseF32(s); err != nil {
				return "", err
			}
		}
	case base == nil:
		g := newGauss(uint64(seed))
		for i := range v {
			v[i] = float32(g.next())
		}
	case hasArg(args, "noise"):
		x, err := floatArg(args, "noise")
		if err != nil {
			return "", err
		}
		noisy(v, base, x, uint64(seed))
	case hasArg(args, "cos"):
		c, err := floatArg(args, "cos")
		if err != nil {
			return "", err
		}
		if c < -1 || c > 1 {
			return "", errors.New("vector: cos must be in [-1, 1]")
		}
		u := unit64(base)
		r := orthogonal(u, uint64(seed))
		s := math.Sqrt(1 - c*c)
		for i := range v {
			v[i] = float32(c*u[i] + s*r[i])
		}
	case hasArg(args, "ulp"):
		k, err := intArg(args, "ulp", 1)
		if err != nil {
			return "", err
		}
		copy(v, base)
		for range k {
			v[0] = math.Nextafter32(v[0], float32(math.Inf(1)))
		}
	case hasArg(args, "scale"):
		x, err := floatArg(args, "scale")
		if err != nil {
			return "", err
		}
		for i := range v {
			v[i] = float32(float64(base[i]) * x)
		}
	default:
		return "", errors.New("vector: from= needs noise=, cos=, ulp= or scale=")
	}
	w.Vectors[name] = v
	w.names = append(w.names, name)
	if base != nil {
		return fmt.Sprintf("%s: cos(%s)=%s\n", name, from, f32(biometric.Cosine(v, base))), nil
	}
	return fmt.Sprintf("%s: norm=%.4f\n", name, norm(v)), nil
}

func (w *World) template(args []Arg) (string, error) {
	if hasArg(args, "none") {
		w.Template = nil
		return "no template\n", nil
	}
	name := strArg(args, "vec", "")
	v, ok := w.Vectors[name]
	if !ok {
		return "", fmt.Errorf("template: unknown vector %q", name)
	}
	version, err := intArg(args, "version", 1)
	if err != nil {
		return "", err
	}
	u := unit64(v)
	t := &biometric.Template{Version: uint64(version), Vec: make([]float32, len(u))}
	for i := range u {
		t.Vec[i] = float32(u[i])
	}
	w.Template = t
	return fmt.Sprintf("template version=%d\n", version), nil
}

func (w *World) fold(args []Arg, input string) (string, error) {
	frames, err := w.parseFrames(input)
	if err != nil {
		return "", err
	}
	if !hasArg(args, "continue") {
		w.Agg.Reset(w.Dim)
		w.Frames = w.Frames[:0]
	}
	quiet := hasArg(args, "quiet")
	var b strings.Builder
	for i := range frames {
		f := &frames[i]
		before := *w.Agg // the counters; slices are not compared
		w.scorer.Fold(w.Agg, f, w.Template)
		w.Frames = append(w.Frames, *f)
		if !quiet {
			b.WriteString(describe(f, &before, w.Agg))
		}
	}
	b.WriteString(w.Agg.String())
	return b.String(), nil
}

// describe says what folding f did: verified or not, its similarity to the
// template when it was compared, and the violations it raised.
func describe(f *biometric.Frame, before, after *biometric.Aggregate) string {
	st, st0 := &after.Face, &before.Face
	if f.Type == biometric.DocumentFrame {
		st, st0 = &after.Document, &before.Document
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d: %s ", f.Seq, f.Type)
	if st.Verified > st0.Verified {
		b.WriteString("verified")
	} else {
		b.WriteString("unverified")
	}
	if st.Compared > st0.Compared {
		b.WriteString(" sim=")
		b.WriteString(f32(float32(st.SimilaritySum - st0.SimilaritySum)))
	}
	for k := range after.Violations {
		if after.Violations[k].Count > before.Violations[k].Count {
			b.WriteByte(' ')
			b.WriteString(biometric.Kind(k).String())
		}
	}
	b.WriteByte('\n')
	return b.String()
}

func (w *World) enroll(args []Arg, input string) (string, error) {
	frames, err := w.parseFrames(input)
	if err != nil {
		return "", err
	}
	version, err := intArg(args, "version", 1)
	if err != nil {
		return "", err
	}
	var dst biometric.Template
	if r := w.scorer.Enroll(frames, w.Template, uint64(version), &dst); r != biometric.Enrolled {
		return fmt.Sprintf("refused: %s\n", r), nil
	}
	w.Template = &dst
	var b strings.Builder
	fmt.Fprintf(&b, "enrolled version=%d", dst.Version)
	for _, name := range argVals(args, "show") {
		v, ok := w.Vectors[name]
		if !ok {
			return "", fmt.Errorf("enroll: unknown vector %q", name)
		}
		fmt.Fprintf(&b, " cos(%s)=%.4f", name, biometric.Cosine(dst.Vec, v))
	}
	b.WriteByte('\n')
	return b.String(), nil
}

func (w *World) roundtrip() (string, error) {
	enc := w.Agg.AppendBinary(nil)
	var dec biometric.Aggregate
	dec.Reset(3) // another dimension: Decode must take the encoding's
	if err := dec.Decode(enc); err != nil {
		return "", fmt.Errorf("roundtrip: %w", err)
	}
	again := dec.AppendBinary(nil)
	same := string(enc) == string(again) && dec.String() == w.Agg.String()
	return fmt.Sprintf("encoded %d bytes, decoded identical=%v\n", len(enc), same), nil
}

// parseFrames reads frame, doc and gen lines.
func (w *World) parseFrames(input string) ([]biometric.Frame, error) {
	var frames []biometric.Frame
	for line := range strings.Lines(input) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		kv := map[string]string{}
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				return nil, fmt.Errorf("%q: %q is not key=value", line, f)
			}
			kv[k] = v
		}
		var err error
		switch fields[0] {
		case "frame", "doc":
			var f biometric.Frame
			f, err = w.parseFrame(fields[0], kv)
			frames = append(frames, f)
		case "gen":
			frames, err = w.gen(frames, kv)
		default:
			err = errors.New("want frame, doc or gen")
		}
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
	}
	return frames, nil
}

func (w *World) parseFrame(kind string, kv map[string]string) (biometric.Frame, error) {
	var f biometric.Frame
	f.Type = biometric.FaceFrame
	if kind == "doc" {
		f.Type = biometric.DocumentFrame
		f.DocType = biometric.DocDriverLicense
		if t, ok := kv["type"]; ok {
			d, ok := biometric.ParseDocType([]byte(t))
			if !ok {
				return f, fmt.Errorf("unknown document type %q", t)
			}
			f.DocType = d
		}
		f.Faces = 1
	}
	if err := w.scores(&f, kv); err != nil {
		return f, err
	}
	var err error
	if f.Seq, err = strconv.ParseUint(kv["seq"], 10, 64); err != nil {
		return f, fmt.Errorf("seq: %w", err)
	}
	if f.TS, err = strconv.ParseInt(kv["ts"], 10, 64); err != nil {
		return f, fmt.Errorf("ts: %w", err)
	}
	v, ok := w.Vectors[kv["emb"]]
	if !ok {
		return f, fmt.Errorf("unknown vector %q", kv["emb"])
	}
	if s, ok := kv["ulp"]; ok {
		k, err := strconv.Atoi(s)
		if err != nil {
			return f, err
		}
		v = slices.Clone(v)
		for range k {
			v[0] = math.Nextafter32(v[0], float32(math.Inf(1)))
		}
	}
	f.Embedding = Embedding(v)
	return f, nil
}

// scores reads faces, q and l into f, with the defaults 1, 0.9 and 0.95.
func (w *World) scores(f *biometric.Frame, kv map[string]string) error {
	f.Faces, f.Quality, f.Liveness = 1, 0.9, 0.95
	if s, ok := kv["faces"]; ok {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return err
		}
		f.Faces = int32(n)
	}
	var err error
	if s, ok := kv["q"]; ok {
		if f.Quality, err = parseF32(s); err != nil {
			return err
		}
	}
	if s, ok := kv["l"]; ok {
		if f.Liveness, err = parseF32(s); err != nil {
			return err
		}
	}
	return nil
}

func (w *World) gen(frames []biometric.Frame, kv map[string]string) ([]biometric.Frame, error) {
	var n, seq, ts, dt, seed int64
	for _, p := range []struct {
		key string
		dst *int64
	}{{"n", &n}, {"seq", &seq}, {"ts", &ts}, {"dt", &dt}, {"seed", &seed}} {
		v, err := strconv.ParseInt(kv[p.key], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.key, err)
		}
		*p.dst = v
	}
	base, ok := w.Vectors[kv["from"]]
	if !ok {
		return nil, fmt.Errorf("unknown vector %q", kv["from"])
	}
	noise, err := strconv.ParseFloat(kv["noise"], 64)
	if err != nil {
		return nil, fmt.Errorf("noise: %w", err)
	}
	v := make([]float32, w.Dim)
	for i := range n {
		f := biometric.Frame{Type: biometric.FaceFrame, Seq: uint64(seq + i), TS: ts + i*dt}
		if err := w.scores(&f, kv); err != nil {
			return nil, err
		}
		noisy(v, base, noise, uint64(seed+i))
		f.Embedding = Embedding(v)
		frames = append(frames, f)
	}
	return frames, nil
}

// Embedding returns v as the little-endian float32 bytes a device sends.
func Embedding(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// noisy sets v to unit(base) + x * a random unit vector drawn from seed: the
// perturbation is x times the signal, so the cosine to base is about
// 1/sqrt(1+x*x).
func noisy(v, base []float32, x float64, seed uint64) {
	u := unit64(base)
	g := newGauss(seed)
	r := make([]float64, len(v))
	for i := range r {
		r[i] = g.next()
	}
	r = unitOf(r)
	for i := range v {
		v[i] = float32(u[i] + x*r[i])
	}
}

// orthogonal returns a random unit vector orthogonal to the unit vector u.
func orthogonal(u []float64, seed uint64) []float64 {
	g := newGauss(seed)
	r := make([]float64, len(u))
	for i := range r {
		r[i] = g.next()
	}
	var d float64
	for i := range r {
		d += r[i] * u[i]
	}
	for i := range r {
		r[i] -= d * u[i]
	}
	return unitOf(r)
}

func unit64(v []float32) []float64 {
	r := make([]float64, len(v))
	for i, x := range v {
		r[i] = float64(x)
	}
	return unitOf(r)
}

func unitOf(r []float64) []float64 {
	var ss float64
	for _, x := range r {
		ss += x * x
	}
	if ss == 0 {
		return r
	}
	k := 1 / math.Sqrt(ss)
	for i := range r {
		r[i] *= k
	}
	return r
}

func norm(v []float32) float64 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	return math.Sqrt(ss)
}

// gauss draws standard normal numbers from a seed with splitmix64 and
// Box-Muller: defined here, not by math/rand, so fixtures never change when
// the standard library's generators do.
type gauss struct {
	state uint64
	spare float64
	has   bool
}

func newGauss(seed uint64) *gauss { return &gauss{state: seed} }

func (g *gauss) uniform() float64 {
	g.state += 0x9e3779b97f4a7c15
	z := g.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return (float64(z>>11) + 0.5) / (1 << 53) // in (0, 1)
}

func (g *gauss) next() float64 {
	if g.has {
		g.has = false
		return g.spare
	}
	u1, u2 := g.uniform(), g.uniform()
	r := math.Sqrt(-2 * math.Log(u1))
	g.spare, g.has = r*math.Sin(2*math.Pi*u2), true
	return r * math.Cos(2*math.Pi*u2)
}

// f32 formats x as the shortest decimal that reads back as the same float32,
// so that a value exactly at a threshold prints as the threshold.
func f32(x float32) string { return strconv.FormatFloat(float64(x), 'g', -1, 32) }

func parseF32(s string) (float32, error) {
	f, err := strconv.ParseFloat(s, 32)
	return float32(f), err
}

func hasArg(args []Arg, key string) bool {
	for _, a := range args {
		if a.Key == key {
			return true
		}
	}
	return false
}

func argVals(args []Arg, key string) []string {
	for _, a := range args {
		if a.Key == key {
			return a.Vals
		}
	}
	return nil
}

func strArg(args []Arg, key, def string) string {
	if v := argVals(args, key); len(v) == 1 {
		return v[0]
	}
	return def
}

func intArg(args []Arg, key string, def int) (int, error) {
	v := argVals(args, key)
	if len(v) == 0 {
		return def, nil
	}
	n, err := strconv.Atoi(v[0])
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return n, nil
}

func floatArg(args []Arg, key string) (float64, error) {
	v := argVals(args, key)
	if len(v) != 1 {
		return 0, fmt.Errorf("%s needs one value", key)
	}
	return strconv.ParseFloat(v[0], 64)
}
