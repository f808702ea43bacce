"""JMESPath expressions and Jinja templates: compile once (with located syntax errors), evaluate safely.

The only package that imports jmespath and jinja2. What it guarantees:
- Jinja runs in an immutable sandbox with StrictUndefined: a missing value is an error, never "".
- `*` and `**` are checked before they run, and rendered text is capped (MAX_OUTPUT), so a template
  cannot allocate gigabytes (`{{ 'a' * 50000000 }}` fails instead of rendering 50 MB).
- A template that is exactly one `{{ expression }}` returns the expression's value with its type.
- Data is never evaluated as template text: values are inserted, not re-parsed.
- Values inserted into a URL path are percent-encoded (PATH templates), so data cannot add segments,
  a query string or a host.
- JMESPath results are size-guarded (MAX_RESULT_ITEMS / MAX_OUTPUT).

Modules: `queries` (JMESPath) with `functions` and `query_errors`; `templates` (Jinja) with `sandbox` and
`template_errors`; `references` (the names both read); `limits`; `errors`.
"""

from mapper.language.expressions.errors import EvaluationError, ExpressionSyntaxError
from mapper.language.expressions.functions import FUNCTION_NAMES
from mapper.language.expressions.queries import Query, compile_query
from mapper.language.expressions.references import Chain
from mapper.language.expressions.sandbox import FILTER_NAMES, PATH, TEXT
from mapper.language.expressions.templates import Template, compile_template, is_template

__all__ = [
    "FILTER_NAMES",
    "FUNCTION_NAMES",
    "PATH",
    "TEXT",
    "Chain",
    "EvaluationError",
    "ExpressionSyntaxError",
    "Query",
    "Template",
    "compile_query",
    "compile_template",
    "is_template",
]
