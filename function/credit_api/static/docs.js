// Swagger UI for the API's own OpenAPI document. Every URL is relative to /docs, so the page
// works at the app root and under an API Gateway stage (/Prod/docs); nothing is fetched from
// another origin. Kept out of the HTML so the page's Content-Security-Policy needs no inline script.
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
