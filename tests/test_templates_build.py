"""Jinja generates a template's code on first use (start-up of `wlmap validate`); prove it always can.

Every template of every shipped mapping and positive golden case is rendered once with an empty scope:
missing names are expected errors; a failure to generate the code would be a check missing at load time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mapper.language import loader
from mapper.language.expressions import EvaluationError

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(ROOT.glob("mappings/*.yaml")) + sorted(ROOT.glob("tests/cases/validate/ok-*/mapping.yaml"))
FILES = [f for f in FILES if not f.name.endswith(".tests.yaml")]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_template_generates_its_code(path: Path) -> None:
    plan, problems = loader.load_file(path)
    assert plan is not None, [p.message for p in problems]
    values = [c.url or c.base_url for c in plan.connections.values()]
    values += [v for c in plan.connections.values() for _, v in (*c.headers, *c.params)]
    values += [v for c in plan.connections.values() for v in c.auth.values.values()]
    values += [plan.query.variables] if plan.query else []
    for step in plan.steps:
        values += [step.path, step.url, step.body.value, *(v for _, v in (*step.params, *step.headers))]
    templates = [t for value in values if value is not None for t in value.templates]
    assert templates or path.name.startswith("ok-")
    for template in templates:
        try:
            template.render({})
        except EvaluationError as exc:
            assert "cannot be compiled" not in str(exc), f"{template.source}: {exc}"
