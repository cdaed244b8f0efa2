package checkpoint

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// fakeHub serves checkpoint folders under the Hugging Face resolve layout,
// /<owner>/<name>/resolve/<revision>/<file>, and misbehaves for some repos.
type fakeHub struct {
	t     *testing.T
	repos map[string]string // "owner/name" -> folder
	token string            // required by acme/private

	mu       sync.Mutex
	requests []string          // escaped paths, in order
	auth     map[string]string // escaped path -> Authorization header
}

func newFakeHub(t *testing.T) (*fakeHub, *httptest.Server) {
	h := &fakeHub{
		t: t,
		repos: map[string]string{
			"acme/tiny":           filepath.Join(confModels, "tiny", "predictor"),
			"acme/tiny-tokenizer": filepath.Join(confModels, "tiny", "tokenizer"),
			"acme/private":        filepath.Join(confModels, "tiny", "predictor"),
			"acme/redirected":     filepath.Join(confModels, "tiny", "tokenizer"),
		},
		token: "secret",
		auth:  map[string]string{},
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv
}

func (h *fakeHub) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, p := range h.requests {
		if p == path {
			n++
		}
	}
	return n
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	h.mu.Lock()
	h.requests = append(h.requests, path)
	h.auth[path] = r.Header.Get("Authorization")
	h.mu.Unlock()

	if strings.HasPrefix(path, "/cdn/") { // redirect target
		http.ServeFile(w, r, filepath.Join(h.repos["acme/redirected"], strings.TrimPrefix(path, "/cdn/")))
		return
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(parts) != 5 || parts[2] != "resolve" {
		http.NotFound(w, r)
		return
	}
	repo, rev, file := parts[0]+"/"+parts[1], parts[3], parts[4]
	if rev != "main" && rev != "refs%2Fpr%2F1" {
		w.Header().Set("X-Error-Message", "Invalid rev id: "+rev)
		http.NotFound(w, r)
		return
	}
	switch repo {
	case "acme/private":
		if r.Header.Get("Authorization") != "Bearer "+h.token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	case "acme/redirected":
		http.Redirect(w, r, "/cdn/"+file, http.StatusFound)
		return
	case "acme/truncated": // promises more bytes than it sends
		b := mustRead(h.t, filepath.Join(h.repos["acme/tiny"], file))
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b[:len(b)/2])
		return
	case "acme/badheader": // a valid config, garbage weights
		if file == ConfigFile {
			w.Write([]byte(`{"d_model": 32}`))
			return
		}
		w.Write([]byte("\x10\x00\x00\x00\x00\x00\x00\x00not json at all!rest"))
		return
	case "acme/badconfig":
		w.Write([]byte("[1, 2]"))
		return
	case "acme/shortweights": // a valid header, data cut short, no Content-Length
		if file == ConfigFile {
			w.Write([]byte(`{}`))
			return
		}
		b := mustRead(h.t, filepath.Join(h.repos["acme/tiny"], file))
		w.Write(b[:len(b)-100])
		w.(http.Flusher).Flush() // chunked: the client cannot know the length
		return
	case "acme/stall":
		if file == ConfigFile {
			w.Write([]byte(`{}`))
			return
		}
		w.Write([]byte("\x10\x00"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	case "acme/busy":
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	dir, ok := h.repos[repo]
	if !ok {
		http.Error(w, "Repository not found", http.StatusNotFound)
		return
	}
	http.ServeFile(w, r, filepath.Join(dir, file))
}

func TestFetchDownloadsIntoCacheLayout(t *testing.T) {
	tests := []struct {
		repo, rev, token, src string
		wantDir               string // relative to the cache
	}{
		{repo: "acme/tiny", src: filepath.Join(confModels, "tiny", "predictor"), wantDir: "acme/tiny/main"},
		{repo: "acme/tiny-tokenizer", rev: "refs/pr/1", src: filepath.Join(confModels, "tiny", "tokenizer"), wantDir: "acme/tiny-tokenizer/refs/pr/1"},
		{repo: "acme/private", token: "secret", src: filepath.Join(confModels, "tiny", "predictor"), wantDir: "acme/private/main"},
		{repo: "acme/redirected", src: filepath.Join(confModels, "tiny", "tokenizer"), wantDir: "acme/redirected/main"},
	}
	for _, tc := range tests {
		t.Run(tc.repo, func(t *testing.T) {
			_, srv := newFakeHub(t)
			cache := t.TempDir()
			dir, err := Fetch(context.Background(), FetchOptions{HubURL: srv.URL + "/", Repo: tc.repo, Revision: tc.rev, CacheDir: cache, Token: tc.token})
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(cache, filepath.FromSlash(tc.wantDir)); dir != want {
				t.Errorf("dir %s, want %s", dir, want)
			}
			for _, f := range []string{ConfigFile, WeightsFile} {
				if string(mustRead(t, filepath.Join(dir, f))) != string(mustRead(t, filepath.Join(tc.src, f))) {
					t.Errorf("%s differs from the served file", f)
				}
			}
			if _, err := Load(dir, tc.repo); err != nil {
				t.Errorf("Load of the fetched folder: %v", err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 2 {
				t.Errorf("cache folder holds %d entries, want 2 (no temporary files left)", len(entries))
			}
		})
	}
}

func TestFetchSendsTokenAndSkipsCachedFiles(t *testing.T) {
	hub, srv := newFakeHub(t)
	cache := t.TempDir()
	opt := FetchOptions{HubURL: srv.URL, Repo: "acme/tiny", CacheDir: cache, Token: "tok123"}
	if _, err := Fetch(context.Background(), opt); err != nil {
		t.Fatal(err)
	}
	cfgPath := "/acme/tiny/resolve/main/" + ConfigFile
	if got := hub.auth[cfgPath]; got != "Bearer tok123" {
		t.Errorf("Authorization %q, want %q", got, "Bearer tok123")
	}
	if _, err := Fetch(context.Background(), opt); err != nil {
		t.Fatal(err)
	}
	if n := hub.count(cfgPath); n != 1 {
		t.Errorf("config.json requested %d times, want 1 (cached the second time)", n)
	}
	// A missing file is fetched again, the cached one is not.
	if err := os.Remove(filepath.Join(cache, "acme", "tiny", "main", WeightsFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), FetchOptions{HubURL: srv.URL, Repo: "acme/tiny", CacheDir: cache}); err != nil {
		t.Fatal(err)
	}
	wPath := "/acme/tiny/resolve/main/" + WeightsFile
	if n, c := hub.count(wPath), hub.count(cfgPath); n != 2 || c != 1 {
		t.Errorf("weights requested %d times and config %d times, want 2 and 1", n, c)
	}
	if got := hub.auth[wPath]; got != "" {
		t.Errorf("Authorization %q sent without a token", got)
	}
}

func TestFetchErrors(t *testing.T) {
	tests := []struct {
		name    string
		opt     FetchOptions
		kind    infer.Kind
		message []string // substrings of the error
	}{
		{"unknown repo", FetchOptions{Repo: "acme/nope"}, infer.KindNotFound, []string{"acme/nope@main config.json", "404", "unknown repository or revision"}},
		{"unknown revision", FetchOptions{Repo: "acme/tiny", Revision: "v9"}, infer.KindNotFound, []string{"acme/tiny@v9", "Invalid rev id"}},
		{"private without token", FetchOptions{Repo: "acme/private"}, infer.KindUnauthorized, []string{"401", "HF_TOKEN"}},
		{"private with a wrong token", FetchOptions{Repo: "acme/private", Token: "wrong"}, infer.KindUnauthorized, []string{"401", "token (HF_TOKEN) was refused"}},
		{"truncated body", FetchOptions{Repo: "acme/truncated"}, infer.KindUnavailable, []string{"acme/truncated@main config.json"}},
		{"bad safetensors header", FetchOptions{Repo: "acme/badheader"}, infer.KindInvalid, []string{"model.safetensors: downloaded file is not valid"}},
		{"config not an object", FetchOptions{Repo: "acme/badconfig"}, infer.KindInvalid, []string{"config.json: downloaded file is not valid"}},
		{"weights cut short without length", FetchOptions{Repo: "acme/shortweights"}, infer.KindInvalid, []string{"model.safetensors: downloaded file is not valid", "outside the"}},
		{"weights over the limit", FetchOptions{Repo: "acme/tiny", MaxWeightsBytes: 1000}, infer.KindTooLarge, []string{"over the limit of 1000"}},
		{"chunked weights over the limit", FetchOptions{Repo: "acme/shortweights", MaxWeightsBytes: 1000}, infer.KindTooLarge, []string{"more than the limit of 1000"}},
		{"stalled download", FetchOptions{Repo: "acme/stall", StallTimeout: 50 * time.Millisecond}, infer.KindUnavailable, []string{"no data received"}},
		{"server unavailable", FetchOptions{Repo: "acme/busy"}, infer.KindUnavailable, []string{"503"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newFakeHub(t)
			cache := t.TempDir()
			tc.opt.HubURL, tc.opt.CacheDir = srv.URL, cache
			_, err := Fetch(context.Background(), tc.opt)
			wantKind(t, err, tc.kind)
			for _, s := range tc.message {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if tc.opt.Token != "" && strings.Contains(err.Error(), tc.opt.Token) {
				t.Errorf("error %q leaks the token", err)
			}
			// Nothing partial is left in the cache.
			rev := tc.opt.Revision
			if rev == "" {
				rev = "main"
			}
			if _, err := os.Stat(filepath.Join(cache, tc.opt.Repo, rev, WeightsFile)); err == nil {
				t.Error("model.safetensors was cached")
			}
			filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
				if err == nil && strings.HasSuffix(p, ".tmp") {
					t.Errorf("temporary file %s left behind", p)
				}
				return nil
			})
		})
	}
}

func TestFetchRejectsUnsafeIDsWithoutRequests(t *testing.T) {
	tests := []struct{ repo, rev string }{
		{"", ""},
		{"tiny", ""},
		{"acme/tiny/extra", ""},
		{"../tiny", ""},
		{"acme/..", ""},
		{"acme/a..b", ""},
		{"/etc/passwd", ""},
		{"acme/.hidden", ""},
		{"acme/-flag", ""},
		{`acme\..\x/y`, ""},
		{"acme/ti ny", ""},
		{"acme/tiny%2F..", ""},
		{"acme/tiny", "../../x"},
		{"acme/tiny", "/abs"},
		{"acme/tiny", "a//b"},
		{"acme/tiny", "v1/.."},
		{"acme/" + strings.Repeat("n", 97), ""},
	}
	hub, srv := newFakeHub(t)
	for _, tc := range tests {
		t.Run(tc.repo+"@"+tc.rev, func(t *testing.T) {
			_, err := Fetch(context.Background(), FetchOptions{HubURL: srv.URL, Repo: tc.repo, Revision: tc.rev, CacheDir: t.TempDir()})
			wantKind(t, err, infer.KindInvalid)
		})
	}
	if len(hub.requests) != 0 {
		t.Errorf("invalid ids made %d requests", len(hub.requests))
	}
	for _, ok := range []string{"NeoQuasar/Kronos-small", "NeoQuasar/Kronos-Tokenizer-base", "a_b/c.d-1"} {
		if err := ValidateRepo(ok); err != nil {
			t.Errorf("ValidateRepo(%q): %v", ok, err)
		}
	}
}

func TestFetchHonoursContext(t *testing.T) {
	_, srv := newFakeHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Fetch(ctx, FetchOptions{HubURL: srv.URL, Repo: "acme/tiny", CacheDir: t.TempDir()})
	wantKind(t, err, infer.KindCanceled)

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = Fetch(ctx, FetchOptions{HubURL: srv.URL, Repo: "acme/stall", CacheDir: t.TempDir()})
	wantKind(t, err, infer.KindTimeout)
}

func TestFetchRejectsBadHubURL(t *testing.T) {
	for _, u := range []string{"ftp://hub", "huggingface.co", "http://"} {
		_, err := Fetch(context.Background(), FetchOptions{HubURL: u, Repo: "acme/tiny", CacheDir: t.TempDir()})
		wantKind(t, err, infer.KindInvalid)
	}
}
