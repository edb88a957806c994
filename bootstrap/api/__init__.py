"""Shared Kubernetes object model: resources, schemas, patching, selectors, client."""
