"""Secrets out of what the audit index keeps: requestParameters with every value named like a secret hidden.

CloudTrail redacts most secrets from requestParameters, not all (a task's environment, a stack's
parameters, a tag): what a field is called decides, since its value cannot be told from any other string.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

HIDDEN = "HIDDEN_BY_RUNCREDS"
# What a field holding a secret is called, matched on the name in lower case with `_` between its words
# (camelCase split; `-`, `.`, spaces and the like become `_`). `_?` is any separator or none. A long word
# may have a prefix glued on (`dbpassword`, `accesstoken`); `pass` and `pwd` must stand alone (`bypass`,
# `compass`). Either must end a word: `tokenizer`, `secretary`, `passwordless` are not secrets. Every
# `token` is hidden, pagination and idempotency tokens too: they are opaque, and a bearer token looks
# the same; so is an MFA `tokenCode` (a live authentication factor for its 30 seconds).
_SECRET_TERMS = (
    r"password", r"passwd", r"passphrase", r"secret", r"secret_?(access_?)?key", r"token",
    r"api_?key", r"private_?key", r"authorization", r"credentials?", r"connection_?string",
)  # fmt: skip
_SHORT_SECRET_TERMS = (r"pass", r"pwd")
# ... unless the name's last word says it is about the secret, not the secret: `secretId`, `tokenType`,
# `passwordLength`, `maxPasswordAge`, `secretArn`.
_METADATA_WORDS = (
    "id", "ids", "arn", "arns", "name", "names", "type", "types", "length", "age", "policy", "version",
    "expiry", "expiration", "enabled", "required", "count", "status",
)  # fmt: skip
_SECRET_NAME = re.compile(
    rf"(?:{'|'.join(_SECRET_TERMS)})s?(?:_|$)|(?:^|_)(?:{'|'.join(_SHORT_SECRET_TERMS)})s?(?:_|$)"
)
_METADATA_NAME = re.compile(rf"_(?:{'|'.join(_METADATA_WORDS)})$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")
# Lists of {name, value} pairs (ECS environments, CloudFormation parameters, Elastic Beanstalk option
# settings, tags, ...): the value is hidden when the name says it is a secret. Compared in lower case.
_PAIR_NAMES = ("name", "key", "parameterkey", "parametername", "optionname")
_PAIR_VALUES = ("value", "parametervalue")


@lru_cache(maxsize=4096)  # field names repeat from record to record
def secret_named(name: str) -> bool:
    words = _SEPARATORS.sub("_", _CAMEL.sub("_", name).lower()).strip("_")
    return bool(_SECRET_NAME.search(words)) and not _METADATA_NAME.search(words)


def _hides(name: object, value: Any) -> bool:
    # A boolean holds no secret (`allowUsersToChangePassword`); anything else named so is hidden.
    return isinstance(name, str) and not isinstance(value, bool) and secret_named(name)


def scrub(value: Any) -> Any:
    """requestParameters without anything named like a secret (CloudTrail redacts most; not all): a key
    named so, or the value of a {name: ..., value: ...} pair whose name says so."""
    if isinstance(value, dict):
        pair_values = [k for k in value if isinstance(k, str) and k.lower() in _PAIR_VALUES]
        if pair_values and any(
            isinstance(n, str) and secret_named(n) for k, n in value.items() if k.lower() in _PAIR_NAMES
        ):
            return {k: HIDDEN if k in pair_values or _hides(k, v) else scrub(v) for k, v in value.items()}
        return {k: HIDDEN if _hides(k, v) else scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value
