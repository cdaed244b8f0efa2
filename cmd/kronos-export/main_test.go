package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	out := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		code     int
		stderr   string // substring of stderr
		wantFile string // file that must exist under out
	}{
		{"random tiny", []string{"--random", "tiny", "--name", "t", "--out", out}, 0, "", "t-step/1/model.onnx"},
		{"local folders", []string{"--tokenizer", "../../testdata/conformance/models/tiny/tokenizer",
			"--predictor", "../../testdata/conformance/models/tiny/predictor", "--name", "tiny", "--max-context", "64",
			"--version", "2", "--out", out}, 0, "", "tiny-s2/2/kronos.json"},
		{"no checkpoints", []string{"--name", "x", "--out", out}, 2, "--tokenizer and --predictor are required", ""},
		{"random and folders", []string{"--random", "tiny", "--tokenizer", "a", "--name", "x", "--out", out}, 2, "not both", ""},
		{"missing max context", []string{"--tokenizer", "../../testdata/conformance/models/tiny/tokenizer",
			"--predictor", "../../testdata/conformance/models/tiny/predictor", "--name", "tiny", "--out", out}, 2, "max_context", ""},
		{"no name", []string{"--random", "tiny", "--out", out}, 2, "name", ""},
		{"unknown preset", []string{"--random", "huge", "--name", "x", "--out", out}, 1, "unknown random preset", ""},
		{"missing folder", []string{"--tokenizer", filepath.Join(out, "nope", "a", "b"), "--predictor", "x", "--name", "x",
			"--max-context", "8", "--out", out}, 1, "no such folder", ""},
		{"bad flag", []string{"--frobnicate"}, 2, "flag provided but not defined", ""},
		{"extra argument", []string{"--random", "tiny", "--name", "x", "extra"}, 2, "unexpected arguments", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tt.stderr)
			}
			if tt.wantFile != "" {
				if _, err := os.Stat(filepath.Join(out, tt.wantFile)); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
