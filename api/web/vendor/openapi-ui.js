// Boots the OpenAPI UI of a /schema page (api/openapi.py renders the pages): an external
// script, so the pages need no inline script (the CSP there is script-src 'self').
const swagger = document.getElementById("swagger-ui");
if (swagger && window.SwaggerUIBundle) {
  window.ui = window.SwaggerUIBundle({
    url: swagger.dataset.url,
    dom_id: "#swagger-ui",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // no badge from validator.swagger.io
    presets: [window.SwaggerUIBundle.presets.apis],
  });
}
const scalar = document.getElementById("scalar");
if (scalar && window.Scalar) {
  window.Scalar.createApiReference("#scalar", {
    url: scalar.dataset.url,
    withDefaultFonts: false, // the default fonts come from fonts.scalar.com
    hideClientButton: true,
  });
}
