package preprocess

// Fill builds the float32 matrix x_filled [len(c)][6] with the upstream rules:
// if volume is missing (hasVolume false) both volume and amount are 0 (even if
// amount was given); if only amount is missing, amount = volume *
// (open+high+low+close)/4 computed in float64 per row; then every value is
// rounded to float32. hasVolume/hasAmount describe the whole column.
//
// The price sum is formed left to right, ((open+high)+low)+close, as pandas'
// row mean does. A nil Volume or Amount in a column declared present counts
// as 0; ValidateCandles rejects such input, so validated candles never reach
// that case. The result is a new slice owned by the caller.
func Fill(c []Candle, hasVolume, hasAmount bool) []float32 {
	x := make([]float32, len(c)*NumColumns)
	for i := range c {
		k := &c[i]
		row := x[i*NumColumns : (i+1)*NumColumns : (i+1)*NumColumns]
		row[ColOpen] = float32(k.Open)
		row[ColHigh] = float32(k.High)
		row[ColLow] = float32(k.Low)
		row[ColClose] = float32(k.Close)
		if !hasVolume {
			continue // volume and amount stay 0
		}
		vol := deref(k.Volume)
		row[ColVolume] = float32(vol)
		if hasAmount {
			row[ColAmount] = float32(deref(k.Amount))
			continue
		}
		avg := (((k.Open + k.High) + k.Low) + k.Close) / 4
		row[ColAmount] = float32(vol * avg)
	}
	return x
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
