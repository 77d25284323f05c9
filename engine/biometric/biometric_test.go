package biometric

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// randVec returns a Gaussian vector of dim components.
func randVec(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// jitter returns base plus noise of relative size x: another frame of the same face.
func jitter(r *rand.Rand, base []float32, x float64) []float32 {
	v := make([]float32, len(base))
	for i := range v {
		v[i] = base[i] + float32(x*r.NormFloat64())
	}
	return v
}

func embedding(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func unitTemplate(v []float32, version uint64) *Template {
	t := &Template{Version: version, Vec: append([]float32(nil), v...)}
	normalizeVec(t.Vec)
	return t
}

// session folds a realistic mixed session: genuine frames, a few bad ones,
// documents, a replay, so that every field of the aggregate is exercised.
func session(t testing.TB, dim int, seed uint64, tmpl *Template) (*Aggregate, []Frame) {
	r := rand.New(rand.NewPCG(seed, 1))
	face := randVec(r, dim)
	var frames []Frame
	ts := int64(1_763_800_000_000)
	for i := range 40 {
		f := Frame{Seq: uint64(i + 1), TS: ts, Type: FaceFrame, Faces: 1, Quality: 0.9, Liveness: 0.95,
			Embedding: embedding(jitter(r, face, 0.1))}
		switch i % 10 {
		case 3:
			f.Faces = 0
		case 5:
			f.Liveness = 0.5
		case 7:
			f.Type, f.DocType = DocumentFrame, DocDriverLicense
		case 8:
			f.Embedding = frames[0].Embedding // replay
		case 9:
			ts += 2500 // gap
		}
		ts += 100
		frames = append(frames, f)
	}
	frames[20].Seq = 3 // out of order
	s := NewScorer(DefaultThresholds(), dim)
	a := NewAggregate(dim)
	for i := range frames {
		s.Fold(a, &frames[i], tmpl)
	}
	return a, frames
}

func TestNames(t *testing.T) {
	for _, ft := range []FrameType{FaceFrame, DocumentFrame} {
		got, ok := ParseFrameType([]byte(ft.String()))
		if !ok || got != ft {
			t.Errorf("ParseFrameType(%q) = %v, %v", ft, got, ok)
		}
	}
	for _, d := range []DocType{DocOther, DocDriverLicense, DocPassport, DocIDCard} {
		got, ok := ParseDocType([]byte(d.String()))
		if !ok || got != d {
			t.Errorf("ParseDocType(%q) = %v, %v", d, got, ok)
		}
	}
	for _, bad := range []string{"", "Face", "face ", "unknown", "selfie"} {
		if _, ok := ParseFrameType([]byte(bad)); ok {
			t.Errorf("ParseFrameType(%q) ok", bad)
		}
		if _, ok := ParseDocType([]byte(bad)); ok {
			t.Errorf("ParseDocType(%q) ok", bad)
		}
	}
	if FrameType(0).String() != "unknown" || DocType(9).String() != "unknown" || NumReportedKinds.String() != "unknown" ||
		ActionMismatch.String() != "action_mismatch" {
		t.Error("out-of-range names")
	}
	want := []string{"no_face", "multiple_faces", "liveness_failed", "face_mismatch", "replayed_frame",
		"static_stream", "frame_gap", "out_of_order", "user_mismatch"}
	for k := range NumKinds {
		if k.String() != want[k] {
			t.Errorf("Kind(%d) = %q, want %q", k, k, want[k])
		}
	}
}

func TestFrameValidate(t *testing.T) {
	const dim = 4
	good := func() Frame {
		return Frame{Type: FaceFrame, Faces: 1, Quality: 0.5, Liveness: 1, Embedding: embedding([]float32{1, 0, 0, 0})}
	}
	tiny := math.Float32frombits(1) // the smallest denormal: still a direction
	cases := []struct {
		name string
		edit func(*Frame)
		dim  int
		want error
	}{
		{"ok", func(*Frame) {}, dim, nil},
		{"document", func(f *Frame) { f.Type, f.DocType = DocumentFrame, DocIDCard }, dim, nil},
		{"denormal", func(f *Frame) { f.Embedding = embedding([]float32{0, tiny, 0, 0}) }, dim, nil},
		{"huge", func(f *Frame) { f.Embedding = embedding([]float32{math.MaxFloat32, math.MaxFloat32, 0, 0}) }, dim, nil},
		{"bounds", func(f *Frame) { f.Faces, f.Quality, f.Liveness = 64, 0, 1 }, dim, nil},
		{"type 0", func(f *Frame) { f.Type = 0 }, dim, ErrFrameType},
		{"type 3", func(f *Frame) { f.Type = 3 }, dim, ErrFrameType},
		{"doctype", func(f *Frame) { f.DocType = 4 }, dim, ErrFrameType},
		{"faces -1", func(f *Frame) { f.Faces = -1 }, dim, ErrFaces},
		{"faces 65", func(f *Frame) { f.Faces = 65 }, dim, ErrFaces},
		{"quality", func(f *Frame) { f.Quality = 1.0000001 }, dim, ErrScoreRange},
		{"liveness", func(f *Frame) { f.Liveness = -0.1 }, dim, ErrScoreRange},
		{"nan", func(f *Frame) { f.Liveness = float32(math.NaN()) }, dim, ErrScoreRange},
		{"short", func(f *Frame) { f.Embedding = f.Embedding[:15] }, dim, ErrEmbeddingSize},
		{"long", func(f *Frame) { f.Embedding = append(f.Embedding, 0, 0, 0, 0) }, dim, ErrEmbeddingSize},
		{"dim 0", func(f *Frame) { f.Embedding = nil }, 0, ErrEmbeddingSize},
		{"dim too big", func(*Frame) {}, MaxDim + 1, ErrEmbeddingSize},
		{"inf", func(f *Frame) { f.Embedding = embedding([]float32{1, float32(math.Inf(-1)), 0, 0}) }, dim, ErrEmbeddingNotFinite},
		{"nan emb", func(f *Frame) { f.Embedding = embedding([]float32{float32(math.NaN()), 0, 0, 0}) }, dim, ErrEmbeddingNotFinite},
		{"zero", func(f *Frame) { f.Embedding = embedding([]float32{0, float32(math.Copysign(0, -1)), 0, 0}) }, dim, ErrEmbeddingZero},
	}
	for _, c := range cases {
		f := good()
		c.edit(&f)
		if err := f.Validate(c.dim); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: Validate = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestThresholdsValidate(t *testing.T) {
	if err := DefaultThresholds().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Thresholds){
		func(t *Thresholds) { t.FaceMatch = 1.5 },
		func(t *Thresholds) { t.Liveness = float32(math.NaN()) },
		func(t *Thresholds) { t.Quality = -0.01 },
		func(t *Thresholds) { t.MinVerifiedRatio = 2 },
		func(t *Thresholds) { t.IDVMatch = -1 },
		func(t *Thresholds) { t.MaxFrameGapMs = 0 },
		func(t *Thresholds) { t.MaxFrameGapMs = MaxFrameGapLimit + 1 },
		func(t *Thresholds) { t.MinVerifiedFrames = 0 },
		func(t *Thresholds) { t.MinEnrollFrames = MaxFrames + 1 },
	}
	for i, edit := range bad {
		th := DefaultThresholds()
		edit(&th)
		if err := th.Validate(); !errors.Is(err, ErrThresholds) {
			t.Errorf("case %d: Validate = %v", i, err)
		}
	}
}

func TestMatches(t *testing.T) {
	th := DefaultThresholds()
	for _, c := range []struct {
		v, n uint32
		want bool
	}{{0, 0, false}, {2, 2, false}, {3, 3, true}, {4, 5, true}, {3, 4, false}, {8, 10, true}, {7, 10, false}} {
		if got := th.Matches(c.v, c.n); got != c.want {
			t.Errorf("Matches(%d, %d) = %v", c.v, c.n, got)
		}
	}
}

func TestCosine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3, 4, 7, 8, 9, 31, 512, 513} {
		a, b := randVec(r, n), randVec(r, n)
		var d, p, q float64
		for i := range a {
			d += float64(a[i]) * float64(b[i])
			p += float64(a[i]) * float64(a[i])
			q += float64(b[i]) * float64(b[i])
		}
		want := 0.0
		if p > 0 && q > 0 {
			want = d / math.Sqrt(p*q)
		}
		if got := Cosine(a, b); math.Abs(float64(got)-want) > 1e-5 {
			t.Errorf("n=%d: Cosine = %v, want %v", n, got, want)
		}
		if got := Dot(a, b); math.Abs(float64(got)-d) > 1e-4*math.Max(1, math.Abs(d)) {
			t.Errorf("n=%d: Dot = %v, want %v", n, got, d)
		}
	}
	if got := Cosine([]float32{1, 2, 3}, []float32{1, 2}); math.Abs(float64(got)-1) > 1e-6 {
		t.Errorf("common length: %v", got)
	}
	if Cosine([]float32{0, 0}, []float32{1, 1}) != 0 {
		t.Error("zero vector")
	}
}

func TestTemplateEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tm := unitTemplate(randVec(r, 16), 42)
	enc := tm.AppendBinary(nil)
	var got Template
	got.Vec = make([]float32, 3, 64)
	if err := got.Decode(enc); err != nil {
		t.Fatal(err)
	}
	if got.Version != 42 || string(got.AppendBinary(nil)) != string(enc) {
		t.Fatalf("round trip: %+v", got)
	}
	if v, err := TemplateVersionOf(enc); v != 42 || err != nil {
		t.Fatalf("TemplateVersionOf = %d, %v", v, err)
	}
	for i := range len(enc) {
		if err := got.Decode(enc[:i]); !errors.Is(err, ErrTemplateCorrupt) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
		if _, err := TemplateVersionOf(enc[:i]); !errors.Is(err, ErrTemplateCorrupt) {
			t.Fatalf("TemplateVersionOf of the first %d bytes: %v", i, err)
		}
	}
	if _, err := TemplateVersionOf(append(enc[:len(enc):len(enc)], 0)); !errors.Is(err, ErrTemplateCorrupt) {
		t.Fatalf("TemplateVersionOf accepted a trailing byte: %v", err)
	}
	for _, c := range []struct {
		edit func(*Template)
		// header: the damage is in the header, which TemplateVersionOf
		// checks; otherwise only Decode sees it.
		header bool
	}{
		{func(t *Template) { t.Version = 0 }, true},
		{func(t *Template) { t.Version = MixedTemplates }, true},
		{func(t *Template) { t.Vec = nil }, true},
		{func(t *Template) { t.Vec[0] *= 2 }, false},
		{func(t *Template) { t.Vec[1] = float32(math.NaN()) }, false},
	} {
		bad := unitTemplate(tm.Vec, 42)
		c.edit(bad)
		enc := bad.AppendBinary(nil)
		if err := got.Decode(enc); !errors.Is(err, ErrTemplateCorrupt) {
			t.Errorf("accepted %+v", bad)
		}
		if _, err := TemplateVersionOf(enc); errors.Is(err, ErrTemplateCorrupt) != c.header {
			t.Errorf("TemplateVersionOf(%+v) = %v", bad, err)
		}
	}
	enc[0]++ // a format this build does not know
	if _, err := TemplateVersionOf(enc); !errors.Is(err, ErrTemplateCorrupt) {
		t.Errorf("TemplateVersionOf accepted format %d", enc[0])
	}
}

// TestDecodeForPolicy: DecodeForPolicy reads what a policy needs, checks
// the lengths of what it skips but not their contents, and its result can
// be neither folded into nor encoded until it is Reset.
func TestDecodeForPolicy(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	tmpl := unitTemplate(randVec(r, 64), 9)
	a, _ := session(t, 64, 7, tmpl) // with a document frame, so VerifiedSum is read
	if len(a.DocumentBest) == 0 || len(a.prev) == 0 || len(a.hashes) < 2 {
		t.Fatalf("session does not exercise the skipped state:\n%s", a)
	}
	enc := a.AppendBinary(nil)
	var p Aggregate
	if err := p.DecodeForPolicy(enc); err != nil {
		t.Fatal(err)
	}
	if !samePolicyView(a, &p) || p.String() == "" {
		t.Fatalf("policy view differs:\n%s\n%s", a, &p)
	}
	for _, op := range []func(){
		func() { p.AppendBinary(nil) },
		func() { NewScorer(DefaultThresholds(), 64).Fold(&p, &Frame{Type: FaceFrame}, tmpl) },
		func() { NewScorer(DefaultThresholds(), 64).FoldUnreadable(&p) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("an aggregate from DecodeForPolicy was folded into or encoded")
				}
			}()
			op()
		}()
	}
	p.Reset(64)
	_ = p.AppendBinary(nil) // whole again

	// offsets of the vectors: VerifiedSum, DocumentBest, prev, then hashes.
	vs := len(enc) - 4 - 8*len(a.hashes) - 3*4*64
	damage := func(off int) []byte {
		b := slices.Clone(enc)
		copy(b[off:], []byte{0, 0, 0xc0, 0x7f}) // a NaN
		return b
	}
	var whole Aggregate
	for _, c := range []struct {
		name      string
		b         []byte
		forPolicy bool // DecodeForPolicy accepts it
	}{
		{"verified sum", damage(vs), false}, // read: there is a DocumentBest
		{"document best", damage(vs + 4*64), false},
		{"previous embedding", damage(vs + 8*64), true},
		{"unsorted hashes", func() []byte {
			b := slices.Clone(enc)
			copy(b[len(b)-8:], b[len(b)-16:len(b)-8])
			return b
		}(), true},
		{"a hash short", enc[:len(enc)-1], false},
	} {
		if err := whole.Decode(c.b); err == nil {
			t.Errorf("%s: Decode accepted it", c.name)
		}
		if err := p.DecodeForPolicy(c.b); (err == nil) != c.forPolicy {
			t.Errorf("%s: DecodeForPolicy: %v", c.name, err)
		}
	}

	// Without a document frame VerifiedSum is skipped too, and left zero.
	a.Reset(64)
	s := NewScorer(DefaultThresholds(), 64)
	for i := range 3 {
		f := Frame{Seq: uint64(i + 1), TS: int64(1000 * (i + 1)), Type: FaceFrame, Faces: 1, Quality: 1, Liveness: 1,
			Embedding: embedding(jitter(r, tmpl.Vec, 0.01))}
		s.Fold(a, &f, tmpl)
	}
	if a.Face.Verified == 0 {
		t.Fatalf("no verified frame:\n%s", a)
	}
	enc = a.AppendBinary(nil)
	if err := p.DecodeForPolicy(enc); err != nil || !samePolicyView(a, &p) || slices.ContainsFunc(p.VerifiedSum, func(x float32) bool { return x != 0 }) {
		t.Fatalf("face-only DecodeForPolicy: %v\n%s", err, &p)
	}
}

func TestAggregateEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	tmpl := unitTemplate(randVec(r, 64), 9)
	a, _ := session(t, 64, 7, tmpl)
	if a.Violations[ReplayedFrame].Count == 0 || a.Violations[FrameGap].Count == 0 ||
		a.Violations[OutOfOrder].Count == 0 || a.Document.Frames == 0 || a.TemplateVersion() != 9 {
		t.Fatalf("session does not exercise the aggregate:\n%s", a)
	}
	enc := a.AppendBinary(nil)
	var b Aggregate
	if err := b.Decode(enc); err != nil {
		t.Fatal(err)
	}
	if again := b.AppendBinary(nil); string(again) != string(enc) || b.String() != a.String() {
		t.Fatalf("round trip differs:\n%s\n%s", a, &b)
	}
	// Every strict prefix is refused, and a refused decode leaves b empty.
	for i := range len(enc) {
		if err := b.Decode(enc[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("prefix %d: %v", i, err)
		}
		if b.Frames() != 0 || b.Dim() != 64 {
			t.Fatalf("prefix %d left %d frames", i, b.Frames())
		}
	}
	if err := b.Decode(append(enc, 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatal("trailing byte accepted")
	}
	// Flipping any single bit either is refused or decodes to something that
	// re-encodes to exactly those bytes.
	for i := range len(enc) {
		for bit := range 8 {
			m := append([]byte(nil), enc...)
			m[i] ^= 1 << bit
			if b.Decode(m) == nil && string(b.AppendBinary(nil)) != string(m) {
				t.Fatalf("byte %d bit %d: accepted but not canonical", i, bit)
			}
		}
	}
	// An empty aggregate round-trips too.
	e := NewAggregate(512)
	if err := b.Decode(e.AppendBinary(nil)); err != nil || b.Dim() != 512 || b.Frames() != 0 {
		t.Fatalf("empty: %v", err)
	}
}

// TestRescoreMatchesFold checks that Reset plus a fold of the same frames
// gives the aggregate a fresh fold gives: rescoring is just that.
func TestRescoreMatchesFold(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	tmpl := unitTemplate(randVec(r, 32), 3)
	want, frames := session(t, 32, 11, tmpl)
	a, _ := session(t, 32, 11, nil)
	if a.TemplateVersion() != 0 {
		t.Fatal("version without template")
	}
	s := NewScorer(DefaultThresholds(), 32)
	a.Reset(32)
	for i := range frames {
		s.Fold(a, &frames[i], tmpl)
	}
	if string(a.AppendBinary(nil)) != string(want.AppendBinary(nil)) {
		t.Fatalf("rescored:\n%s\nfresh:\n%s", a, want)
	}
}

func TestReplayMemoryBound(t *testing.T) {
	s := NewScorer(DefaultThresholds(), 4)
	a := NewAggregate(4)
	f := Frame{Type: FaceFrame, Faces: 1, Quality: 1, Liveness: 1}
	for i := range MaxFrames + 2 {
		f.Seq, f.TS = uint64(i+1), int64(i)
		f.Embedding = embedding([]float32{1, float32(i), float32(i % 7), 1})
		s.Fold(a, &f, nil)
	}
	if a.Face.Frames != MaxFrames+2 || a.Face.Verified != MaxFrames || len(a.hashes) != MaxFrames {
		t.Fatalf("frames=%d verified=%d hashes=%d", a.Face.Frames, a.Face.Verified, len(a.hashes))
	}
	// Replays of remembered frames are still caught past the bound.
	f.Seq++
	f.Embedding = embedding([]float32{1, 5, 5, 1})
	s.Fold(a, &f, nil)
	if a.Violations[ReplayedFrame].Count != 1 {
		t.Fatal("replay past the bound not caught")
	}
	var b Aggregate
	if err := b.Decode(a.AppendBinary(nil)); err != nil {
		t.Fatal(err)
	}
}

// TestFoldUnusable feeds Fold what Validate would refuse: it must not panic,
// must not verify, and must keep the aggregate encodable.
func TestFoldUnusable(t *testing.T) {
	s := NewScorer(DefaultThresholds(), 4)
	a := NewAggregate(4)
	nan := float32(math.NaN())
	frames := []Frame{
		{Seq: 1, Type: FaceFrame, Faces: 1, Quality: 1, Liveness: 1, Embedding: embedding([]float32{1, 2})},
		{Seq: 2, Type: FaceFrame, Faces: 1, Quality: nan, Liveness: nan, Embedding: embedding([]float32{1, 2, 3, 4})},
		{Seq: 3, Type: FaceFrame, Faces: -3, Quality: 2, Liveness: -1, Embedding: embedding([]float32{0, 0, 0, 0})},
		{Seq: 4, Type: FaceFrame, Faces: 1, Quality: 1, Liveness: 1, Embedding: embedding([]float32{nan, 0, 0, 1})},
		{Seq: 5, Type: DocumentFrame, Quality: nan, Liveness: 7, Embedding: nil},
		{Seq: 6, Type: 9, Faces: 1, Quality: 1, Liveness: 1},
		{Seq: 7, TS: math.MinInt64, Type: FaceFrame, Faces: 1, Quality: 1, Liveness: 1, Embedding: embedding([]float32{1, 0, 0, 0})},
		{Seq: 8, TS: math.MaxInt64, Type: FaceFrame, Faces: 1, Quality: 1, Liveness: 1, Embedding: embedding([]float32{0, 1, 0, 0})},
	}
	wrongDim := &Template{Version: 5, Vec: []float32{1, 0}}
	for i := range frames {
		s.Fold(a, &frames[i], wrongDim)
	}
	if a.Face.Verified != 0 || a.Frames() != 7 || a.Violations[FrameGap].Count != 1 {
		t.Fatalf("\n%s", a)
	}
	var b Aggregate
	if err := b.Decode(a.AppendBinary(nil)); err != nil {
		t.Fatalf("%v\n%s", err, a)
	}
	// A scorer of another dimension does not use an aggregate's embeddings...
	s8 := NewScorer(DefaultThresholds(), 8)
	f := Frame{Seq: 9, TS: math.MaxInt64, Type: FaceFrame, Faces: 1, Quality: 1, Liveness: 1, Embedding: embedding(make([]float32, 8))}
	f.Embedding[0] = 1
	s8.Fold(a, &f, nil)
	if a.Face.Verified != 0 || a.Dim() != 4 {
		t.Fatal("mismatched dimension used")
	}
	// ... but adopts an empty one.
	e := NewAggregate(4)
	s8.Fold(e, &f, nil)
	if e.Dim() != 8 || e.Face.Verified != 1 {
		t.Fatalf("empty aggregate not adopted: dim %d", e.Dim())
	}
	// An out-of-range dimension makes nothing usable, and nothing panics.
	for _, d := range []int{-1, 0, MaxDim + 1} {
		s := NewScorer(DefaultThresholds(), d)
		a := NewAggregate(d)
		s.Fold(a, &f, nil)
		if a.Face.Verified != 0 || s.Enroll([]Frame{f}, nil, 1, &Template{}) != RefusedTooFewFrames {
			t.Fatalf("dim %d", d)
		}
	}
}

func TestEnrollLeavesDstOnRefusal(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	face := randVec(r, 16)
	var frames []Frame
	for i := range 6 {
		frames = append(frames, Frame{Seq: uint64(i), TS: int64(i * 100), Type: FaceFrame, Faces: 1, Quality: 1, Liveness: 1,
			Embedding: embedding(jitter(r, face, 0.1))})
	}
	s := NewScorer(DefaultThresholds(), 16)
	dst := Template{Version: 1, Vec: []float32{1}}
	if got := s.Enroll(frames[:4], nil, 2, &dst); got != RefusedTooFewFrames || dst.Version != 1 || len(dst.Vec) != 1 {
		t.Fatalf("%q %+v", got, dst)
	}
	if got := s.Enroll(frames, nil, 2, &dst); got != Enrolled || dst.Version != 2 || len(dst.Vec) != 16 {
		t.Fatalf("%q %+v", got, dst)
	}
	if !nearOne(float64(Dot(dst.Vec, dst.Vec))) || Cosine(dst.Vec, face) < 0.99 {
		t.Fatalf("template %v", dst.Vec)
	}
	// The template decodes as a template.
	var back Template
	if err := back.Decode(dst.AppendBinary(nil)); err != nil {
		t.Fatal(err)
	}
	// Re-enrollment against itself is accepted.
	cur := back
	if got := s.Enroll(frames, &cur, 3, &dst); got != Enrolled {
		t.Fatalf("re-enroll: %q", got)
	}
}

// TestFoldUnreadable: a frame that cannot be read counts as an unverified
// face frame, so it lowers the verified ratio instead of vanishing from it.
func TestFoldUnreadable(t *testing.T) {
	s := NewScorer(DefaultThresholds(), 4)
	a := NewAggregate(4)
	s.FoldUnreadable(a)
	if a.Face.Frames != 1 || a.Face.Verified != 0 || a.Frames() != 1 {
		t.Fatalf("frames=%d verified=%d", a.Face.Frames, a.Face.Verified)
	}
	if s.Thresholds().Matches(a.Face.Verified, a.Face.Frames) {
		t.Fatal("an unreadable frame made a match")
	}
}
