// Package preprocess turns candles into the model's inputs and the model's
// normalised output back into candles, in pure Go, reproducing the numerics of
// the original PyTorch/NumPy Kronos predictor bit for bit where the reference
// is exact (see testdata/conformance/README.md, "Input preparation", "BSQ
// token ids" and "Final decode").
//
// Every function is pure: no I/O, no global mutable state, and no
// dependencies beyond the standard library and internal/infer. Matrices are
// row-major float32 slices; a candle matrix [rows][6] has the columns of
// Columns (open, high, low, close, volume, amount).
//
// # Pipeline
//
// A request goes through the package in this order:
//
//  1. ValidateCandles rejects what the model cannot take (non-finite or
//     non-positive prices, negative volume, inconsistent OHLC, a volume or
//     amount column given for some candles only) with an *infer.FieldError
//     that names the field as a JSON path, e.g. "candles[17].high".
//  2. Fill builds x_filled [L][6] with the upstream fill rules for a missing
//     volume or amount column and rounds to float32.
//  3. Stats computes the per-column mean and population standard deviation
//     with NumPy's pairwise summation, so that they equal NumPy's np.mean and
//     np.std of the reference exactly.
//  4. Normalize gives clip((x - mean) / (std + Epsilon), -clip, clip).
//  5. TimeFeatures gives the five time-table indices (minute, hour, weekday
//     with Monday = 0, day of month, month) of the context and prediction
//     timestamps, in each timestamp's own offset.
//  6. BitsToIDs turns the tokenizer's pre-quantisation vectors into BSQ token
//     ids (s1, s2).
//  7. After sampling and decoding, Denormalize maps the normalised prediction
//     back, ClampOutput clamps negative volume and amount forecasts to 0, and
//     Quantile summarises sample paths.
//
// # Floating point
//
// All arithmetic that the reference does in float32 is done in float32 here,
// with explicit conversions wherever a compiler could otherwise fuse a
// multiply and an add (the Go spec allows fusion on some architectures), so
// the results are the same on amd64 and arm64.
package preprocess
