package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunTiny runs the whole benchmark harness on the tiny preset. It fails if
// the KV-cache and recompute paths disagree (Run cross-checks them) or if a
// scenario produces the wrong number of values.
func TestRunTiny(t *testing.T) {
	if os.Getenv("KRONOS_ORT_LIB") == "" {
		t.Skip("KRONOS_ORT_LIB is not set (run `make ort`, or use `make test`)")
	}
	rep, err := Run(context.Background(), Options{
		Preset:    "tiny",
		CSV:       filepath.Join("..", "testdata", "data", "regression_input.csv"),
		Scenarios: []Scenario{{40, 8}, {60, 12}}, // the second slides past max_context 64
		Runs:      1,
		WorkDir:   t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 || rep.Rows[1].Recompute.Median <= 0 || rep.Rows[1].KV.Median <= 0 {
		t.Fatalf("incomplete report: %+v", rep.Rows)
	}
	md := rep.Markdown()
	for _, want := range []string{"| 40->8 |", "| 60->12 |", "recompute / KV"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
