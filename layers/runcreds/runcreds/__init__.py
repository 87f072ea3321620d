"""runcreds: a self-hosted credential broker for infrastructure-as-code runs."""

__version__ = "0.1.0"
