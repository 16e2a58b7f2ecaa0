// Swagger UI for the gateway's REST port: the OpenAPI document generated from the
// protos, served by this same port, so "Try it out" calls the gateway itself.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  displayOperationId: true,
  displayRequestDuration: true,
  // Offline: never ask swagger.io's online validator about this document.
  validatorUrl: null,
});
