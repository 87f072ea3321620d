"""The runcreds command line: the worker, admin and audit commands."""
