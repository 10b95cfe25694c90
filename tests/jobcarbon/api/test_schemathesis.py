"""Property-based run over the published OpenAPI spec (schemathesis): no generated request,
valid or not, may produce a server error. Bounded: 30 valid and 30 invalid
examples per operation.

Generated requests authenticate as admin (bearer token): MUNGE credentials are single-use
and cannot be generated; the user path is covered by test_app.py with real credentials.
"""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.services.credit_api import ADMIN_TOKEN, Api

pytestmark = [pytest.mark.postgres, pytest.mark.munge]


def test_no_server_errors(api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    seen: list[str] = []
    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=30, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def run(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert response.status_code < 500, (case.method, case.path, response.text[:300])

        try:
            run()
        except Unsatisfiable:
            # Operations without inputs (GET /v1/admin/policy...) have no invalid variant.
            assert mode is schemathesis.GenerationMode.NEGATIVE
            continue
        seen.append(f"{mode.value} {operation.method.upper()} {operation.path}")
    for name in ("POST /v1/check", "POST /v1/reservations", "PUT /v1/admin/policy"):
        assert f"positive {name}" in seen and f"negative {name}" in seen, seen
