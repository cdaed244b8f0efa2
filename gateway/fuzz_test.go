package gateway

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// FuzzPredictSingle feeds arbitrary bodies to the request decoder and the
// validation. Properties: no panic; every rejection is a client error (a
// 4xx of kind invalid_input); every accepted request gives a job the
// forecaster can take (consistent lengths, finite inputs, valid params).
// Seeded from the table cases of validate_test.go.
func FuzzPredictSingle(f *testing.F) {
	for _, tc := range invalidCases {
		body := []byte(tc.raw)
		if tc.mutate != nil {
			m := baseRequest(4, 2)
			tc.mutate(m)
			body = mustJSON(f, m)
		}
		f.Add(body)
	}
	f.Add(mustJSON(f, baseRequest(4, 2)))
	f.Add([]byte(`{"candles":[{"open":1,"high":1,"low":1,"close":1}],"timestamps":["2024-06-18 11:15:00"],` +
		`"prediction_timestamps":["2024-06-18 11:20:00"],"overrides":{"seed":1,"top_k":1},"quantiles":[0.5]}`))

	o := testOptions()
	o.MaxContext = 8
	a := newTestApp(f, o, newFakeBackend())
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > int(o.MaxBodyBytes) {
			return // Fiber rejects these with 413 before the handler
		}
		r, err := decodePredict(body, a.decodeLimits())
		var p *prepared
		if err == nil {
			p, err = prepareDefault(t, a, r)
		}
		if err != nil {
			status, kind, _ := classify(err)
			if kind != infer.KindInvalid || status != 422 {
				t.Fatalf("rejection %v has kind %s and status %d, want invalid_input 422", err, kind, status)
			}
			return
		}
		j := p.job
		rows := len(j.XTime)
		if rows < 1 || rows > o.MaxContext || len(j.X) != rows*preprocess.NumColumns {
			t.Fatalf("job has %d timestamps and %d values", rows, len(j.X))
		}
		if len(j.YTime) < 1 || len(j.YTime) != len(p.predStamps) || len(j.YTime) > o.MaxPredictionSteps {
			t.Fatalf("job has %d prediction timestamps", len(j.YTime))
		}
		for _, v := range j.X {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("non-finite input value %v", v)
			}
		}
		if err := j.Params.Validate(); err != nil || j.Params.SampleCount > o.MaxSampleCount {
			t.Fatalf("params %+v: %v", j.Params, err)
		}
		for i := 1; i < len(j.YTime); i++ {
			if !j.YTime[i].After(j.YTime[i-1]) {
				t.Fatalf("prediction timestamps not increasing at %d", i)
			}
		}
		if !j.YTime[0].After(j.XTime[rows-1]) {
			t.Fatal("first prediction timestamp not after the context")
		}
	})
}

// FuzzPredictBatch feeds arbitrary bodies to the batch decoder and the
// per-item validation, as the handler runs them. Properties: no panic;
// every rejection is a 422 invalid_input whose field, when named, is
// "items", lies under "items[i]" or is an unknown top-level key; an
// accepted batch has 1..MaxBatchItems items, each a job the forecaster can
// take. Seeded from the single-request cases wrapped as items.
func FuzzPredictBatch(f *testing.F) {
	valid := mustJSON(f, baseRequest(4, 2))
	f.Add([]byte(`{"items":[` + string(valid) + `]}`))
	f.Add([]byte(`{"items":[` + string(valid) + `,` + string(valid) + `]}`))
	f.Add([]byte(`{"items":[]}`))
	f.Add([]byte(`{"items":null}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"items":[{"model":"kronos-fake","candles":[{"open":1,"high":1,"low":1,"close":1}],` +
		`"timestamps":["2024-06-18 11:15:00"],"prediction_timestamps":["2024-06-18 11:20:00"]}]}`))
	for _, tc := range invalidCases {
		body := []byte(tc.raw)
		if tc.mutate != nil {
			m := baseRequest(4, 2)
			tc.mutate(m)
			body = mustJSON(f, m)
		}
		f.Add([]byte(`{"items":[` + string(valid) + `,` + string(body) + `]}`))
	}

	o := testOptions()
	o.MaxContext = 8
	o.MaxBatchItems = 4
	a := newTestApp(f, o, newFakeBackend())
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > int(o.MaxBodyBytes) {
			return
		}
		reqs, err := decodeBatch(body, a.decodeLimits(), o.MaxBatchItems)
		var items []*prepared
		if err == nil {
			for i, r := range reqs {
				var p *prepared
				if p, err = prepareDefault(t, a, r); err != nil {
					err = itemErr(i, err)
					break
				}
				items = append(items, p)
			}
		}
		if err != nil {
			status, kind, _ := classify(err)
			if kind != infer.KindInvalid || status != 422 {
				t.Fatalf("rejection %v has kind %s and status %d, want invalid_input 422", err, kind, status)
			}
			var fe *infer.FieldError
			if errors.As(err, &fe) && fe.Field != "items" && !strings.HasPrefix(fe.Field, "items[") &&
				!strings.HasPrefix(fe.Reason, "unknown field (known fields: items)") {
				t.Fatalf("field %q of a batch error is neither under items nor an unknown key: %v", fe.Field, err)
			}
			return
		}
		if len(items) < 1 || len(items) > o.MaxBatchItems {
			t.Fatalf("accepted %d items", len(items))
		}
		for i, p := range items {
			j := p.job
			rows := len(j.XTime)
			if rows < 1 || rows > o.MaxContext || len(j.X) != rows*preprocess.NumColumns || len(j.YTime) < 1 {
				t.Fatalf("item %d: job has %d timestamps, %d values, %d steps", i, rows, len(j.X), len(j.YTime))
			}
			if err := j.Validate(); err != nil {
				t.Fatalf("item %d: job fails the forecaster's validation: %v", i, err)
			}
			if p.lease == nil || p.lease.info().Name != "kronos-fake" {
				t.Fatalf("item %d: no model", i)
			}
		}
		if cs := chunks(items, o.MaxBatchRows); len(cs) < 1 {
			t.Fatal("no chunk")
		}
	})
}
