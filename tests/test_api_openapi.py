"""The read API's OpenAPI document validates, and a property-based run of it against a real
`kopter api` process (schemathesis) finds no 500 and no answer the document does not describe.
"""

from __future__ import annotations

from typing import Any

from tests.support.readapi import bearer


def test_openapi_document_validates(api):
    from openapi_spec_validator import validate

    doc = api.client.get("/openapi.json").json()
    validate(doc)
    assert set(doc["paths"]) == {
        "/healthz",
        "/v1/audit/aws",
        "/v1/ec2/events",
        "/v1/price-graph",
        "/v1/notifications",
        "/v1/notifications/{id}/read",
        "/v1/channels",
        "/v1/channels/{id}",
        "/v1/accounts",
        "/v1/snapshots",
        "/v1/digests/{day}",
        "/v1/prices",
        "/v1/rules",
        "/v1/rules/{id}/enable",
        "/v1/rules/{id}/disable",
        "/v1/findings",
    }
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    audit = doc["paths"]["/v1/audit/aws"]["get"]
    assert audit["security"] == [{"bearer": []}]
    assert set(audit["responses"]) == {"200", "400", "401"}  # no 422: a bad parameter is a 400


def test_property_based_run_finds_no_500(api, tenants):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    a, _ = tenants
    schema = schemathesis.openapi.from_url(f"{api.client.base_url}/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    auth = bearer(a.id)
    cases = st.one_of(
        schema.as_strategy(), schema.as_strategy(schemathesis.GenerationMode.NEGATIVE)
    )
    seen: list[int] = []

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Any) -> None:
        response = case.call(headers=auth)
        seen.append(response.status_code)
        case.validate_response(response, checks=checks)

    run()
    assert 200 in seen and 400 in seen
