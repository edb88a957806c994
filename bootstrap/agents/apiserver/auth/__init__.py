"""Authentication (authn), authorization (authz: RBAC, Node), default policy and the
review APIs (TokenReview, SubjectAccessReview, ...) of the API server."""
