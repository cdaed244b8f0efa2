package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		lastLine string
	}{
		{"replay both sets", []string{"-replay", "../../testdata/conformance", "../../testdata/conformance-nano"}, 0, "16 passed, 0 failed"},
		{"filter", []string{"-replay", "-run", "^tiny/(short|slide)$", "../../testdata/conformance"}, 0, "2 passed, 0 failed"},
		{"no dir", nil, 2, ""},
		{"bad flag", []string{"-nope", "x"}, 2, ""},
		{"bad pattern", []string{"-run", "(", "x"}, 2, ""},
		{"missing set", []string{"-replay", "does-not-exist"}, 1, "0 passed, 0 failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if tt.lastLine != "" && lines[len(lines)-1] != tt.lastLine {
				t.Fatalf("last line %q, want %q", lines[len(lines)-1], tt.lastLine)
			}
		})
	}
}

// TestRunFailing checks the exit status and report line of a failing case:
// a copy of tiny/short whose reference prediction was changed.
func TestRunFailing(t *testing.T) {
	src := filepath.Join("..", "..", "testdata", "conformance")
	dir := t.TempDir()
	var ix map[string]any
	readJSON(t, filepath.Join(src, "index.json"), &ix)
	ix["cases"] = ix["cases"].([]any)[:1] // tiny/short
	writeJSON(t, filepath.Join(dir, "index.json"), ix)
	var c map[string]any
	readJSON(t, filepath.Join(src, "cases", "tiny", "short.json"), &c)
	pred := c["series"].([]any)[0].(map[string]any)["prediction"].([]any)
	row := pred[4].([]any)
	row[1] = row[1].(float64) + 0.01
	if err := os.MkdirAll(filepath.Join(dir, "cases", "tiny"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(dir, "cases", "tiny", "short.json"), c)

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-replay", dir}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	want := "FAIL tiny/short: prediction (before the volume clamp)[0][4][1]: got "
	if len(lines) != 2 || !strings.HasPrefix(lines[0], want) || lines[1] != "0 passed, 1 failed" {
		t.Fatalf("output:\n%s\nwant a line starting %q, then the summary", stdout.String(), want)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
