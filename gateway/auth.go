package gateway

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// HeaderAPIKey carries an API key; "Authorization: Bearer <key>" is
// accepted as well.
const HeaderAPIKey = "X-API-Key"

// maxAPIKeyLen bounds a configured key.
const maxAPIKeyLen = 256

// Keys of fiber.Ctx.Locals set by the auth middleware.
const localKeyID localKey = 100 // string: short hash of the caller's key

// openPaths answer without an API key and without rate limiting: probes,
// metrics and the API description (and everything under /docs/). Every
// other path, including unknown ones, needs a key when keys are
// configured.
var openPaths = map[string]bool{
	"/":                    true,
	RouteHealthz:           true,
	"/v1/healthz/detailed": true,
	"/v1/readyz":           true,
	"/v1/metrics":          true,
	"/metrics":             true,
	"/v1/openapi.json":     true,
	"/openapi.json":        true,
	"/docs":                true,
	"/redoc":               true,
	"/favicon.ico":         true,
}

// isOpenPath reports whether path needs no key. A trailing slash is
// ignored, as Fiber's routing ignores it.
func isOpenPath(path string) bool {
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	return openPaths[path] || strings.HasPrefix(path, "/docs/")
}

// checkAPIKey accepts printable ASCII without spaces, at most 256 bytes, so
// that a key survives an HTTP header unchanged.
func checkAPIKey(k string) error {
	if len(k) > maxAPIKeyLen {
		return fmt.Errorf("is longer than %d bytes", maxAPIKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] > '~' {
			return fmt.Errorf("has a character other than printable ASCII without spaces at byte %d", i)
		}
	}
	return nil
}

// loadAPIKeys returns the keys of APIKeys and APIKeysFile, without
// duplicates. Errors name the variable and never quote a key.
func (o Options) loadAPIKeys() ([]string, error) {
	keys := append([]string(nil), o.APIKeys...)
	if o.APIKeysFile != "" {
		f, err := os.Open(o.APIKeysFile)
		if err != nil {
			return nil, fmt.Errorf("KRONOS_API_KEYS_FILE: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			k := strings.TrimSpace(sc.Text())
			if k == "" || strings.HasPrefix(k, "#") {
				continue
			}
			if err := checkAPIKey(k); err != nil {
				return nil, fmt.Errorf("KRONOS_API_KEYS_FILE %s line %d: the key %v", o.APIKeysFile, line, err)
			}
			keys = append(keys, k)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("KRONOS_API_KEYS_FILE %s: %w", o.APIKeysFile, err)
		}
	}
	seen := make(map[string]bool, len(keys))
	out := keys[:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out, nil
}

// keyID is the short hash under which a key appears in logs: the first 12
// hex digits of its SHA-256.
func keyID(digest [sha256.Size]byte) string { return hex.EncodeToString(digest[:6]) }

// auth checks API keys and applies the per-caller rate limit.
type auth struct {
	// digests are the SHA-256 of the accepted keys; none means no
	// authentication.
	digests [][sha256.Size]byte
	limiter *limiter // nil: no rate limit
}

// newAuth builds the checker from the options.
func newAuth(o Options) (*auth, error) {
	keys, err := o.loadAPIKeys()
	if err != nil {
		return nil, err
	}
	a := &auth{}
	for _, k := range keys {
		a.digests = append(a.digests, sha256.Sum256([]byte(k)))
	}
	if o.RateLimitPerMinute > 0 {
		burst := o.RateLimitBurst
		if burst == 0 {
			burst = max(1, int(math.Ceil(o.RateLimitPerMinute)))
		}
		a.limiter = newLimiter(rate.Limit(o.RateLimitPerMinute/60), burst)
	}
	return a, nil
}

// presentedKey returns the key of the request: X-API-Key, else an
// "Authorization: Bearer" token.
func presentedKey(c *fiber.Ctx) (string, bool) {
	if k := c.Get(HeaderAPIKey); k != "" {
		return k, true
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(c.Get(fiber.HeaderAuthorization)), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		if token = strings.TrimSpace(token); token != "" {
			return token, true
		}
	}
	return "", false
}

// match reports whether key is one of the accepted keys and its digest.
// The digests of every configured key are compared in constant time, all of
// them, so neither the position of a key nor its length leaks through the
// timing.
func (a *auth) match(key string) ([sha256.Size]byte, bool) {
	d := sha256.Sum256([]byte(key))
	found := 0
	for i := range a.digests {
		found |= subtle.ConstantTimeCompare(d[:], a.digests[i][:])
	}
	return d, found == 1
}

var errNoKey = infer.Errorf(infer.KindUnauthorized,
	"an API key is required: send it as the X-API-Key header or as Authorization: Bearer <key>")
var errWrongKey = infer.Errorf(infer.KindUnauthorized, "the API key is not valid")

// authenticate is the middleware of API keys and rate limits. Open paths
// pass untouched. With keys configured, a request without a valid key is
// answered 401; the caller is then identified by the key (its short hash
// goes to the access log), else by the client IP address. Over its rate,
// a caller gets 429 with the Retry-After of its next token.
func (a *App) authenticate(c *fiber.Ctx) error {
	if isOpenPath(c.Path()) {
		return c.Next()
	}
	if a.admin != nil && isAdminPath(c.Path()) { // admin keys, not client keys (admin.go)
		return a.authenticateAdmin(c)
	}
	caller := ""
	if len(a.auth.digests) > 0 {
		key, ok := presentedKey(c)
		if !ok {
			return rejected(ReasonUnauthorized, errNoKey)
		}
		d, ok := a.auth.match(key)
		if !ok {
			return rejected(ReasonUnauthorized, errWrongKey)
		}
		id := keyID(d)
		c.Locals(localKeyID, id)
		caller = "key:" + id
	} else {
		caller = "ip:" + c.IP()
	}
	if a.auth.limiter != nil {
		if wait, ok := a.auth.limiter.allow(caller, time.Now()); !ok {
			return rejected(ReasonRateLimited, withRetryAfter(infer.Errorf(infer.KindOverloaded,
				"rate limit of %v requests per minute exceeded (KRONOS_RATE_LIMIT_PER_MINUTE); retry in %v",
				a.opts.RateLimitPerMinute, wait.Round(time.Millisecond)), wait))
		}
	}
	return c.Next()
}

// limiter is a token bucket per caller. Buckets that are full again (idle
// callers) are dropped when the map grows past maxCallers, so that a stream
// of distinct client addresses cannot grow it without bound.
type limiter struct {
	mu      sync.Mutex
	rate    rate.Limit
	burst   int
	callers map[string]*rate.Limiter
	// maxCallers triggers a sweep of idle buckets.
	maxCallers int
}

const defaultMaxCallers = 10000

func newLimiter(r rate.Limit, burst int) *limiter {
	return &limiter{rate: r, burst: burst, callers: map[string]*rate.Limiter{}, maxCallers: defaultMaxCallers}
}

// allow takes one token of caller's bucket at now. When none is left it
// takes nothing and returns how long until one is.
func (l *limiter) allow(caller string, now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.callers[caller]
	if b == nil {
		if len(l.callers) >= l.maxCallers {
			l.sweep(now)
		}
		b = rate.NewLimiter(l.rate, l.burst)
		l.callers[caller] = b
	}
	r := b.ReserveN(now, 1)
	if !r.OK() { // cannot happen: burst >= 1
		return time.Minute, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// sweep drops the buckets that are full at now: forgetting them changes
// nothing for their callers.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.callers {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.callers, k)
		}
	}
}

// size is the number of callers tracked (tests).
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.callers)
}
