package preprocess

// Normalize returns clip((x - mean) / (std + Epsilon), -clip, clip) in float32.
//
// x is [rows][6] row-major, clip must be positive. Each step is rounded to
// float32 as in the reference, so with the mean and std of Stats the result
// equals the reference's x_norm exactly. A column with std 0 normalises to 0.
// A NaN, which only arises from non-finite input or from float32 overflow in
// the statistics of absurdly large values, becomes 0, so the output is always
// finite and within [-clip, clip]. The result is a new slice; x is not
// modified. Normalize panics if len(x) < rows*6.
func Normalize(x []float32, rows int, mean, std [6]float32, clip float32) []float32 {
	x = x[:rows*NumColumns]
	var den [NumColumns]float32
	for j := range den {
		den[j] = std[j] + Epsilon
	}
	out := make([]float32, len(x))
	for i := 0; i < len(x); i += NumColumns {
		src := x[i : i+NumColumns : i+NumColumns]
		dst := out[i : i+NumColumns : i+NumColumns]
		for j, v := range src {
			z := (v - mean[j]) / den[j]
			switch {
			case z > clip:
				z = clip
			case z < -clip:
				z = -clip
			case z != z: // NaN
				z = 0
			}
			dst[j] = z
		}
	}
	return out
}

// Denormalize returns x * (std + Epsilon) + mean in float32 ([rows][6]).
//
// The product is rounded to float32 before the addition (no fused
// multiply-add), as in the reference. The result is a new slice; x is not
// modified. Denormalize panics if len(x) < rows*6.
func Denormalize(x []float32, rows int, mean, std [6]float32) []float32 {
	x = x[:rows*NumColumns]
	var scale [NumColumns]float32
	for j := range scale {
		scale[j] = std[j] + Epsilon
	}
	out := make([]float32, len(x))
	for i := 0; i < len(x); i += NumColumns {
		src := x[i : i+NumColumns : i+NumColumns]
		dst := out[i : i+NumColumns : i+NumColumns]
		for j, v := range src {
			dst[j] = float32(v*scale[j]) + mean[j]
		}
	}
	return out
}

// ClampOutput clamps the volume and amount columns of a final prediction x
// ([rows][6], modified in place) at 0 and returns how many values it changed.
//
// The model can forecast negative volume (upstream issue Kronos#130), which
// is meaningless for a candle; prices are left alone. NaN values are not
// touched (callers must check for them separately), and -0 is kept as is.
// ClampOutput panics if len(x) < rows*6.
func ClampOutput(x []float32, rows int) (clamped int) {
	x = x[:rows*NumColumns]
	for i := 0; i < len(x); i += NumColumns {
		for _, j := range [...]int{ColVolume, ColAmount} {
			if x[i+j] < 0 {
				x[i+j] = 0
				clamped++
			}
		}
	}
	return clamped
}
