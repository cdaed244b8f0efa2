// Starts Swagger UI on the gateway's own OpenAPI document. Everything is
// served by the gateway itself: no CDN, no online validator, so the page works
// offline.
(function () {
  "use strict";
  var el = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: el.getAttribute("data-spec-url"),
    domNode: el,
    deepLinking: true,
    validatorUrl: null,
    displayRequestDuration: true,
    tryItOutEnabled: false,
    defaultModelsExpandDepth: 1,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
})();
