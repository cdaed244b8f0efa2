// Package docsui holds the human documentation page of kronos-gateway
// (GET /docs): Swagger UI over the gateway's OpenAPI document, embedded in
// the binary so that the page works offline, behind a firewall or in an
// air-gapped cluster. The page loads nothing but its own assets and
// /v1/openapi.json.
//
// # Files
//
//   - index.html, docs.js, docs.css: the page and the code that starts
//     Swagger UI on /v1/openapi.json (this module's own code).
//   - dist/: the files of the npm package swagger-ui-dist that the page
//     needs, unmodified, with the package's LICENSE (Apache-2.0) and NOTICE,
//     the licenses of the code bundled into swagger-ui-bundle.js, and a
//     VERSION file naming the pinned version and its integrity hash.
//     scripts/docsui.sh fetches them again with npm pack; to upgrade, change
//     the version and hash there.
package docsui

import (
	"embed"
	"io/fs"
	"path"
	"strings"
)

//go:embed index.html docs.js docs.css dist
var files embed.FS

// Prefix is the URL path under which Asset names are served: the page
// refers to "/docs/swagger-ui.css" and so on.
const Prefix = "/docs/"

// ContentSecurityPolicy is the policy to send with the page: scripts,
// styles, images and fetches from the gateway's own origin only (Swagger
// UI sets inline style attributes and uses data: images).
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; " +
	"frame-ancestors 'none'"

type asset struct {
	data        []byte
	contentType string
}

var (
	index  []byte
	assets = map[string]asset{}
)

func init() {
	var err error
	if index, err = files.ReadFile("index.html"); err != nil {
		panic(err)
	}
	add := func(name, file string) {
		b, err := files.ReadFile(file)
		if err != nil {
			panic(err)
		}
		assets[name] = asset{b, contentType(name)}
	}
	add("docs.js", "docs.js")
	add("docs.css", "docs.css")
	dist, err := fs.ReadDir(files, "dist")
	if err != nil {
		panic(err)
	}
	for _, e := range dist {
		add(e.Name(), "dist/"+e.Name())
	}
}

// Index returns the HTML page (text/html). The caller must not modify it.
func Index() []byte { return index }

// Asset returns the file served at Prefix+name and its content type; ok is
// false for an unknown name (names never contain a slash). The caller must
// not modify data.
func Asset(name string) (data []byte, contentType string, ok bool) {
	a, ok := assets[name]
	return a.data, a.contentType, ok
}

// Names lists the names Asset knows, in no particular order.
func Names() []string {
	out := make([]string, 0, len(assets))
	for n := range assets {
		out = append(out, n)
	}
	return out
}

// Version returns the pinned Swagger UI package, e.g.
// "swagger-ui-dist@5.35.0" (the first line of dist/VERSION).
func Version() string {
	v, _, _ := strings.Cut(string(assets["VERSION"].data), "\n")
	return v
}

// contentType picks the media type of a file by its extension.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".png":
		return "image/png"
	case ".html":
		return "text/html; charset=utf-8"
	}
	return "text/plain; charset=utf-8" // LICENSE, NOTICE, VERSION, *.txt
}
