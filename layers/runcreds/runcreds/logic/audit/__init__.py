"""The audit index (docs/audit.md): CloudTrail records of the sessions runcreds issued, by run and by stack.

resolution   which run a record belongs to (the session mappings written at vend time)
sanitizing   secrets out of the request parameters an item keeps
item         the index item a resolved record makes
ingest       the indexer: SQS batches → items → the index, with partial batch failures
query        the audit routes' queries: page tokens, the stack's time window, a page of events
"""
