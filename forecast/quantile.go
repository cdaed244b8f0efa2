package forecast

import (
	"slices"

	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// quantiles fills out[q][t][c] (out[q] is [P][6]) with the qs quantiles of
// paths [S][P][6] per step t and column c (preprocess.Quantile: linear
// interpolation, NumPy's default). scratch must hold S values.
func quantiles(paths []float32, s, p int, qs []float64, out [][]float32, scratch []float32) {
	const w = 6
	for t := range p {
		for c := range w {
			vals := scratch[:s]
			for k := range s {
				vals[k] = paths[(k*p+t)*w+c]
			}
			slices.Sort(vals)
			for qi, q := range qs {
				out[qi][t*w+c] = preprocess.Quantile(vals, q)
			}
		}
	}
}
