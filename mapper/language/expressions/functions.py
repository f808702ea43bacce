"""The JMESPath functions a mapping may call: jmespath's own and ours (docs/mapping.md, "Functions")."""

from __future__ import annotations

from typing import Any

import jmespath
import jmespath.functions

from mapper.language import conversions


class Functions(jmespath.functions.Functions):
    """Custom JMESPath functions."""

    @jmespath.functions.signature({"types": []})
    def _func_to_iso8601(self, value: Any) -> str:
        return conversions.iso8601(value)

    @jmespath.functions.signature({"types": []})
    def _func_sap_date(self, value: Any) -> str:
        return conversions.sap_date(value)

    @jmespath.functions.signature({"types": []})
    def _func_duration_iso(self, value: Any) -> str:
        return conversions.duration_iso(value)

    @jmespath.functions.signature({"types": []}, {"types": []})
    def _func_default(self, value: Any, fallback: Any) -> Any:
        return fallback if value is None or value == "" else value

    @jmespath.functions.signature({"types": ["string"]})
    def _func_lower(self, value: str) -> str:
        return value.lower()

    @jmespath.functions.signature({"types": ["string"]})
    def _func_upper(self, value: str) -> str:
        return value.upper()

    @jmespath.functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_split(self, value: str, separator: str) -> list[str]:
        return value.split(separator) if separator else list(value)

    @jmespath.functions.signature()
    def _func_now(self) -> str:
        return conversions.now()

    @jmespath.functions.signature({"types": []})
    def _func_from_json(self, value: Any) -> Any:
        return conversions.from_json(value)


FUNCTION_NAMES = frozenset(
    name[len("_func_") :] for name in dir(jmespath.functions.Functions) + dir(Functions) if name.startswith("_func_")
)
OPTIONS = jmespath.Options(custom_functions=Functions())


def unknown_functions(node: dict[str, Any]) -> list[str]:
    """Names of functions a JMESPath AST calls that do not exist (jmespath finds them only when it runs)."""
    found = []
    if node["type"] == "function_expression" and node["value"] not in FUNCTION_NAMES:
        found.append(node["value"])
    for child in node.get("children", []):
        if isinstance(child, dict):
            found.extend(unknown_functions(child))
    return found
