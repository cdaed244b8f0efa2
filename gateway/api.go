package gateway

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// Routes.
const (
	RouteHealthz       = "/v1/healthz"
	RoutePredictSingle = "/v1/predict/single"
)

// maxQuantiles bounds the quantiles one request may ask for.
const maxQuantiles = 32

// maxSeriesIDLen bounds series_id, which is echoed in the response.
const maxSeriesIDLen = 256

// predictRequest is a decoded POST /v1/predict/single body. The field names
// of the JSON body are the seed service's:
//
//	{
//	  "series_id": "BTC-USD",                      optional, echoed back
//	  "model": "kronos-small",                     optional, one of the loaded models
//	  "candles": [{"open":1,"high":2,"low":0.5,"close":1.5,"volume":10,"amount":15}],
//	  "timestamps": ["2025-01-01T09:00:00Z"],      one per candle
//	  "prediction_timestamps": ["2025-01-01T09:05:00Z"],
//	  "overrides": {"temperature":1, "top_k":0, "top_p":0.9, "sample_count":1, "seed":42, "pred_len":1},
//	  "quantiles": [0.1, 0.5, 0.9],                optional
//	  "return_samples": false                      optional
//	}
//
// Unknown keys are rejected (422 naming the key), so a misspelt override is
// never silently ignored.
type predictRequest struct {
	SeriesID             *string
	Model                string // "" = the default model
	Candles              []preprocess.Candle
	Timestamps           []stamp
	PredictionTimestamps []stamp
	Overrides            overrides
	Quantiles            []float64
	ReturnSamples        bool

	// Presence of the required keys.
	hasCandles, hasTimestamps, hasPrediction bool
}

// overrides are the per-request sampling parameters; nil means the default
// from Options.
type overrides struct {
	Temperature, TopP          *float64
	TopK, SampleCount, PredLen *int64
	Seed                       *uint64
}

// predictResponse is the body of a successful POST /v1/predict/single.
type predictResponse struct {
	SeriesID *string `json:"series_id"`
	// Prediction is the mean path, one point per prediction timestamp.
	Prediction []point `json:"prediction"`
	// Model, ModelVersion and TokenizerVersion identify the weights.
	Model            string `json:"model"`
	ModelVersion     string `json:"model_version"`
	TokenizerVersion string `json:"tokenizer_version"`
	// Seed is the seed used; send it back as overrides.seed to replay.
	Seed uint64 `json:"seed"`
	// ContextUsed is the number of candles that conditioned the forecast
	// (at most the model's context; earlier candles are dropped).
	ContextUsed int `json:"context_used"`
	SampleCount int `json:"sample_count"`
	// Quantiles holds one path per requested quantile, in request order.
	Quantiles []quantilePath `json:"quantiles,omitempty"`
	// Samples holds every sample path when return_samples is true.
	Samples [][]point `json:"samples,omitempty"`
}

// quantilePath is the q-quantile of the sample paths at every step and
// column.
type quantilePath struct {
	Quantile   float64 `json:"quantile"`
	Prediction []point `json:"prediction"`
}

// point is one forecast candle.
type point struct {
	Timestamp string  `json:"timestamp"`
	Open      float32 `json:"-"`
	High      float32 `json:"-"`
	Low       float32 `json:"-"`
	Close     float32 `json:"-"`
	Volume    float32 `json:"-"`
	Amount    float32 `json:"-"`
}

// MarshalJSON writes the values of p with float32 precision (the shortest
// text that reads back as the same float32: 11.27, not 11.270000457763672).
func (p point) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 160)
	b = append(b, `{"timestamp":`...)
	ts, err := json.Marshal(p.Timestamp)
	if err != nil {
		return nil, err
	}
	b = append(b, ts...)
	for _, f := range []struct {
		name string
		v    float32
	}{{"open", p.Open}, {"high", p.High}, {"low", p.Low}, {"close", p.Close}, {"volume", p.Volume}, {"amount", p.Amount}} {
		b = append(b, `,"`...)
		b = append(b, f.name...)
		b = append(b, `":`...)
		b = appendFloat32(b, f.v)
	}
	return append(b, '}'), nil
}

// appendFloat32 formats v like encoding/json formats a float32: plain
// decimal notation except for very small or very large magnitudes. v must
// be finite.
func appendFloat32(b []byte, v float32) []byte {
	abs := math.Abs(float64(v))
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, float64(v), format, -1, 32)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// points pairs the prediction timestamps with rows of a [P][6] matrix.
func points(stamps []stamp, rows []float32) []point {
	out := make([]point, len(stamps))
	for i, s := range stamps {
		r := rows[i*preprocess.NumColumns : (i+1)*preprocess.NumColumns]
		out[i] = point{
			Timestamp: s.String(),
			Open:      r[preprocess.ColOpen], High: r[preprocess.ColHigh],
			Low: r[preprocess.ColLow], Close: r[preprocess.ColClose],
			Volume: r[preprocess.ColVolume], Amount: r[preprocess.ColAmount],
		}
	}
	return out
}

// healthResponse is the body of GET /v1/healthz.
type healthResponse struct {
	Status           string `json:"status"`
	Model            string `json:"model"`
	ModelVersion     string `json:"model_version"`
	TokenizerVersion string `json:"tokenizer_version"`
	Checkpoint       string `json:"checkpoint"`
	// RepositoryVersion is the model-repository version directory served.
	RepositoryVersion string `json:"repository_version"`
	Backend           string `json:"backend"`
	Device            string `json:"device"`
}

// healthz answers liveness: 200 while the process serves requests.
func (a *App) healthz(c *fiber.Ctx) error {
	info := a.backend.Info()
	return sendJSON(c, healthResponse{
		Status:            "ok",
		Model:             info.Name,
		ModelVersion:      info.ModelVersion,
		TokenizerVersion:  info.TokenizerVersion,
		Checkpoint:        info.Checkpoint,
		RepositoryVersion: info.Version,
		Backend:           info.Backend,
		Device:            info.Device,
	})
}

// predictSingle serves POST /v1/predict/single.
func (a *App) predictSingle(c *fiber.Ctx) error {
	if a.draining.Load() {
		return errDraining
	}
	if err := checkEncoding(c); err != nil {
		return err
	}
	// The raw body: Fiber's c.Body() would inflate a compressed body without
	// any bound.
	req, err := decodePredict(c.Request().Body(), a.decodeLimits())
	if err != nil {
		return err
	}
	l, err := a.models.acquire(req.Model)
	if err != nil {
		return err
	}
	defer l.release()
	p, err := a.prepare(req, l)
	if err != nil {
		return err
	}
	a.metrics.observeInput(RoutePredictSingle, len(req.Candles))
	res, err := a.forecast(c.UserContext(), RoutePredictSingle, requestID(c), []*prepared{p})
	if err != nil {
		return err
	}
	return sendJSON(c, res[0])
}

// checkEncoding refuses compressed bodies (415).
func checkEncoding(c *fiber.Ctx) error {
	if enc := c.Get(fiber.HeaderContentEncoding); enc != "" && enc != "identity" {
		return fiber.NewError(fiber.StatusUnsupportedMediaType, "compressed request bodies are not supported")
	}
	return nil
}

// sendJSON writes v as a 200 JSON response.
func sendJSON(c *fiber.Ctx, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return infer.Wrap(infer.KindInternal, err, "encoding the response")
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(b)
}
