package forecast

import (
	"math"
	"math/rand/v2"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// MinTemperature and MaxTemperature bound Params.Temperature: below the
// minimum, logits / T overflows float32 and the draw stops being the greedy
// limit; above the maximum every distribution is uniform for practical
// purposes.
const (
	MinTemperature = 1e-6
	MaxTemperature = 1e6
)

// Validate checks the sampling parameters. It returns a *infer.FieldError
// naming the offending override ("overrides.temperature", "overrides.top_k",
// "overrides.top_p" or "overrides.sample_count"), or nil.
func (p Params) Validate() error {
	switch {
	case math.IsNaN(p.Temperature) || math.IsInf(p.Temperature, 0) || p.Temperature <= 0:
		return infer.Field("overrides.temperature", "must be a finite number > 0, got %v", p.Temperature)
	case p.Temperature < MinTemperature || p.Temperature > MaxTemperature:
		return infer.Field("overrides.temperature", "must be in [%v, %v] (use top_k 1 for greedy decoding), got %v",
			MinTemperature, MaxTemperature, p.Temperature)
	case p.TopK < 0:
		return infer.Field("overrides.top_k", "must be >= 0 (0 disables top-k), got %d", p.TopK)
	case !(p.TopP > 0 && p.TopP <= 1): // also rejects NaN
		return infer.Field("overrides.top_p", "must be in (0, 1] (1 disables top-p), got %v", p.TopP)
	case p.SampleCount < 1:
		return infer.Field("overrides.sample_count", "must be >= 1, got %d", p.SampleCount)
	}
	return nil
}

// Distribution returns the distribution Predict draws one token from, given
// one row of logits: the filters of the package documentation applied under
// p, as float64 probabilities that sum to 1, removed entries exactly 0. It
// ignores the greedy shortcut (top_k 1 gives the filtered distribution, which
// is 1 at the argmax unless the maximum is tied). p must be valid (see
// Validate); a non-finite logit is a KindInternal error. The result is a new
// slice.
func Distribution(logits []float32, p Params) ([]float64, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var s sampler
	probs, err := s.distribution(logits, &p)
	if err != nil {
		return nil, err
	}
	return append([]float64(nil), probs...), nil
}

// greedy reports whether p selects the argmax deterministically.
func (p Params) greedy() bool { return p.TopK == 1 }

// rowRNG returns the random stream of sample path `path` (0 .. SampleCount-1)
// of a job with the given seed. The stream depends on nothing else, so a
// job's draws do not change when other jobs share its session.
func rowRNG(seed uint64, path int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, splitmix64(uint64(path)+0x9e3779b97f4a7c15)))
}

// splitmix64 is the SplitMix64 finaliser, used to spread small stream
// numbers over the PCG increment space.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// sampler turns one row of logits into a token id. It owns scratch buffers
// sized to the largest vocabulary it has seen and is not safe for concurrent
// use.
type sampler struct {
	scaled []float64 // logits / T, -Inf where filtered out
	probs  []float64 // sampling distribution
	heap   []int32   // backing array of h
	h      idxHeap   // index heap ordered by (scaled desc, index asc)
}

// sample draws one id from logits under p. Greedy parameters (top_k 1) give
// the argmax (lowest index on ties) and do not consume randomness; otherwise
// exactly one Float64 is drawn from rng.
func (s *sampler) sample(logits []float32, p *Params, rng *rand.Rand) (int64, error) {
	if p.greedy() {
		return argmax(logits)
	}
	probs, err := s.distribution(logits, p)
	if err != nil {
		return 0, err
	}
	return draw(probs, rng.Float64()), nil
}

// argmax returns the index of the largest logit, the lowest index on ties.
func argmax(logits []float32) (int64, error) {
	if len(logits) == 0 {
		return 0, infer.Errorf(infer.KindInternal, "forecast: empty logits")
	}
	best := 0
	for i, v := range logits {
		if !finite32(v) {
			return 0, nonFinite("logits", i)
		}
		if v > logits[best] {
			best = i
		}
	}
	return int64(best), nil
}

// draw picks the first index whose cumulative probability exceeds u in
// [0, 1). Rounding that leaves u above the total selects the last index
// with non-zero probability.
func draw(probs []float64, u float64) int64 {
	cum, last := 0.0, 0
	for i, q := range probs {
		if q == 0 {
			continue
		}
		last = i
		cum += q
		if u < cum {
			return int64(i)
		}
	}
	return int64(last)
}

// distribution returns the filtered sampling distribution of logits under p
// (see the package documentation): logits / T; top-k (ties kept); top-p over
// the survivors; softmax. Removed entries have probability exactly 0. The
// returned slice is scratch space, valid until the next call. Arithmetic is
// float64.
func (s *sampler) distribution(logits []float32, p *Params) ([]float64, error) {
	v := len(logits)
	if v == 0 {
		return nil, infer.Errorf(infer.KindInternal, "forecast: empty logits")
	}
	if cap(s.scaled) < v {
		s.scaled = make([]float64, v)
		s.probs = make([]float64, v)
		s.heap = make([]int32, v)
	}
	scaled, probs := s.scaled[:v], s.probs[:v]
	for i, l := range logits {
		if !finite32(l) {
			return nil, nonFinite("logits", i)
		}
		scaled[i] = float64(l) / p.Temperature
	}

	if p.TopK > 0 && p.TopK < v {
		h := s.buildHeap(scaled, true)
		var kth float64
		for range p.TopK {
			kth = scaled[h.pop()]
		}
		for i, x := range scaled {
			if x < kth {
				scaled[i] = math.Inf(-1)
			}
		}
	}

	softmax(scaled, probs)
	if p.TopP < 1 {
		h := s.buildHeap(scaled, false)
		cum := 0.0
		for h.len() > 0 && cum <= p.TopP {
			// Sorted entry j is kept iff j == 0 or c[j-1] <= top_p; cum is
			// c[j-1] here (0 for j == 0).
			cum += probs[h.pop()]
		}
		if h.len() > 0 {
			// Renormalise over the kept entries: their probabilities sum
			// to cum.
			for _, i := range h.idx {
				probs[i] = 0
			}
			for i := range probs {
				probs[i] /= cum
			}
		}
	}
	return probs, nil
}

// softmax writes the softmax of x into out; -Inf entries get exactly 0. At
// least one entry of x must be finite.
func softmax(x, out []float64) {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	sum := 0.0
	for i, v := range x {
		e := 0.0
		switch {
		case math.IsInf(m, 1): // logits / T overflowed: the limit is uniform over the +Inf entries
			if math.IsInf(v, 1) {
				e = 1
			}
		case !math.IsInf(v, -1):
			e = math.Exp(v - m)
		}
		out[i] = e
		sum += e
	}
	for i := range out {
		out[i] /= sum
	}
}

// idxHeap is a binary max-heap of indices into key, ordered by key
// descending, then index ascending (the order a stable descending sort
// gives).
type idxHeap struct {
	idx []int32
	key []float64
}

// buildHeap heapifies the indices of scaled (all of them, or only the finite
// ones when all is false) in O(n).
func (s *sampler) buildHeap(scaled []float64, all bool) *idxHeap {
	idx := s.heap[:0]
	for i, x := range scaled {
		if all || !math.IsInf(x, -1) {
			idx = append(idx, int32(i))
		}
	}
	s.heap = idx
	h := &s.h
	*h = idxHeap{idx: idx, key: scaled}
	for i := len(idx)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	return h
}

func (h *idxHeap) len() int { return len(h.idx) }

func (h *idxHeap) before(a, b int32) bool {
	ka, kb := h.key[a], h.key[b]
	return ka > kb || (ka == kb && a < b)
}

func (h *idxHeap) down(i int) {
	n := len(h.idx)
	for {
		best, l, r := i, 2*i+1, 2*i+2
		if l < n && h.before(h.idx[l], h.idx[best]) {
			best = l
		}
		if r < n && h.before(h.idx[r], h.idx[best]) {
			best = r
		}
		if best == i {
			return
		}
		h.idx[i], h.idx[best] = h.idx[best], h.idx[i]
		i = best
	}
}

// pop removes and returns the first index in order.
func (h *idxHeap) pop() int32 {
	top := h.idx[0]
	last := len(h.idx) - 1
	h.idx[0] = h.idx[last]
	h.idx = h.idx[:last]
	if last > 0 {
		h.down(0)
	}
	return top
}

func finite32(v float32) bool {
	f := float64(v)
	return !math.IsNaN(f) && !math.IsInf(f, 0)
}

func nonFinite(what string, i int) error {
	return infer.Errorf(infer.KindInternal, "forecast: backend returned a non-finite value in %s at index %d", what, i)
}
