package preprocess

import "math"

// Quantile returns the q-th quantile (0 <= q <= 1) of sorted, which must be
// in ascending order without NaN, by linear interpolation: NumPy's default
// method ("linear", type 7 of Hyndman and Fan).
//
// With h = q*(n-1), i = floor(h) and g = h - i, the result is the
// interpolation between sorted[i] and sorted[i+1] in NumPy's form: a +
// (b-a)*g for g < 0.5 and b - (b-a)*(1-g) otherwise, which is exact at both
// ends and monotone in q. It is computed in float64 and rounded to float32,
// so it equals np.quantile(np.float64(sorted), [q]) rounded to float32. An
// empty slice or a q outside [0, 1] (or NaN) gives NaN.
func Quantile(sorted []float32, q float64) float32 {
	n := len(sorted)
	if n == 0 || !(q >= 0 && q <= 1) {
		return float32(math.NaN())
	}
	h := q * float64(n-1)
	lo := math.Floor(h)
	i := int(lo)
	if i >= n-1 {
		return sorted[n-1]
	}
	a, b := float64(sorted[i]), float64(sorted[i+1])
	g := h - lo
	diff := b - a
	if g >= 0.5 {
		return float32(b - float64(diff*(1-g)))
	}
	return float32(a + float64(diff*g))
}
