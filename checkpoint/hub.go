package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Hub download defaults (see FetchOptions).
const (
	DefaultHubURL          = "https://huggingface.co"
	DefaultRevision        = "main"
	DefaultMaxWeightsBytes = 4 << 30 // 4 GiB
	DefaultStallTimeout    = 60 * time.Second
	// MaxConfigBytes bounds a downloaded config.json.
	MaxConfigBytes = 1 << 20
)

// FetchOptions says which checkpoint Fetch downloads and how. The zero value
// of every field but Repo selects its documented default.
type FetchOptions struct {
	// HubURL is the hub's base URL; "" means DefaultHubURL. Files are fetched
	// from <HubURL>/<Repo>/resolve/<Revision>/<file>.
	HubURL string
	// Repo is the repository id "owner/name", e.g. "NeoQuasar/Kronos-small"
	// (required; see ValidateRepo).
	Repo string
	// Revision is a branch, tag or commit; "" means DefaultRevision ("main").
	Revision string
	// CacheDir is the root of the download cache; "" means DefaultCacheDir().
	CacheDir string
	// Token, when set, is sent as "Authorization: Bearer <Token>" (the
	// command reads it from HF_TOKEN). Go's client drops the header when a
	// redirect leaves the hub's host, as it should for CDN URLs.
	Token string
	// Client performs the requests; nil means a client with dial, TLS and
	// response-header timeouts and no overall timeout (large downloads are
	// bounded by ctx and StallTimeout instead). It follows redirects.
	Client *http.Client
	// MaxWeightsBytes bounds model.safetensors; 0 means
	// DefaultMaxWeightsBytes (4 GiB).
	MaxWeightsBytes int64
	// StallTimeout aborts a download that receives no byte for this long;
	// 0 means DefaultStallTimeout (60 s).
	StallTimeout time.Duration
}

// DefaultCacheDir is <os.UserCacheDir()>/kronos-gateway/hub.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", infer.Wrap(infer.KindInternal, err, "hub cache")
	}
	return filepath.Join(d, "kronos-gateway", "hub"), nil
}

// defaultClient returns the client used when FetchOptions.Client is nil.
func defaultClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSHandshakeTimeout = 15 * time.Second
	tr.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: tr}
}

// ValidateRepo checks a repository id: exactly "owner/name", each part 1 to
// 96 characters of letters, digits, '-', '_' and '.', not starting with '.'
// or '-' and without "..". Such an id is safe as a relative path inside the
// cache. Errors wrap infer.ErrInvalid.
func ValidateRepo(id string) error {
	parts := strings.Split(id, "/")
	if len(parts) != 2 {
		return infer.Errorf(infer.KindInvalid, "hub repository %q: want \"owner/name\"", id)
	}
	for _, p := range parts {
		if err := checkPathSegment(p, 96); err != nil {
			return infer.Errorf(infer.KindInvalid, "hub repository %q: %v", id, err)
		}
	}
	return nil
}

// validateRevision checks a revision: one or more '/'-separated segments of
// the characters ValidateRepo allows (branches such as "refs/pr/1").
func validateRevision(rev string) error {
	if len(rev) > 255 {
		return infer.Errorf(infer.KindInvalid, "hub revision %q: too long", rev)
	}
	for _, p := range strings.Split(rev, "/") {
		if err := checkPathSegment(p, 255); err != nil {
			return infer.Errorf(infer.KindInvalid, "hub revision %q: %v", rev, err)
		}
	}
	return nil
}

func checkPathSegment(p string, maxLen int) error {
	switch {
	case p == "":
		return errors.New("empty path segment")
	case len(p) > maxLen:
		return fmt.Errorf("segment longer than %d characters", maxLen)
	case strings.Contains(p, ".."):
		return errors.New(`".." is not allowed`)
	case p[0] == '.' || p[0] == '-':
		return errors.New("a segment may not start with '.' or '-'")
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("character %q is not allowed", r)
		}
	}
	return nil
}

// Fetch makes sure config.json and model.safetensors of a hub repository
// are in the cache and returns their folder, <CacheDir>/<Repo>/<Revision>,
// ready for Load.
//
// A file already in the cache is not downloaded again (delete the folder to
// refresh a moving revision such as "main"). A download goes to a temporary
// file in the same folder and is renamed into place only once it is complete
// and valid: config.json must be a JSON object of at most MaxConfigBytes, and
// model.safetensors a safetensors file whose header describes exactly the
// bytes received (at most MaxWeightsBytes). So a cached file is always a
// whole one, even after a crash or with concurrent fetches.
//
// Errors name the repository, revision and file and wrap the infer kinds:
// ErrInvalid for a bad repository id or a corrupt download, ErrUnauthorized
// for HTTP 401/403 (with a hint about HF_TOKEN), ErrNotFound for 404 (unknown
// repository, revision or file), ErrTooLarge for a size limit, ErrUnavailable
// for network failures, stalls and other statuses, and the context's kind
// when ctx ends.
func Fetch(ctx context.Context, opt FetchOptions) (dir string, err error) {
	if err := ValidateRepo(opt.Repo); err != nil {
		return "", err
	}
	if opt.Revision == "" {
		opt.Revision = DefaultRevision
	}
	if err := validateRevision(opt.Revision); err != nil {
		return "", err
	}
	if opt.HubURL == "" {
		opt.HubURL = DefaultHubURL
	}
	if u, err := url.Parse(opt.HubURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", infer.Errorf(infer.KindInvalid, "hub URL %q: want http(s)://host[/path]", opt.HubURL)
	}
	if opt.CacheDir == "" {
		if opt.CacheDir, err = DefaultCacheDir(); err != nil {
			return "", err
		}
	}
	if opt.Client == nil {
		opt.Client = defaultClient()
	}
	if opt.MaxWeightsBytes <= 0 {
		opt.MaxWeightsBytes = DefaultMaxWeightsBytes
	}
	if opt.StallTimeout <= 0 {
		opt.StallTimeout = DefaultStallTimeout
	}
	dir = filepath.Join(opt.CacheDir, filepath.FromSlash(opt.Repo), filepath.FromSlash(opt.Revision))
	files := []struct {
		name  string
		limit int64
		check func(path string) error
	}{
		{ConfigFile, MaxConfigBytes, checkConfigFile},
		{WeightsFile, opt.MaxWeightsBytes, checkSafetensorsFile},
	}
	for _, f := range files {
		dst := filepath.Join(dir, f.name)
		if st, err := os.Stat(dst); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", infer.Wrap(infer.KindInternal, err, "hub cache")
		}
		if err := download(ctx, opt, f.name, dst, f.limit, f.check); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// fileURL is the resolve URL of one file of the repository.
func fileURL(opt FetchOptions, file string) string {
	return strings.TrimRight(opt.HubURL, "/") + "/" + opt.Repo + "/resolve/" + url.PathEscape(opt.Revision) + "/" + file
}

// errStalled ends a download that stopped receiving data.
var errStalled = errors.New("download stalled")

// download fetches one file into dst through a temporary file.
func download(ctx context.Context, opt FetchOptions, file, dst string, limit int64, check func(string) error) (err error) {
	what := fmt.Sprintf("hub %s@%s %s", opt.Repo, opt.Revision, file)
	u := fileURL(opt, file)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return infer.Wrap(infer.KindInvalid, err, "%s", what)
	}
	req.Header.Set("User-Agent", "kronos-gateway")
	if opt.Token != "" {
		req.Header.Set("Authorization", "Bearer "+opt.Token)
	}
	// The stall timer also covers the wait for the response headers.
	stall := time.AfterFunc(opt.StallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()
	resp, err := opt.Client.Do(req)
	if err != nil {
		return transferError(ctx, err, what, u)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(resp, what, u, opt.Token != "")
	}
	if resp.ContentLength > limit {
		return infer.Errorf(infer.KindTooLarge, "%s: %d bytes, over the limit of %d", what, resp.ContentLength, limit)
	}

	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+file+".*.tmp")
	if err != nil {
		return infer.Wrap(infer.KindInternal, err, "%s", what)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	body := &stallReader{r: resp.Body, timer: stall, timeout: opt.StallTimeout}
	n, err := io.Copy(tmp, io.LimitReader(body, limit+1))
	if err != nil {
		return transferError(ctx, err, what, u)
	}
	if n > limit {
		return infer.Errorf(infer.KindTooLarge, "%s: more than the limit of %d bytes", what, limit)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return infer.Errorf(infer.KindUnavailable, "%s: received %d of %d bytes from %s", what, n, resp.ContentLength, u)
	}
	if err := tmp.Sync(); err != nil {
		return infer.Wrap(infer.KindInternal, err, "%s", what)
	}
	if err := tmp.Close(); err != nil {
		return infer.Wrap(infer.KindInternal, err, "%s", what)
	}
	if err := check(tmp.Name()); err != nil {
		return infer.Wrap(infer.KindInvalid, err, "%s: downloaded file is not valid (from %s)", what, u)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return infer.Wrap(infer.KindInternal, err, "%s", what)
	}
	return nil
}

// stallReader pushes the stall deadline back on every read that returns data.
type stallReader struct {
	r       io.Reader
	timer   *time.Timer
	timeout time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(s.timeout)
	}
	return n, err
}

// transferError classifies a failed request or body read.
func transferError(ctx context.Context, err error, what, u string) error {
	if errors.Is(context.Cause(ctx), errStalled) {
		return infer.Wrap(infer.KindUnavailable, errStalled, "%s: no data received from %s", what, u)
	}
	if cerr := ctx.Err(); cerr != nil {
		return infer.Wrap(infer.KindOf(infer.FromContext(cerr)), cerr, "%s", what)
	}
	return infer.Wrap(infer.KindUnavailable, err, "%s: download from %s failed", what, u)
}

// statusError explains a non-200 response.
func statusError(resp *http.Response, what, u string, haveToken bool) error {
	msg := fmt.Sprintf("%s: HTTP %s from %s", what, resp.Status, u)
	if hm := resp.Header.Get("X-Error-Message"); hm != "" && len(hm) < 300 {
		msg += " (" + hm + ")"
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		if haveToken {
			return infer.Errorf(infer.KindUnauthorized, "%s: the token (HF_TOKEN) was refused or cannot read this repository; for a gated repository, accept its terms on the hub", msg)
		}
		return infer.Errorf(infer.KindUnauthorized, "%s: the repository is private, gated or does not exist; set HF_TOKEN to a Hugging Face access token that can read it", msg)
	case http.StatusNotFound:
		return infer.Errorf(infer.KindNotFound, "%s: unknown repository or revision, or the file is not in it", msg)
	}
	return infer.Errorf(infer.KindUnavailable, "%s", msg)
}

// checkConfigFile accepts a JSON object.
func checkConfigFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return errors.New("config.json is not a JSON object")
	}
	return nil
}
