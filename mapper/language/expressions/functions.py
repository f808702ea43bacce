"""The JMESPath functions a mapping may call: jmespath's own and ours (docs/mapping.md, "Functions")."""

from __future__ import annotations

import json
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


_FUNCTION_TABLE = Functions().FUNCTION_TABLE  # name → {"function", "signature"}
_KINDS = {str: "string", bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
_TYPE_WORDS = {
    "string": "a text",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
    "expref": "an expression reference (`&name`)",
    "array-number": "a list of numbers",
    "array-string": "a list of texts",
}


def call_problems(node: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """Calls a JMESPath AST makes with the wrong number of arguments, or with a literal of a type the function
    refuses: (function, message, hint). jmespath finds both only when the expression runs, on every event."""
    found = []
    if node["type"] == "function_expression" and node["value"] in _FUNCTION_TABLE:
        problem = _call_problem(node["value"], node.get("children", []))
        if problem is not None:
            found.append((node["value"], *problem))
    for child in node.get("children", []):
        if isinstance(child, dict):
            found.extend(call_problems(child))
    return found


def _call_problem(name: str, arguments: list[dict[str, Any]]) -> tuple[str, str | None] | None:
    signature = _FUNCTION_TABLE[name]["signature"]
    usage = f"{name}({', '.join(_usage(spec) for spec in signature)})"
    variadic = bool(signature) and signature[-1].get("variadic", False)
    wanted = len(signature)
    if (variadic and len(arguments) < wanted) or (not variadic and len(arguments) != wanted):
        at_least = "at least " if variadic else ""
        noun = "argument" if wanted == 1 else "arguments"
        return f"JMESPath: `{name}()` takes {at_least}{wanted} {noun}, not {len(arguments)}", f"write {usage}"
    for position, argument in enumerate(arguments, 1):
        spec = signature[min(position, wanted) - 1]
        problem = _argument_problem(name, position, argument, spec.get("types") or [])
        if problem is not None:
            return problem, f"write {usage}"
    return None


def _argument_problem(name: str, position: int, argument: dict[str, Any], types: list[str]) -> str | None:
    """A literal or `&expression` argument of a type the function does not take (other values are data)."""
    if not types:
        return None
    if argument["type"] == "expref" or types == ["expref"]:
        if (argument["type"] == "expref") == ("expref" in types):
            return None
        given = "an expression reference (`&name`)" if argument["type"] == "expref" else "a value"
    elif argument["type"] == "literal":
        value = argument["value"]
        kind = "null" if value is None else _KINDS.get(type(value), "object")
        if kind in types or (kind == "array" and _typed_list(value, types)):
            return None
        noun = {"string": "text", "boolean": "value", "array": "list"}.get(kind, kind)
        given = "null" if value is None else f"the {noun} {_shown(value)}"
    else:
        return None
    accepted = " or ".join(_TYPE_WORDS.get(t, t) for t in types)
    return f"JMESPath: `{name}()` needs {accepted} as argument {position}, not {given}"


def _typed_list(value: list[Any], types: list[str]) -> bool:
    return ("array-number" in types and all(_KINDS.get(type(v)) == "number" for v in value)) or (
        "array-string" in types and all(isinstance(v, str) for v in value)
    )


def _usage(spec: dict[str, Any]) -> str:
    types = spec.get("types") or ["any"]
    text = "|".join("&expression" if t == "expref" else t for t in types)
    return text + ("..." if spec.get("variadic") else "")


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 30 else text[:27] + "..."
