"""runcreds' own DynamoDB attribute-value conversion (runcreds.dal.items.to_item/from_item), checked against
boto3's TypeSerializer and TypeDeserializer, which it replaced (boto3's import was a share of every cold start)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from runcreds.dal.items import from_item, to_item

BOTO3_OUT, BOTO3_IN = TypeSerializer(), TypeDeserializer()

scalars = (
    st.text(max_size=20)
    | st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1)
    | st.booleans()
    | st.none()
    | st.binary(max_size=20)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**6), max_value=10**6)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def boto3_plain(value: Any) -> Any:
    """What the stores read before: boto3's deserializer, then numbers as int or float and Binary as bytes."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: boto3_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [boto3_plain(v) for v in value]
    if isinstance(value, Binary):
        return value.__bytes__()  # its value
    return value


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=5))
def test_items_are_written_and_read_as_boto3_wrote_and_read_them(item: dict[str, Any]) -> None:
    written = to_item(item)
    assert written == {k: BOTO3_OUT.serialize(v) for k, v in item.items() if v is not None}
    assert from_item(written) == {k: boto3_plain(BOTO3_IN.deserialize(v)) for k, v in written.items()}


@pytest.mark.parametrize(
    ("value", "attribute"),
    [
        (True, {"BOOL": True}),  # a bool, not the number 1
        (0, {"N": "0"}),
        (Decimal("1.50"), {"N": "1.50"}),
        ({"a": None}, {"M": {"a": {"NULL": True}}}),  # None inside a map is NULL; at the top it is left out
        (b"\x00\xff", {"B": b"\x00\xff"}),
        ({"x", "y"}, None),  # a string set (its order is the set's)
        ({1, 2}, None),
    ],
)
def test_values_become_the_attribute_values_dynamodb_reads(value: Any, attribute: dict[str, Any] | None) -> None:
    written: dict[str, Any] = to_item({"v": value})["v"]
    boto3_wrote: dict[str, Any] = dict(BOTO3_OUT.serialize(value))
    if attribute is not None:
        assert written == attribute
    if isinstance(value, set):  # the same kind of set with the same members, in the set's own order
        assert written.keys() == boto3_wrote.keys()
        ((kind, members),) = written.items()
        assert sorted(map(str, members)) == sorted(map(str, boto3_wrote[kind]))
    else:
        assert written == boto3_wrote


def test_numbers_come_back_as_int_or_float_and_binary_as_bytes() -> None:
    read = from_item({"n": {"N": "7"}, "f": {"N": "0.25"}, "b": {"B": b"k"}, "l": {"L": [{"N": "1"}, {"S": "s"}]}})
    assert read == {"n": 7, "f": 0.25, "b": b"k", "l": [1, "s"]}
    assert type(read["n"]) is int and type(read["b"]) is bytes


@pytest.mark.parametrize(
    "value",
    [1.5, 10**38 + 1, Decimal("NaN"), Decimal("Infinity"), Decimal("1." + "1" * 40), object(), {1, "a"}],
    ids=["float", "39 digits", "NaN", "Infinity", "rounded", "object", "mixed set"],
)
def test_what_dynamodb_cannot_hold_exactly_is_refused_as_boto3_refused_it(value: Any) -> None:
    with pytest.raises((TypeError, ArithmeticError)):
        to_item({"v": value})
    with pytest.raises((TypeError, ArithmeticError)):
        BOTO3_OUT.serialize(value)


def test_an_empty_set_is_refused_here_not_by_dynamodb() -> None:
    """boto3 wrote an empty set as {"NS": []}, which DynamoDB refuses with a ValidationException."""
    with pytest.raises(TypeError):
        to_item({"v": set()})
