"""HTTP handlers: CRUD, watch, subresources, discovery, health, OpenAPI."""
