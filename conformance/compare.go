package conformance

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Mismatch is the first value of a case that is out of tolerance.
type Mismatch struct {
	Field     string // README name, e.g. "steps[3].s1_logits"
	Index     string // position inside the field, e.g. "[0][5]"; "" for a shape error
	Got, Want string
	Tolerance string // "exact", "abs 0.0001", ...
}

func (m *Mismatch) String() string {
	return fmt.Sprintf("%s%s: got %s, want %s, tolerance %s", m.Field, m.Index, m.Got, m.Want, m.Tolerance)
}

// checker compares fields in order and keeps the first mismatch.
type checker struct {
	first  *Mismatch
	fields int // number of fields compared
}

func (c *checker) fail(field, index, got, want, tol string) {
	if c.first == nil {
		c.first = &Mismatch{Field: field, Index: index, Got: got, Want: want, Tolerance: tol}
	}
}

// shapeOK checks that got has as many values as the shape says.
func (c *checker) shapeOK(field string, shape []int, n int) bool {
	c.fields++
	want := 1
	for _, d := range shape {
		want *= d
	}
	if n != want {
		c.fail(field, "", fmt.Sprintf("%d values", n), fmt.Sprintf("%d values %v", want, shape), "shape")
		return false
	}
	return true
}

// index formats flat index i of an array of the given shape as "[a][b]...".
func index(shape []int, i int) string {
	parts := make([]string, len(shape))
	for k := len(shape) - 1; k >= 0; k-- {
		parts[k] = "[" + strconv.Itoa(i%shape[k]) + "]"
		i /= shape[k]
	}
	return strings.Join(parts, "")
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'g', 9, 64) }

// exactF compares float32 values bit for bit (want holds float32 values
// written exactly).
func (c *checker) exactF(field string, shape []int, got []float32, want []float64) {
	if !c.shapeOK(field, shape, len(got)) || len(want) != len(got) {
		return
	}
	for i, g := range got {
		if g != float32(want[i]) {
			c.fail(field, index(shape, i), fmtF(float64(g)), fmtF(want[i]), "exact")
			return
		}
	}
}

// absF compares with an absolute tolerance.
func (c *checker) absF(field string, shape []int, got []float32, want []float64, tol float64) {
	if !c.shapeOK(field, shape, len(got)) || len(want) != len(got) {
		return
	}
	for i, g := range got {
		if d := math.Abs(float64(g) - want[i]); !(d <= tol) {
			c.fail(field, index(shape, i), fmtF(float64(g)), fmtF(want[i]), "abs "+fmtF(tol))
			return
		}
	}
}

// absF64 is absF for float64 values.
func (c *checker) absF64(field string, shape []int, got, want []float64, tol float64) {
	if !c.shapeOK(field, shape, len(got)) || len(want) != len(got) {
		return
	}
	for i, g := range got {
		if d := math.Abs(g - want[i]); !(d <= tol) {
			c.fail(field, index(shape, i), fmtF(g), fmtF(want[i]), "abs "+fmtF(tol))
			return
		}
	}
}

// scaledF compares with tolerance 1e-4 * scale, scale = max(1, max |want|)
// over the field.
func (c *checker) scaledF(field string, shape []int, got []float32, want []float64) {
	scale := 1.0
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	c.absF(field, shape, got, want, 1e-4*scale)
}

// signs checks that got > 0 exactly where want > 0.
func (c *checker) signs(field string, shape []int, got []float32, want []float64) {
	if !c.shapeOK(field, shape, len(got)) || len(want) != len(got) {
		return
	}
	for i, g := range got {
		if (g > 0) != (want[i] > 0) {
			c.fail(field, index(shape, i), fmtF(float64(g)), fmtF(want[i]), "same sign")
			return
		}
	}
}

// ints compares ids exactly.
func (c *checker) ints(field string, shape []int, got, want []int64) {
	if !c.shapeOK(field, shape, len(got)) || len(want) != len(got) {
		return
	}
	for i, g := range got {
		if g != want[i] {
			c.fail(field, index(shape, i), strconv.FormatInt(g, 10), strconv.FormatInt(want[i], 10), "exact")
			return
		}
	}
}

// prediction applies the README's per-column rule: |got - want| <= 1e-4 *
// (|want| + std_c + 1e-5), with std per series [B][6].
func (c *checker) prediction(field string, shape []int, got []float32, want []float64, std [][]float64) {
	if !c.shapeOK(field, shape, len(got)) || len(want) != len(got) {
		return
	}
	per := len(got) / len(std)
	for i, g := range got {
		sd := std[i/per][i%6]
		tol := 1e-4 * (math.Abs(want[i]) + sd + 1e-5)
		if d := math.Abs(float64(g) - want[i]); !(d <= tol) {
			c.fail(field, index(shape, i), fmtF(float64(g)), fmtF(want[i]), "1e-4*(|ref|+std+1e-5) = "+fmtF(tol))
			return
		}
	}
}

// flat helpers.

func flat2(x [][]float64) []float64 {
	var out []float64
	for _, r := range x {
		out = append(out, r...)
	}
	return out
}

func flat3(x [][][]float64) []float64 {
	var out []float64
	for _, r := range x {
		out = append(out, flat2(r)...)
	}
	return out
}

func flatI(x [][]int64) []int64 {
	var out []int64
	for _, r := range x {
		out = append(out, r...)
	}
	return out
}

func to32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}
