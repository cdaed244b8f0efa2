package conformance

import (
	"fmt"

	"github.com/kronos-gateway/kronos-gateway/forecast"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// outcome is what the runner produced for one case.
type outcome struct {
	filled  [][]float32 // per series, preprocess.Fill
	jobs    []forecast.Job
	results []forecast.Result
	trace   *forecast.Trace
}

// compare checks every field the README lists, in README order, and
// returns the checker holding the first mismatch.
func compare(c *Case, o *outcome) *checker {
	ck := &checker{}
	p := &c.Params
	mb := &c.ModelBatch
	b, s, l, pl := len(c.Series), p.SampleCount, p.Lookback, p.PredLen
	r := mb.Rows
	tr := o.trace

	// Per-series inputs.
	var (
		filled, xNorm, gotMean, gotStd          []float32
		wantFilled, wantNorm, wantMean, wantStd []float64
		xStamp, yStamp, wantXStamp, wantYStamp  []int64
		stds                                    [][]float64
	)
	for i, se := range c.Series {
		filled = append(filled, o.filled[i]...)
		wantFilled = append(wantFilled, flat2(se.XFilled)...)
		gotMean = append(gotMean, o.results[i].Mean6[:]...)
		gotStd = append(gotStd, o.results[i].Std6[:]...)
		wantMean = append(wantMean, se.Mean...)
		wantStd = append(wantStd, se.Std...)
		xNorm = append(xNorm, tr.XNorm[i]...)
		wantNorm = append(wantNorm, flat2(se.XNorm)...)
		xStamp = append(xStamp, preprocess.TimeFeatures(o.jobs[i].XTime)...)
		yStamp = append(yStamp, preprocess.TimeFeatures(o.jobs[i].YTime)...)
		wantXStamp = append(wantXStamp, flatI(se.XStamp)...)
		wantYStamp = append(wantYStamp, flatI(se.YStamp)...)
		stds = append(stds, se.Std)
	}
	ck.exactF("x_filled", []int{b, l, 6}, filled, wantFilled)
	ck.exactF("mean", []int{b, 6}, gotMean, wantMean)
	ck.exactF("std", []int{b, 6}, gotStd, wantStd)
	ck.exactF("x_norm", []int{b, l, 6}, xNorm, wantNorm)
	ck.ints("x_stamp", []int{b, l, 5}, xStamp, wantXStamp)
	ck.ints("y_stamp", []int{b, pl, 5}, yStamp, wantYStamp)

	// Encoder output and context ids, per model row (a series' rows share
	// one encoding).
	var quant []float32
	var ctxS1, ctxS2 []int64
	for row := range r {
		se := row / s
		quant = append(quant, tr.QuantInput[se]...)
		ctxS1 = append(ctxS1, tr.ContextS1[se]...)
		ctxS2 = append(ctxS2, tr.ContextS2[se]...)
	}
	d := 0
	if len(mb.QuantInput) > 0 && len(mb.QuantInput[0]) > 0 {
		d = len(mb.QuantInput[0][0])
	}
	wantQuant := flat3(mb.QuantInput)
	ck.absF("quant_input", []int{r, l, d}, quant, wantQuant, 1e-3)
	ck.signs("quant_input (signs)", []int{r, l, d}, quant, wantQuant)
	ck.ints("context_s1", []int{r, l}, ctxS1, flatI(mb.ContextS1))
	ck.ints("context_s2", []int{r, l}, ctxS2, flatI(mb.ContextS2))

	if len(tr.Steps) != pl {
		ck.fail("steps", "", fmt.Sprintf("%d steps", len(tr.Steps)), fmt.Sprintf("%d steps", pl), "exact")
		return ck
	}
	v1, v2 := len(mb.Steps[0].S1Logits[0]), len(mb.Steps[0].S2Logits[0])
	st0 := tr.Steps[0]
	ck.scaledF("initial_s1_logits", []int{r, v1}, st0.S1Logits, flat2(mb.InitialS1Logits))
	ck.scaledF("initial_context_hidden_last", []int{r, len(mb.InitialContextHiddenLast[0])}, tr.Hidden0, flat2(mb.InitialContextHiddenLast))
	ck.ints("initial_s1_argmax", []int{r}, st0.S1, mb.InitialS1Argmax)
	ck.scaledF("initial_s2_logits", []int{r, v2}, st0.S2Logits, flat2(mb.InitialS2Logits))

	for i, want := range mb.Steps {
		got := tr.Steps[i]
		name := fmt.Sprintf("steps[%d].", i)
		var win, wantWin []int64
		for row := range r {
			win = append(win, int64(got.WindowStart[row]), int64(got.WindowEnd[row]))
			wantWin = append(wantWin, int64(want.Window[0]), int64(want.Window[1]))
		}
		ck.ints(name+"window", []int{r, 2}, win, wantWin)
		ck.scaledF(name+"s1_logits", []int{r, v1}, got.S1Logits, flat2(want.S1Logits))
		ck.ints(name+"s1", []int{r}, got.S1, want.S1)
		ck.scaledF(name+"s2_logits", []int{r, v2}, got.S2Logits, flat2(want.S2Logits))
		ck.ints(name+"s2", []int{r}, got.S2, want.S2)
	}

	var gen1, gen2 []int64
	for row := range r {
		for i := range pl {
			gen1 = append(gen1, tr.Steps[i].S1[row])
			gen2 = append(gen2, tr.Steps[i].S2[row])
		}
	}
	ck.ints("generated_s1", []int{r, pl}, gen1, flatI(mb.GeneratedS1))
	ck.ints("generated_s2", []int{r, pl}, gen2, flatI(mb.GeneratedS2))

	w := mb.FinalWindow[1] - mb.FinalWindow[0]
	var widths, wantWidths []int64
	var fin1, fin2 []int64
	var decoded []float32
	for row := range r {
		widths = append(widths, int64(len(tr.FinalS1[row])))
		wantWidths = append(wantWidths, int64(w))
		fin1 = append(fin1, tr.FinalS1[row]...)
		fin2 = append(fin2, tr.FinalS2[row]...)
		decoded = append(decoded, tr.Decoded[row]...)
	}
	ck.ints("final_window (width)", []int{r}, widths, wantWidths)
	ck.ints("final_s1", []int{r, w}, fin1, flatI(mb.FinalS1))
	ck.ints("final_s2", []int{r, w}, fin2, flatI(mb.FinalS2))
	ck.scaledF("decoded", []int{r, w, 6}, decoded, flat3(mb.Decoded))

	var predsNorm, pred, unclamped []float32
	var wantPredsNorm, wantPred, wantClamped []float64
	for i, se := range c.Series {
		predsNorm = append(predsNorm, tr.PredsNorm[i]...)
		wantPredsNorm = append(wantPredsNorm, flat2(se.PredsNorm)...)
		pred = append(pred, o.results[i].Mean...)
		unclamped = append(unclamped, preprocess.Denormalize(tr.PredsNorm[i], pl, o.results[i].Mean6, o.results[i].Std6)...)
		for k, v := range flat2(se.Prediction) {
			wantPred = append(wantPred, v)
			if k%6 >= preprocess.ColVolume && v < 0 {
				v = 0 // Result.Mean clamps volume and amount at 0 (documented)
			}
			wantClamped = append(wantClamped, v)
		}
	}
	ck.scaledF("preds_norm", []int{b, pl, 6}, predsNorm, wantPredsNorm)
	ck.prediction("prediction (before the volume clamp)", []int{b, pl, 6}, unclamped, wantPred, stds)
	ck.prediction("prediction", []int{b, pl, 6}, pred, wantClamped, stds)

	for k, sf := range c.SamplingFilters {
		// The reference skips top-p whenever top_k > 0; our documented
		// semantics apply it after top-k, so reproduce the reference's
		// setting with top_p 1 (the two agree then).
		fp := forecast.Params{Temperature: sf.T, TopK: sf.TopK, TopP: sf.TopP, SampleCount: 1}
		if fp.TopK > 0 {
			fp.TopP = 1
		}
		for _, part := range []struct {
			name   string
			logits []float32
			v      int
			probs  [][]float64
			kept   [][]int64
		}{
			{"s1", st0.S1Logits, v1, sf.S1Probs, sf.S1Kept},
			{"s2", st0.S2Logits, v2, sf.S2Probs, sf.S2Kept},
		} {
			var probs []float64
			var kept, wantKept []int64
			for row := range r {
				q, err := forecast.Distribution(part.logits[row*part.v:(row+1)*part.v], fp)
				if err != nil {
					ck.fail(fmt.Sprintf("sampling_filters[%d].%s_probs", k, part.name), "", err.Error(), "a distribution", "")
					return ck
				}
				probs = append(probs, q...)
				for id, x := range q {
					if x != 0 {
						kept = append(kept, int64(id))
					}
				}
				wantKept = append(wantKept, part.kept[row]...)
				kept = append(kept, -1) // row separator
				wantKept = append(wantKept, -1)
			}
			name := fmt.Sprintf("sampling_filters[%d].%s_", k, part.name)
			ck.absF64(name+"probs", []int{r, part.v}, probs, flat2(part.probs), 1e-5)
			ck.ints(name+"kept (rows separated by -1)", []int{len(wantKept)}, kept, wantKept)
		}
	}
	return ck
}
