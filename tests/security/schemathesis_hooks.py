"""schemathesis hooks of tests/security/test_schemathesis.py (``SCHEMATHESIS_HOOKS``).

Every check runs; these hooks only set aside what the OpenAPI document cannot say, each
for a written reason, and as narrowly as the answer allows:

- ``integer`` in JSON Schema admits ``2.0`` (a number whose fraction is zero) and no
  keyword excludes it, while the API decodes strictly (api/validation.py: ``2.0`` for
  ``cantidad`` is a 422). Generated bodies carry such numbers as integers.
- A schema-valid request refused (``positive_data_acceptance``) is accepted only as a 422
  whose ``code`` is a rule no JSON Schema keyword states: :data:`RULES`.
- "Created resource not found" (``ensure_resource_availability``) infers that
  ``DELETE /api/events/{id}/queue`` names what ``POST /api/events`` created; a 404 whose
  code names another resource (the event's queue, a waitlist entry) is not that.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.openapi.checks import EnsureResourceAvailability, RejectedPositiveData

# The 422 codes of rules beyond the schema: why no JSON Schema keyword states each.
RULES = {
    "weak_password": "letters and digits in Unicode terms (str.isalpha, str.isdigit) and "
    "at most 72 UTF-8 bytes (bcrypt); the schema says 8-72 characters and the policy in words",
    "capacity_exceeded": "the categories' cantidadTotal add up to more than capacidadTotal: "
    "a relation between fields, and on updates with the stored categories",
    "queue_opens_in_past": "abreEn must be in the future: depends on the clock",
    "invalid_date": "a date before 1970 or after 9998: a `format: date` has no bounds",
    "empty_update": "an update whose fields change nothing (every field optional, null keeps)",
    "event_past": "fecha must be in the future: depends on the clock",
    "limit_exceeded": "the tickets of an order add up to at most MAX_TICKETS_PER_ORDER, a "
    "setting, across the lines",
    "webhook_url_invalid": "an http(s) URL whose host may be called (api/webhooks: no "
    "private or loopback addresses), decided by parsing and resolving it",
}
# Fields whose bound is a server setting, not a constant of the schema.
RULE_FIELDS = {
    "entradasPorAdmision": "at most the per-order ticket limit (MAX_TICKETS_PER_ORDER)",
}
# 404 codes that name the parent resource itself (a real "created resource not found").
PARENT_CODES = {"event_not_found", "not_found", "order_not_found", "webhook_not_found"}


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    return _integral(body)


def _body(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except Exception:
        return {}
    return body if isinstance(body, dict) else {}


def _code(response: Any) -> str | None:
    return _body(response).get("code")


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """True keeps the failure."""
    code = _code(response)
    if isinstance(failure, RejectedPositiveData):
        if response.status_code != 422:
            return True
        fields = {e.get("field") for e in _body(response).get("errors", [])}
        return not (code in RULES or (fields and fields <= RULE_FIELDS.keys()))
    if isinstance(failure, EnsureResourceAvailability):
        return code in PARENT_CODES
    return True
