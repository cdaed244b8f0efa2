package preprocess

// API contract (implemented by the preprocess helper; signatures are fixed,
// other packages are being written against them).

import "time"

// Columns is the column order of every candle matrix: open, high, low, close,
// volume, amount.
var Columns = [6]string{"open", "high", "low", "close", "volume", "amount"}

// Epsilon is added to the standard deviation before dividing (upstream).
const Epsilon = 1e-5

// DefaultClip is the upstream clip value for normalised inputs.
const DefaultClip = 5.0

// Candle is one input bar. Volume and Amount are nil when the caller did not
// give them; the fill rules of Fill apply per column.
type Candle struct {
	Open, High, Low, Close float64
	Volume, Amount         *float64
}

// Fill builds the float32 matrix x_filled [len(c)][6] with the upstream rules:
// if volume is missing (hasVolume false) both volume and amount are 0 (even if
// amount was given); if only amount is missing, amount = volume *
// (open+high+low+close)/4 computed in float64 per row; then every value is
// rounded to float32. hasVolume/hasAmount describe the whole column.
func Fill(c []Candle, hasVolume, hasAmount bool) []float32 { panic("TODO") }

// Stats returns the per-column mean and population standard deviation of x
// ([rows][6] row-major) in float32 with NumPy's pairwise summation, so that
// they match the reference bit for bit.
func Stats(x []float32, rows int) (mean, std [6]float32) { panic("TODO") }

// Normalize returns clip((x - mean) / (std + Epsilon), -clip, clip) in float32.
func Normalize(x []float32, rows int, mean, std [6]float32, clip float32) []float32 {
	panic("TODO")
}

// Denormalize returns x * (std + Epsilon) + mean in float32 ([rows][6]).
func Denormalize(x []float32, rows int, mean, std [6]float32) []float32 { panic("TODO") }

// TimeFeatures returns [len(ts)][5] int64 stamps: minute, hour, weekday
// (Monday = 0), day of month, month, each taken in the timestamp's own
// location/offset (the offset the caller gave).
func TimeFeatures(ts []time.Time) []int64 { panic("TODO") }

// BitsToIDs turns [n][s1Bits+s2Bits] pre-quantisation vectors into token ids:
// bit j = 1 iff q[j] > 0; s1 = sum_{j<s1Bits} bit_j 2^j, s2 = sum_j
// bit_{s1Bits+j} 2^j (first feature = least significant bit of s1).
func BitsToIDs(q []float32, n, s1Bits, s2Bits int) (s1, s2 []int64) { panic("TODO") }
