package export

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

func TestLocalName(t *testing.T) {
	tests := []struct{ dir, want string }{
		{"../models/kronos-nano/predictor", "kronos-nano/predictor"},
		{"../models/kronos-nano/predictor/", "kronos-nano/predictor"},
		{"/abs/path/tok", "path/tok"},
		{"/tok", "tok"},
	}
	for _, tt := range tests {
		if got := LocalName(tt.dir); got != tt.want {
			t.Errorf("LocalName(%q) = %q, want %q", tt.dir, got, tt.want)
		}
	}
}

// TestResolveHub serves the tiny predictor from a fake hub and resolves it
// by repository id.
func TestResolveHub(t *testing.T) {
	src := tiny.modelDir("predictor")
	var requests atomic.Int32
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		prefix := "/owner/tiny-predictor/resolve/main/"
		if !strings.HasPrefix(r.URL.Path, prefix) {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, filepath.Join(src, strings.TrimPrefix(r.URL.Path, prefix)))
	}))
	defer hub.Close()
	fetch := checkpoint.FetchOptions{HubURL: hub.URL, CacheDir: t.TempDir(), Client: hub.Client()}

	c, err := Resolve(context.Background(), "owner/tiny-predictor", fetch)
	if err != nil {
		t.Fatal(err)
	}
	local, err := checkpoint.Load(src, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "owner/tiny-predictor" || c.SHA256 != local.SHA256 {
		t.Errorf("resolved %s sha %s, want owner/tiny-predictor sha %s", c.Name, c.SHA256, local.SHA256)
	}
	if requests.Load() == 0 {
		t.Error("the hub was never asked")
	}

	if _, err := Resolve(context.Background(), "owner/unknown", fetch); !errors.Is(err, infer.ErrNotFound) {
		t.Errorf("unknown repository: err = %v, want not found", err)
	}
}

func TestResolveLocal(t *testing.T) {
	c, err := Resolve(context.Background(), tiny.modelDir("tokenizer"), checkpoint.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "tiny/tokenizer" {
		t.Errorf("name %q, want tiny/tokenizer", c.Name)
	}
	empty := t.TempDir()
	if err := os.Mkdir(filepath.Join(empty, "ck"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ref  string
		kind infer.Kind
	}{
		{"", infer.KindInvalid},
		{filepath.Join(empty, "ck"), infer.KindNotFound}, // folder without config.json
		{filepath.Join(empty, "no", "such", "folder"), infer.KindNotFound},
	} {
		if _, err := Resolve(context.Background(), tt.ref, checkpoint.FetchOptions{}); infer.KindOf(err) != tt.kind {
			t.Errorf("Resolve(%q): err = %v (kind %s), want %s", tt.ref, err, infer.KindOf(err), tt.kind)
		}
	}
}
