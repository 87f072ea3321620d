"""Session mappings: which run phase a session belongs to, under every key a CloudTrail record names it by.

Keys (`session_key`), each with the run phase and integration as sort key (`scope`):
- `akid#<access key id>`: unique to one session (broker mode only: runcreds never sees a worker's key);
- `role#<aws account>#<role name, lower case>#<session name>`: a session name alone is not unique (it is
  the run ID, shared by a run's phases), but with the role it names one run, and the phase by time;
- `si#<source identity>`: kept by AWS through role chaining, so it finds sessions runcreds never saw.
They are written in the vend's TransactWriteItems together with the credential record.
"""

from __future__ import annotations

from typing import Any

from runcreds.dal.items import TableStore, to_item
from runcreds.dal.keys import access_key_key, role_session_key, session_scope, source_identity_key
from runcreds.models.audit import SessionMapping


def role_name_of(role_arn: str) -> str:
    """`arn:aws:iam::111122223333:role/path/Name` → `Name` (paths are not part of an assumed-role ARN)."""
    return role_arn.rsplit("/", 1)[-1]


def keys_of(mapping: SessionMapping) -> list[str]:
    keys = [
        role_session_key(mapping.aws_account_id, role_name_of(mapping.role_arn), mapping.session_name),
        source_identity_key(mapping.source_identity),
    ]
    if mapping.access_key_id:
        keys.insert(0, access_key_key(mapping.access_key_id))
    return keys


class AuditSessionsStore(TableStore):
    def puts_for(self, mapping: SessionMapping, ttl: int) -> list[dict[str, Any]]:
        """The TransactWriteItems `Put`s that record a session (unconditional: a retry writes the same)."""
        values = mapping.model_dump(mode="json")
        return [
            {
                "TableName": self.table_name,
                "Item": to_item({"session_key": key, "scope": session_scope(mapping), **values, "ttl": ttl}),
            }
            for key in keys_of(mapping)
        ]

    def mappings(self, session_key: str) -> list[SessionMapping]:
        return [SessionMapping.model_validate(item) for item in self.query("session_key", session_key)]
