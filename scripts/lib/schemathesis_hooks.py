"""Schemathesis hooks for scripts/schemathesis: rules of the admin API that no schema can state.

A JSON Schema cannot say "in the future and at most 365 days ahead", nor "a cursor that a
`Link` header gave for this sort". The OpenAPI document describes both and lists their 422,
but `positive_data_acceptance` would still count every random `expires_at` or `cursor` that
matches the schema as valid data refused. So positive cases (and only those: negative ones
must keep their invalid parts) get a valid `expires_at` and no `cursor`. Every other field
stays as generated, so the check still covers names, scopes, limits, addresses and the
rotate body.
"""

import datetime

import schemathesis


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    operation = case.operation
    body = case.body
    if (
        operation.method.upper() == "POST"
        and operation.path == "/keys"
        and isinstance(body, dict)
        and body.get("expires_at") is not None
    ):
        soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
        body["expires_at"] = soon.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    if isinstance(case.query, dict) and "cursor" in case.query:
        del case.query["cursor"]
    return case
