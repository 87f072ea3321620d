"""The committed OpenAPI document is the one the resolver generates: change a route, run `make openapi`."""

from __future__ import annotations

import json
import re

from samtranslator.yaml_helper import yaml_parse

from runcreds_dev.openapi import openapi_json
from tests.support import ROOT

COMMITTED = ROOT / "docs" / "openapi.json"


def test_the_committed_openapi_document_is_up_to_date() -> None:
    # Given the resolver's routes and models, when the document is generated
    generated = openapi_json()

    # Then it is the committed one
    assert COMMITTED.read_text() == generated, "docs/openapi.json is stale: run `make openapi` and commit it"


def test_the_document_covers_every_route_of_the_template() -> None:
    # Given the template's Api events (what API Gateway serves) and the committed document
    template = yaml_parse((ROOT / "template.yaml").read_text())
    routes = {
        (event["Properties"]["Method"].lower(), event["Properties"]["Path"])
        for resource in template["Resources"].values()
        for event in resource.get("Properties", {}).get("Events", {}).values()
        if event["Type"] == "Api"
    }
    paths = json.loads(COMMITTED.read_text())["paths"]
    documented = {(method, path) for path, operations in paths.items() for method in operations}

    # Then each route is documented, and nothing else is
    assert documented == routes


def _route_table() -> dict[tuple[str, str], set[str]]:
    """docs/interface.md's route table: (method, path) → every status it says the route answers."""
    rows: dict[tuple[str, str], set[str]] = {}
    for line in (ROOT / "docs" / "interface.md").read_text().splitlines():
        route = re.match(r"\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)` \|", line)
        if route:
            method, path = route.groups()
            answers = line.split(" | ", 2)[2]  # after the route and its input: success and other answers
            rows[(method.lower(), path)] = set(re.findall(r"\b[1-5]\d\d\b", answers))
    return rows


def test_every_answer_the_interface_page_promises_is_in_the_document() -> None:
    # Given the answers the interface page lists per route, and those it says every route may give
    table = _route_table()
    everywhere = {"400", "404", "429", "503"}  # 429: the stage throttle answers it on any route
    paths = json.loads(COMMITTED.read_text())["paths"]

    # Then the document declares each of them for its route (a client generated from it knows them all)
    assert len(table) == sum(len(operations) for operations in paths.values())
    missing = {
        f"{method.upper()} {path}": sorted((statuses | everywhere) - set(paths[path][method]["responses"]))
        for (method, path), statuses in table.items()
    }
    assert {route: codes for route, codes in missing.items() if codes} == {}
