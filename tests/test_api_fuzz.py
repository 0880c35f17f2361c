"""No input produces a 500, and every answer is what the OpenAPI description says it is.

Schemathesis builds valid and deliberately invalid requests from `/api/v2/openapi.json` (the
same description clients use) and sends them to the app in-process with an admin token. Each
answer must have a documented status code and content type, and a body that validates
against the documented schema of that status (the response models for successes, the
problem details for errors).
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app

# Built at collection: serving the description touches neither the database nor the broker.
fuzzed_app = create_app(test_config={"TESTING": True})
schema = schemathesis.openapi.from_wsgi("/api/v2/openapi.json", fuzzed_app)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(case, tenant):
    case.call_and_validate(
        headers=tenant.admin,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
