package preprocess

// Columns is the column order of every candle matrix: open, high, low, close,
// volume, amount.
var Columns = [6]string{"open", "high", "low", "close", "volume", "amount"}

// Column indices into a row of a candle matrix, in the order of Columns.
const (
	ColOpen = iota
	ColHigh
	ColLow
	ColClose
	ColVolume
	ColAmount

	// NumColumns is the width of a candle matrix.
	NumColumns
)

// NumTimeFeatures is the width of a time-feature matrix (see TimeFeatures).
const NumTimeFeatures = 5

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
