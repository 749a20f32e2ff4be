"""schemathesis against the running server (both backends): generated requests for every
operation in ``/openapi.json``, valid and invalid ones, bounded (a few examples per operation,
derandomised), with no 5xx, no undocumented status and every response matching its schema.

schemathesis' own pytest integration (``from_fixture``) does not run under pytest 9, so the
test draws each operation's cases from its hypothesis strategy.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
EXAMPLES = 12  # per operation and mode: 23 operations x 2 modes x 12, about a minute


def _cases(operation: Any, mode: GenerationMode, model: str) -> Any:
    """The operation's cases; for a route of a model, half of them name the registered one,
    so the routes past the model lookup are reached too."""
    strategy = operation.as_strategy(generation_mode=mode)
    if "{model}" in operation.path:
        return st.one_of(strategy, operation.as_strategy(mode, path_parameters={"model": model}))
    return strategy


def test_the_api_keeps_its_contract(api: Any) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        for mode in GenerationMode:

            @given(case=_cases(operation, mode, api.model))
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                case.call_and_validate(checks=CHECKS)

            try:
                run()
            except Unsatisfiable:  # no invalid request exists (no typed parameter, no body)
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # collect every operation's failure, then report them all
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
