package preprocess

import "math"

// pairwiseBlock is NumPy's PW_BLOCKSIZE: sums of up to this many elements use
// eight interleaved accumulators, longer ones are split in two.
const pairwiseBlock = 128

// Stats returns the per-column mean and population standard deviation of x
// ([rows][6] row-major) in float32 with NumPy's pairwise summation, so that
// they match the reference bit for bit.
//
// mean = sum / rows and std = sqrt(sum((x - mean)^2) / rows), with every
// difference, square, sum, quotient and the square root rounded to float32,
// as np.mean and np.std (ddof 0) do on a float32 column. With rows == 0 the
// results are NaN, as in NumPy. Stats panics if len(x) < rows*6.
func Stats(x []float32, rows int) (mean, std [6]float32) {
	x = x[:rows*NumColumns]
	col := make([]float32, rows)
	n := float32(rows)
	for j := range NumColumns {
		for i := range rows {
			col[i] = x[i*NumColumns+j]
		}
		m := pairwiseSum(col) / n
		for i, v := range col {
			d := v - m
			col[i] = float32(d * d) // explicit rounding: no fused multiply-add downstream
		}
		v := pairwiseSum(col) / n
		mean[j] = m
		std[j] = float32(math.Sqrt(float64(v))) // sqrt of a float32 via float64 is correctly rounded
	}
	return mean, std
}

// pairwiseSum is NumPy's float32 pairwise summation (pairwise_sum in
// numpy/_core/src/umath/loops_utils.h.src) over a contiguous slice.
func pairwiseSum(a []float32) float32 {
	n := len(a)
	switch {
	case n < 8:
		var s float32
		for _, v := range a {
			s += v
		}
		return s
	case n <= pairwiseBlock:
		var r [8]float32
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			b := a[i : i+8 : i+8]
			r[0] += b[0]
			r[1] += b[1]
			r[2] += b[2]
			r[3] += b[3]
			r[4] += b[4]
			r[5] += b[5]
			r[6] += b[6]
			r[7] += b[7]
		}
		s := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			s += a[i]
		}
		return s
	default:
		m := n / 2
		m -= m % 8
		return pairwiseSum(a[:m]) + pairwiseSum(a[m:])
	}
}
