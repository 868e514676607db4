"""One router per resource of REST API v1."""
