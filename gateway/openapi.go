package gateway

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/gofiber/fiber/v2"
	"go.yaml.in/yaml/v3"

	"github.com/kronos-gateway/kronos-gateway/gateway/docsui"
)

// Documentation routes.
const (
	// RouteOpenAPI serves the OpenAPI 3 document (openapi.yaml) as JSON.
	RouteOpenAPI = "/v1/openapi.json"
	// RouteDocs serves the Swagger UI page over RouteOpenAPI, and
	// RouteDocsAsset its assets (docsui.Prefix + name).
	RouteDocs      = "/docs"
	RouteDocsAsset = "/docs/:file"
)

// openAPIYAML is the API description, written by hand: every route, its
// request and response schemas with the real field names, the error
// envelope and every status code. TestOpenAPI* check it is a valid OpenAPI
// 3 document and that real responses of the App conform to it.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON is openAPIYAML converted to JSON once.
var openAPIJSON = mustYAMLToJSON(openAPIYAML)

// mustYAMLToJSON converts a YAML document with string keys to JSON.
func mustYAMLToJSON(y []byte) []byte {
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		panic(fmt.Sprintf("gateway: openapi.yaml: %v", err))
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("gateway: openapi.yaml: %v", err))
	}
	return b
}

// routeDocs registers the API description and the docs page.
func (a *App) routeDocs() {
	a.route(fiber.MethodGet, RouteOpenAPI, func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		return c.Send(openAPIJSON)
	})
	a.route(fiber.MethodGet, RouteDocs, func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		c.Set("Content-Security-Policy", docsui.ContentSecurityPolicy)
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		return c.Send(docsui.Index())
	})
	a.route(fiber.MethodGet, RouteDocsAsset, func(c *fiber.Ctx) error {
		data, ctype, ok := docsui.Asset(c.Params("file"))
		if !ok {
			return fiber.ErrNotFound
		}
		c.Set(fiber.HeaderContentType, ctype)
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
		return c.Send(data)
	})
}
