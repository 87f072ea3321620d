"""The HTTP routes of the attach, audit and OIDC APIs, on runcreds' own router (runcreds.routes.router)."""
