"""The committed OpenAPI document is the one the resolver generates: change a route, run `make openapi`."""

from __future__ import annotations

import json

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
