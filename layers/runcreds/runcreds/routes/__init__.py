"""The HTTP routes of the attach, audit and OIDC APIs (Powertools event handler resolvers)."""
