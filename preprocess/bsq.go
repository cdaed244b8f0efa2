package preprocess

// BitsToIDs turns [n][s1Bits+s2Bits] pre-quantisation vectors into token ids:
// bit j = 1 iff q[j] > 0; s1 = sum_{j<s1Bits} bit_j 2^j, s2 = sum_j
// bit_{s1Bits+j} 2^j (first feature = least significant bit of s1).
//
// This is the binary spherical quantiser's sign step: the L2 normalisation
// before it does not change a sign, so q may be either the normalised or the
// raw quant_embed output. A zero (or NaN) feature gives bit 0. The bit counts
// must be in 0..62; BitsToIDs panics if len(q) < n*(s1Bits+s2Bits). The
// results are new slices of length n owned by the caller.
func BitsToIDs(q []float32, n, s1Bits, s2Bits int) (s1, s2 []int64) {
	if s1Bits < 0 || s2Bits < 0 || s1Bits > 62 || s2Bits > 62 {
		panic("preprocess: BitsToIDs: bit counts must be in 0..62")
	}
	d := s1Bits + s2Bits
	q = q[:n*d]
	s1 = make([]int64, n)
	s2 = make([]int64, n)
	for i := range n {
		row := q[i*d : (i+1)*d : (i+1)*d]
		s1[i] = packBits(row[:s1Bits])
		s2[i] = packBits(row[s1Bits:])
	}
	return s1, s2
}

// packBits packs the signs of v into an id, v[0] being the least significant
// bit.
func packBits(v []float32) int64 {
	var id int64
	for j, x := range v {
		if x > 0 {
			id |= 1 << j
		}
	}
	return id
}
