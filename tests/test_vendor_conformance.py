"""Vendor conformance of the shipped mappings (mappings/*.yaml), checked statically from the YAML.

The rules come from the vendor reference kept next to the repository,
``shared/reference/vendor-specs/README.md`` (§2 SAP, §3 ServiceNow, §4 Maximo) and the files it names
(SAP ``derived/*.digest.json`` generated from the EDMX, ServiceNow ``docs/c_TableAPI.md`` and
``c_RESTAPI.md``, Maximo ``restapi-guide/*.mdx``).

Every rule is a plain function ``rule(method, path, params, headers, body) -> list[str]`` returning
problems (empty = conforms), grouped per vendor in ``RULES``; ``check_request`` picks the vendor from the
path. The same functions accept either templates (``{{ ... }}``, as written in a mapping) or rendered values
(as sent), so a runtime checker can call ``check_request`` on each outgoing request. For templates the checks
are the static equivalents: a key predicate must go through ``odata_quote``, a length-limited text through
``truncate_text(n)`` with n within the limit, an Edm.DateTime through ``sap_date``, and so on.

``wire_request`` turns a request as sent (method, URL, headers, body bytes) into the arguments of
``check_request``; tests/test_mapping_cases.py uses it to check every request the shipped mappings send in
their test cases.

Mappings are read with ``yaml.safe_load`` on purpose: this test does not depend on wlmap's own loader.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MAPPINGS_DIR = REPO / "mappings"

# Shipped mapping file -> the vendor every one of its steps must talk to.
SHIPPED: dict[str, str] = {
    "sap.yaml": "sap",
    "servicenow.yaml": "servicenow",
    "maximo.yaml": "maximo",
    "salesforce.yaml": "salesforce",
}

SCHEMA_MODELINE = "# yaml-language-server: $schema=../schemas/mapping.schema.json"

Rule = Callable[[str, str, Mapping[str, Any], Mapping[str, Any], Any], list[str]]

MODIFYING = frozenset({"POST", "PUT", "PATCH", "MERGE", "DELETE"})


class SpecsMissing(Exception):
    """The vendor reference files (shared/reference/vendor-specs) are not available here."""


# ------------------------------------------------------------------------------------------- locating specs


def vendor_specs_dir() -> Path | None:
    """shared/reference/vendor-specs: $WLMAP_VENDOR_SPECS, else ``shared/`` beside the repo or an ancestor."""
    here = Path(__file__).resolve()
    candidates: list[Path] = []
    if os.environ.get("WLMAP_VENDOR_SPECS"):
        candidates.append(Path(os.environ["WLMAP_VENDOR_SPECS"]))
    candidates.append(here.parents[2] / "shared" / "reference" / "vendor-specs")
    candidates.append(here.parents[1].parent / "shared" / "reference" / "vendor-specs")
    candidates.extend(p / "shared" / "reference" / "vendor-specs" for p in here.parents[3:])
    for candidate in candidates:
        if (candidate / "sap" / "derived").is_dir():
            return candidate
    return None


@lru_cache(maxsize=1)
def sap_services() -> dict[str, dict[str, Any]]:
    """Service root -> {entity_sets, entity_types, function_imports}, from sap/derived/*.digest.json."""
    specs = vendor_specs_dir()
    if specs is None:
        raise SpecsMissing(
            "vendor specs not found: expected shared/reference/vendor-specs/sap/derived beside the repo "
            "(or set WLMAP_VENDOR_SPECS); SAP checks need the EDMX digests"
        )
    services: dict[str, dict[str, Any]] = {}
    for digest_file in sorted((specs / "sap" / "derived").glob("*.digest.json")):
        digest = json.loads(digest_file.read_text(encoding="utf-8"))
        merged: dict[str, Any] = {"entity_sets": {}, "entity_types": {}, "function_imports": {}}
        for schema in digest["schemas"]:
            for part in merged:
                merged[part].update(schema.get(part, {}))
        services[digest["service_root"]] = merged
    return services


# ----------------------------------------------------------------------------------------- template helpers

_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
MASK = "\x00"  # stands for "a templated value" inside a masked path


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def mask(text: str) -> tuple[str, list[str]]:
    """Replace every ``{{ ... }}``/``{% ... %}`` by MASK; also return the replaced template texts."""
    found: list[str] = []

    def keep(match: re.Match[str]) -> str:
        found.append(match.group(0))
        return MASK

    return _TEMPLATE.sub(keep, text), found


def uses_filter(template: str, name: str) -> bool:
    return re.search(r"(\||\bfilter)\s*" + re.escape(name) + r"\b", template) is not None


def truncate_limit(template: str) -> int | None:
    """The smallest n of any ``truncate_text(n)`` in the template, if any."""
    limits = [int(n) for n in re.findall(r"truncate_text\(\s*(\d+)\s*\)", template)]
    return min(limits) if limits else None


def text_length_problem(where: str, value: Any, max_length: int) -> str | None:
    """A text limited to max_length: rendered, its length; templated, a truncate_text(n <= max_length)."""
    if is_template(value):
        limit = truncate_limit(value)
        if limit is None:
            return f"{where}: templated text needs | truncate_text(n) with n <= {max_length}"
        if limit > max_length:
            return f"{where}: truncate_text({limit}) exceeds the maximum length {max_length}"
        return None
    if not isinstance(value, str):
        return f"{where}: expected text, got {type(value).__name__}"
    if len(value) > max_length:
        return f"{where}: {len(value)} characters, maximum {max_length}"
    return None


def lower_keys(mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in (mapping or {}).items()}


def header_text(headers: Mapping[str, Any], name: str) -> str | None:
    value = lower_keys(headers).get(name.lower())
    return None if value is None else str(value)


def json_media(value: str | None) -> bool:
    return value is not None and (is_template(value) or "application/json" in value.lower())


# ===================================================================================================== SAP
# vendor-specs/README.md §2; sap/derived/*.digest.json (from the EDMX files); *.openapi.json.

SAP_PREFIX = "/sap/opu/odata/sap/"
# Names that appear in third-party mocks but in no vendor file (README §2.1).
SAP_WRONG_SERVICES = {
    "API_MAINTNOTIFICATION_SRV": "API_MAINTNOTIFICATION",
    "API_MAINTENANCEORDER_SRV": "API_MAINTENANCEORDER",
}
_SAP_RESOURCE = re.compile(
    r"^(?P<name>\$batch|\$metadata|[A-Za-z_][A-Za-z0-9_]*)(?:\((?P<key>[^)]*)\))?(?:/(?P<nav>[A-Za-z_]\w*))?$"
)
_SAP_QUOTED = re.compile(r"^'[^']*(''[^']*)*'$")  # OpenAPI pattern for quoted string literals
_SAP_DATE = re.compile(r"^/Date\(-?\d+\)/$")
_SAP_DATE_OFFSET = re.compile(r"^/Date\(-?\d+([+-]\d{4})?\)/$")
_SAP_TIME = re.compile(r"^PT\d{1,2}H\d{1,2}M\d{1,2}(\.\d+)?S$")


def _sap_target(path: str) -> tuple[str, str, list[str]]:
    """(service root, masked resource part, templates in it) of an SAP path."""
    masked, templates = mask(path)
    rest = masked[len(SAP_PREFIX) :]
    service, _, resource = rest.partition("/")
    return SAP_PREFIX + service, resource, templates


def _sap_quoted_value_problem(where: str, value: str, max_length: int | None) -> str | None:
    """A quoted OData string literal (key value or function-import parameter), template or rendered."""
    if is_template(value):
        if not uses_filter(value, "odata_quote"):
            return f"{where}: quote the value with | odata_quote (embedded quotes must be doubled)"
        return None
    if not _SAP_QUOTED.match(value):
        return f"{where}: {value!r} is not a single-quoted OData string literal"
    inner = value[1:-1].replace("''", "'")
    if max_length is not None and len(inner) > max_length:
        return f"{where}: {len(inner)} characters, maximum {max_length}"
    return None


def _sap_key_problems(key: str, templates: list[str], entity_type: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    keys: list[str] = entity_type["keys"]
    props: dict[str, Any] = entity_type["properties"]
    it = iter(templates)

    def unmask(part: str) -> str:
        return "".join(next(it) if ch == MASK else ch for ch in part)

    parts = [p for p in re.split(r",(?=(?:[^']*'[^']*')*[^']*$)", key)] if key else []
    values: dict[str, str] = {}
    if len(parts) == 1 and "=" not in parts[0].split("'")[0]:
        if len(keys) != 1:
            return [f"key ({key}): {len(keys)} key properties {keys} must be named"]
        values[keys[0]] = unmask(parts[0])
    else:
        for part in parts:
            name, eq, value = part.partition("=")
            if not eq or name not in keys:
                problems.append(f"key part {part!r}: not one of the key properties {keys}")
                continue
            values[name] = unmask(value)
        if set(values) != set(keys) and not problems:
            problems.append(f"key ({key}): needs exactly the key properties {keys}")
    for name, value in values.items():
        prop = props[name]
        if prop["type"] == "Edm.String":
            if value.startswith("'") and value.endswith("'") and is_template(value):
                problems.append(
                    f"key {name}: write {{{{ x | odata_quote }}}}, not '{{{{ x }}}}', so quotes get doubled"
                )
                continue
            max_length = int(prop["MaxLength"]) if "MaxLength" in prop else None
            problem = _sap_quoted_value_problem(f"key {name}", value, max_length)
            if problem:
                problems.append(problem)
    return problems


def sap_rule_path(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """Service root, entity set / function import names (exact), key syntax, method allowed on it."""
    if not path.startswith(SAP_PREFIX):
        return [f"{path}: not below {SAP_PREFIX}"]
    root, resource, templates = _sap_target(path)
    service = root[len(SAP_PREFIX) :]
    if service in SAP_WRONG_SERVICES:
        return [f"{root}: unknown service (no vendor file names it); use {SAP_PREFIX}{SAP_WRONG_SERVICES[service]}"]
    services = sap_services()
    if root not in services:
        return [f"{root}: unknown service root; known: {sorted(services)}"]
    spec = services[root]
    if resource == "":
        return [] if method in {"GET", "HEAD"} else [f"{method} {root}/: only GET/HEAD (CSRF fetch) on the root"]
    match = _SAP_RESOURCE.match(resource)
    if not match:
        return [f"{resource}: not an OData V2 resource path (EntitySet, EntitySet('key'), .../nav, Function)"]
    name, key, nav = match.group("name"), match.group("key"), match.group("nav")
    if name == "$metadata":
        return [] if method in {"GET", "HEAD"} else [f"{method} $metadata: read only"]
    if name == "$batch":
        return [] if method == "POST" else [f"{method} $batch: must be POST"]
    if name in spec["function_imports"]:
        fi = spec["function_imports"][name]
        problems = []
        if key is not None or nav is not None:
            problems.append(f"{name}: a function import takes its parameters in the query, not as a key")
        if method != fi["http_method"]:
            problems.append(f"{method} {name}: the function import is declared m:HttpMethod={fi['http_method']}")
        return problems
    if name not in spec["entity_sets"]:
        near = [n for n in [*spec["entity_sets"], *spec["function_imports"]] if n.lower() == name.lower()]
        hint = f" (names are case-sensitive: {near[0]})" if near else ""
        return [f"{name}: no such entity set or function import in {root}{hint}"]
    entity_set = spec["entity_sets"][name]
    entity_type = spec["entity_types"][entity_set["entity_type"]]
    problems = []
    if key is not None:
        problems.extend(_sap_key_problems(key, templates, entity_type))
    if nav is not None:
        allowed = {"GET", "POST"}
    elif key is not None:
        allowed = {"GET", "HEAD"}
        if entity_set["updatable"]:
            allowed |= {"PATCH", "MERGE", "PUT"}
        if entity_set["deletable"]:
            allowed.add("DELETE")
    else:
        allowed = {"GET", "HEAD"} | ({"POST"} if entity_set["creatable"] else set())
    if method not in allowed:
        problems.append(f"{method} {name}{'(…)' if key is not None else ''}: allowed here: {sorted(allowed)}")
    return problems


def sap_rule_params(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """Function-import parameters: known names, required ones present, OData literal syntax."""
    if not path.startswith(SAP_PREFIX):
        return []
    root, resource, _ = _sap_target(path)
    spec = sap_services().get(root)
    if spec is None or resource not in spec["function_imports"]:
        return []
    declared: dict[str, Any] = spec["function_imports"][resource]["parameters"]
    problems = []
    own = {k: v for k, v in params.items() if k != "sap-client" and not k.startswith("$")}
    for name, value in own.items():
        if name not in declared:
            problems.append(f"{resource}: unknown parameter {name}; declared: {sorted(declared)}")
            continue
        kind = declared[name]["type"]
        text = str(value)
        if kind == "Edm.String":
            max_length = int(declared[name]["MaxLength"]) if "MaxLength" in declared[name] else None
            problem = _sap_quoted_value_problem(f"{resource} {name}", text, max_length)
            if problem:
                problems.append(problem)
        elif kind == "Edm.DateTime" and not is_template(text) and not text.startswith("datetime'"):
            problems.append(f"{resource} {name}: Edm.DateTime literal is datetime'YYYY-MM-DDThh:mm'")
        elif kind == "Edm.Time" and not is_template(text) and not text.startswith("time'"):
            problems.append(f"{resource} {name}: Edm.Time literal is time'PThhHmmMssS'")
    for name, decl in declared.items():
        if decl.get("Nullable") != "true" and name not in own:
            problems.append(f"{resource}: required parameter {name} missing")
    return problems


def sap_rule_headers(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """Accept/Content-Type JSON, CSRF token on modifying requests, If-Match where the set has an ETag."""
    problems = []
    if not json_media(header_text(headers, "accept")):
        problems.append("Accept: application/json is required")
    if body is not None and not json_media(header_text(headers, "content-type")):
        problems.append("Content-Type: application/json is required on requests with a body")
    token = header_text(headers, "x-csrf-token")
    if method in MODIFYING and (not token or token.strip().lower() == "fetch"):
        problems.append(f"{method}: needs a fetched x-csrf-token (configure csrf on the connection)")
    if method in MODIFYING and not (header_text(headers, "cookie") or "").strip():
        problems.append(f"{method}: needs the session cookies set by the CSRF token fetch (the token is bound to them)")
    if header_text(headers, "authorization") is None:
        problems.append("no Authorization (Basic) header")
    if method in {"PATCH", "MERGE", "PUT", "DELETE"} and path.startswith(SAP_PREFIX):
        root, resource, _ = _sap_target(path)
        match = _SAP_RESOURCE.match(resource)
        spec = sap_services().get(root)
        if match and spec and match.group("name") in spec["entity_sets"]:
            entity_set = spec["entity_sets"][match.group("name")]
            if "optimistic_concurrency_etag_properties" in entity_set:
                if_match = header_text(headers, "if-match")
                if not if_match or not if_match.strip():
                    problems.append(
                        f"{method} {match.group('name')}: If-Match is required (OptimisticConcurrency "
                        f"{entity_set['optimistic_concurrency_etag_properties'] or 'hash ETag'}; "
                        "missing gives 428)"
                    )
    return problems


def _sap_value_problem(where: str, prop: dict[str, Any], value: Any) -> str | None:
    kind = prop["type"]
    if value is None:
        return None if prop.get("Nullable") != "false" else f"{where}: not nullable"
    if kind == "Edm.String":
        return text_length_problem(where, value, int(prop["MaxLength"])) if "MaxLength" in prop else None
    if kind in {"Edm.DateTime", "Edm.DateTimeOffset"}:
        if is_template(value):
            return None if uses_filter(value, "sap_date") else f"{where}: {kind} needs | sap_date (/Date(ms)/)"
        pattern = _SAP_DATE if kind == "Edm.DateTime" else _SAP_DATE_OFFSET
        return None if isinstance(value, str) and pattern.match(value) else f"{where}: {value!r} is not {kind}"
    if kind == "Edm.Time":
        if is_template(value):
            return None if uses_filter(value, "sap_time") else f"{where}: Edm.Time needs | sap_time (PT15H51M04S)"
        return None if isinstance(value, str) and _SAP_TIME.match(value) else f"{where}: {value!r} is not Edm.Time"
    if kind == "Edm.Boolean":
        return None if isinstance(value, bool) or is_template(value) else f"{where}: Edm.Boolean is true/false"
    if kind == "Edm.Decimal":
        return None if isinstance(value, str) else f"{where}: Edm.Decimal is sent as a JSON string"
    return None


def sap_rule_body(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """PATCH/MERGE/PUT only updatable properties, POST only creatable (+ required); EDM type encodings."""
    if not path.startswith(SAP_PREFIX):
        return []
    root, resource, _ = _sap_target(path)
    spec = sap_services().get(root)
    match = _SAP_RESOURCE.match(resource)
    if spec is None or match is None:
        return []
    name = match.group("name")
    if name in spec["function_imports"]:
        return [] if body in (None, {}, "") else [f"{name}: function-import parameters go in the URL, not a body"]
    if name not in spec["entity_sets"] or match.group("nav") is not None:
        return []
    entity_set = spec["entity_sets"][name]
    props: dict[str, Any] = spec["entity_types"][entity_set["entity_type"]]["properties"]
    if method in {"GET", "HEAD", "DELETE"}:
        return [] if body is None else [f"{method} {name}: no body expected"]
    if not isinstance(body, dict):
        return [f"{method} {name}: body must be a JSON object"]
    inner = body["d"] if set(body) == {"d"} and isinstance(body["d"], dict) else body  # both forms (README §2.5)
    is_update = match.group("key") is not None
    flag = "updatable" if is_update else "creatable"
    problems = []
    for prop_name, value in inner.items():
        if prop_name not in props:
            problems.append(f"{name}.{prop_name}: no such property in {entity_set['entity_type']}")
            continue
        if not props[prop_name][flag]:
            problems.append(f"{name}.{prop_name}: not {flag} (sap:{flag}=false)")
        problem = _sap_value_problem(f"{name}.{prop_name}", props[prop_name], value)
        if problem:
            problems.append(problem)
    if not is_update:
        missing = [p for p in entity_set.get("insert_required_properties", []) if p not in inner]
        if missing:
            problems.append(f"POST {name}: required on create: {missing}")
    return problems


def sap_success_statuses(method: str, path: str) -> set[int]:
    """OpenAPI: GET 200, POST entity 201, PATCH/MERGE/PUT/DELETE 204, function import 200."""
    root, resource, _ = _sap_target(path)
    spec = sap_services().get(root, {"function_imports": {}})
    name = resource.split("(")[0].split("/")[0]
    if name in spec["function_imports"]:
        return {200}
    return {"GET": {200}, "HEAD": {200}, "POST": {201}}.get(method, {204})


# ================================================================================================= ServiceNow
# vendor-specs/README.md §3; servicenow/docs/c_TableAPI.md, c_RESTAPI.md; table_api_latest.openapi.json.

_SNOW_PATH = re.compile(r"^/api/now/(?:(?P<version>v\d+)/)?table/(?P<table>[^/]+)(?:/(?P<sys_id>[^/]+))?$")
_SYS_ID = re.compile(r"^[0-9a-f]{32}$")
_SNOW_COMMON = {"sysparm_display_value", "sysparm_exclude_reference_link", "sysparm_fields", "sysparm_view"}
_SNOW_WRITE = _SNOW_COMMON | {"sysparm_input_display_value", "sysparm_suppress_auto_sys_field"}
SNOW_ALLOWED_PARAMS: dict[tuple[str, str], set[str]] = {
    ("GET", "collection"): _SNOW_COMMON
    | {
        "sysparm_query",
        "sysparm_limit",
        "sysparm_offset",
        "sysparm_query_category",
        "sysparm_query_no_domain",
        "sysparm_suppress_pagination_header",
        "sysparm_no_count",
    },
    ("GET", "record"): _SNOW_COMMON | {"sysparm_query_no_domain"},
    ("POST", "collection"): _SNOW_WRITE,
    ("PATCH", "record"): _SNOW_WRITE | {"sysparm_query_no_domain"},
    ("PUT", "record"): _SNOW_WRITE | {"sysparm_query_no_domain"},
    ("DELETE", "record"): {"sysparm_query_no_domain"},
}
SNOW_SUCCESS: dict[tuple[str, str], int] = {
    ("GET", "collection"): 200,
    ("GET", "record"): 200,
    ("POST", "collection"): 201,
    ("PATCH", "record"): 200,
    ("PUT", "record"): 200,
    ("DELETE", "record"): 204,
}
_SNOW_ENUMS = {
    "sysparm_display_value": {"true", "false", "all"},
    "sysparm_view": {"desktop", "mobile", "both"},
    "sysparm_exclude_reference_link": {"true", "false"},
    "sysparm_input_display_value": {"true", "false"},
    "sysparm_suppress_auto_sys_field": {"true", "false"},
    "sysparm_query_no_domain": {"true", "false"},
    "sysparm_suppress_pagination_header": {"true", "false"},
    "sysparm_no_count": {"true", "false"},
}
# Incident fields named in the vendor examples (c_TableAPI.md, README §3); custom fields start with u_.
INCIDENT_FIELDS = {
    "number", "short_description", "description", "state", "incident_state", "impact", "urgency", "priority",
    "severity", "category", "subcategory", "caller_id", "assigned_to", "assignment_group", "cmdb_ci",
    "company",
    "location", "work_notes", "comments", "comments_and_work_notes", "work_notes_list", "close_code",
    "close_notes", "opened_at", "resolved_at", "closed_at", "active", "contact_type", "correlation_id",
    "correlation_display", "business_service", "parent", "due_date", "follow_up", "additional_assignee_list",
}  # fmt: skip
SNOW_TABLE_FIELDS: dict[str, set[str]] = {"incident": INCIDENT_FIELDS}


def _snow_form(path: str) -> tuple[re.Match[str] | None, str]:
    masked, _ = mask(path)
    match = _SNOW_PATH.match(masked)
    return match, ("record" if match and match.group("sys_id") else "collection")


def servicenow_rule_path(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """/api/now[/vN]/table/{tableName}[/{sys_id}], sys_id 32 hex, method allowed on that form."""
    match, form = _snow_form(path)
    if match is None:
        return [f"{path}: not /api/now/table/{{tableName}} or /api/now/table/{{tableName}}/{{sys_id}}"]
    problems = []
    table = match.group("table")
    if MASK not in table and not re.fullmatch(r"[a-z0-9_]+", table):
        problems.append(f"table {table!r}: table names are lower-case identifiers")
    sys_id = match.group("sys_id")
    if sys_id is not None and MASK not in sys_id and not _SYS_ID.match(sys_id):
        problems.append(f"sys_id {sys_id!r}: 32 lower-case hex characters expected")
    if (method, form) not in SNOW_SUCCESS:
        allowed = sorted(m for (m, f) in SNOW_SUCCESS if f == form)
        problems.append(f"{method} on a {form} path: allowed {allowed}")
    return problems


def servicenow_rule_params(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """Only the sysparm_ parameters the Table API lists for the method; field filters on GET list only."""
    _, form = _snow_form(path)
    allowed = SNOW_ALLOWED_PARAMS.get((method, form))
    if allowed is None:
        return []
    problems = []
    field_filters = [p for p in params if not p.startswith("sysparm_")]
    for name, value in params.items():
        if name.startswith("sysparm_"):
            if name not in allowed:
                problems.append(f"{method} {form}: {name} is not a parameter of this method")
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if name in _SNOW_ENUMS and not is_template(text) and text not in _SNOW_ENUMS[name]:
                problems.append(f"{name}={text}: allowed {sorted(_SNOW_ENUMS[name])}")
            if name in {"sysparm_limit", "sysparm_offset"} and not is_template(text) and not text.isdigit():
                problems.append(f"{name}={text}: a non-negative integer")
        elif (method, form) != ("GET", "collection"):
            problems.append(f"{method} {form}: {name} is not a parameter of this method")
    if (method, form) == ("GET", "collection") and field_filters and "sysparm_query" in params:
        problems.append(f"field filters {field_filters} and sysparm_query are mutually exclusive")
    return problems


def servicenow_rule_headers(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """Accept on every call; Content-Type on POST/PUT/PATCH/DELETE (missing -> 400); Basic/OAuth auth."""
    problems = []
    accept = header_text(headers, "accept")
    if accept is None or not (is_template(accept) or re.search(r"application/(json|xml)", accept)):
        problems.append("Accept: application/json (or application/xml) is required on every call")
    if method in {"POST", "PUT", "PATCH", "DELETE"}:
        content_type = header_text(headers, "content-type")
        if content_type is None or not (
            is_template(content_type) or re.search(r"application/(json|xml)", content_type)
        ):
            problems.append(f"{method}: Content-Type: application/json (or xml) is required")
    if header_text(headers, "authorization") is None:
        problems.append("no Authorization header (Basic or OAuth bearer)")
    return problems


def servicenow_rule_body(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """Flat object of field: value; no sys_ fields; fields known for the table (or custom u_)."""
    match, _ = _snow_form(path)
    if method in {"GET", "DELETE"}:
        return [] if body is None else [f"{method}: no body expected"]
    if body is None:
        return []
    if not isinstance(body, dict):
        return ["body must be a flat JSON object of field: value"]
    table = match.group("table") if match else ""
    known = SNOW_TABLE_FIELDS.get(table)
    problems = []
    for field, value in body.items():
        if field.startswith("sys_"):
            problems.append(f"{field}: sys_ fields are generated by the system and cannot be written")
        elif known is not None and field not in known and not field.startswith("u_"):
            problems.append(f"{table}.{field}: not a known {table} field (custom fields start with u_)")
        if isinstance(value, dict | list):
            problems.append(f"{field}: values are plain strings, not {type(value).__name__}")
    return problems


def servicenow_success_statuses(method: str, path: str) -> set[int]:
    _, form = _snow_form(path)
    status = SNOW_SUCCESS.get((method, form))
    return {status} if status else set()


# ===================================================================================================== Maximo
# vendor-specs/README.md §4; maximo/restapi-guide/crud__create_and_update.mdx, authentication__apikey.mdx,
# query__filtering.mdx, query__selecting.mdx, duplicaterequests.mdx.

_MAXIMO_PATH = re.compile(r"^/maximo/(?P<route>oslc|api)/os/(?P<os>[^/]+)(?:/(?P<restid>[^/]+))?$")
# Server-managed or read-only properties (README §4); never sent in a body.
MAXIMO_READ_ONLY = {"href", "localref", "_rowstamp", "_id", "_imagelibref", "workorderid", "hasld"}
MAXIMO_PK = {"mxapiwodetail": {"siteid", "wonum"}, "mxwo": {"siteid", "wonum"}}
# Child objects whose fields are known: name -> {field: max length (None = not text / no limit known)}.
WORKLOG_FIELDS: dict[str, int | None] = {
    "description": 100,
    "description_longdescription": 32000,
    "logtype": 16,
    "clientviewable": None,
    "createby": 30,
    "createdate": None,
}
MAXIMO_CHILDREN: dict[str, dict[str, dict[str, int | None]]] = {
    "mxapiwodetail": {"worklog": WORKLOG_FIELDS},
    "mxwo": {"worklog": WORKLOG_FIELDS},
}
_CHILD_MATCHING = {"href", "_action", "worklogid"}  # allowed in a MERGE child besides its fields


def _maximo_target(path: str) -> re.Match[str] | None:
    masked, _ = mask(path)
    return _MAXIMO_PATH.match(masked)


def maximo_rule_path(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """/maximo/oslc/os/{os}[/{restid}] or /maximo/api/os/...; updates are POST, never HTTP PATCH/PUT."""
    match = _maximo_target(path)
    if match is None:
        return [f"{path}: not /maximo/oslc/os/<object structure>[/<rest id>] (or /maximo/api/os/...)"]
    problems = []
    os_name, restid = match.group("os"), match.group("restid")
    if MASK not in os_name and not re.fullmatch(r"[a-z0-9_]+", os_name):
        problems.append(f"object structure {os_name!r}: use the lower-case name")
    if restid is not None and MASK not in restid and not restid.startswith("_"):
        problems.append(f"rest id {restid!r}: rest ids start with '_' (take the href from a GET or Location)")
    if method in {"PATCH", "PUT", "MERGE"}:
        problems.append(f"HTTP {method}: Maximo updates are POST with x-method-override: PATCH")
    elif method == "DELETE" and restid is None:
        problems.append("DELETE: only on a member URI")
    elif method not in {"GET", "HEAD", "POST", "DELETE"}:
        problems.append(f"HTTP {method}: not used by the Maximo REST API")
    return problems


def maximo_rule_params(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """lean=1 on every request; the API key goes in a header, not ?apikey=."""
    problems = []
    if str(params.get("lean")) != "1":
        problems.append("lean=1 is required on every request")
    if "apikey" in params:
        problems.append("apikey as a query parameter: send the apikey header instead")
    return problems


def _maximo_child_arrays(body: Any) -> list[str]:
    return [k for k, v in body.items() if isinstance(v, list)] if isinstance(body, dict) else []


def maximo_rule_headers(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """x-method-override for updates, patchtype MERGE with child arrays, JSON headers, apikey/maxauth auth."""
    match = _maximo_target(path)
    problems = []
    override = (header_text(headers, "x-method-override") or "").upper() or None
    patchtype = (header_text(headers, "patchtype") or "").upper() or None
    member = bool(match and match.group("restid"))
    if method == "POST" and member and override != "PATCH":
        problems.append("POST to a member: updates need x-method-override: PATCH")
    if method == "POST" and not member and override not in {None, "BULK", "SYNC"}:
        problems.append(f"POST to a collection: x-method-override {override} (create: none; BULK; SYNC)")
    if method != "POST" and override is not None:
        problems.append(f"x-method-override on HTTP {method}: only on POST")
    children = _maximo_child_arrays(body)
    if children and override in {"PATCH", "SYNC"} and patchtype != "MERGE":
        problems.append(
            f"child arrays {children} without patchtype: MERGE replace all existing children (deleting the others)"
        )
    if not json_media(header_text(headers, "accept")):
        problems.append("Accept: application/json expected")
    if body is not None and not json_media(header_text(headers, "content-type")):
        problems.append("Content-Type: application/json expected on requests with a body")
    if not any(header_text(headers, h) for h in ("apikey", "maxauth", "authorization")):
        problems.append("no apikey (or maxauth / Authorization) header")
    return problems


def maximo_rule_body(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """No read-only or primary-key attributes on update; child arrays and their fields known; lengths."""
    match = _maximo_target(path)
    if body is None or match is None:
        return []
    if method == "GET":
        return ["GET: no body expected"]
    if isinstance(body, list):  # BULK: one object per record
        return [p for item in body for p in maximo_rule_body(method, path, params, {}, item)]
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    os_name = match.group("os")
    member = match.group("restid") is not None
    problems = [f"{k}: read-only / server-managed" for k in body if k in MAXIMO_READ_ONLY]
    if member:
        problems.extend(
            f"{k}: primary key, cannot change after create" for k in body if k in MAXIMO_PK.get(os_name, ())
        )
    problems.extend(
        f"{k}: *_description/*_maxvalue are read-only" for k in body if k.endswith(("_description", "_maxvalue"))
    )
    known_children = MAXIMO_CHILDREN.get(os_name, {})
    for child in _maximo_child_arrays(body):
        fields = known_children.get(child)
        if fields is None:
            problems.append(f"{child}: child object not in the checker's table for {os_name}; add its fields")
            continue
        for index, item in enumerate(body[child]):
            if not isinstance(item, dict):
                problems.append(f"{child}[{index}]: must be an object")
                continue
            for name, value in item.items():
                where = f"{child}[{index}].{name}"
                if name in _CHILD_MATCHING:
                    continue
                if name not in fields:
                    problems.append(f"{where}: not a known {child} field {sorted(fields)}")
                    continue
                max_length = fields[name]
                if max_length is not None:
                    problem = text_length_problem(where, value, max_length)
                    if problem:
                        problems.append(problem)
            logtype = item.get("logtype")
            if (
                child == "worklog"
                and isinstance(logtype, str)
                and not is_template(logtype)
                and logtype != logtype.upper()
            ):
                problems.append(f"{child}[{index}].logtype: UPPER attribute, write {logtype.upper()}")
    return problems


def maximo_success_statuses(method: str, path: str) -> set[int]:
    """GET 200; update 200 (with a properties header) or 204; create 201; delete 200/204."""
    match = _maximo_target(path)
    member = bool(match and match.group("restid"))
    if method == "GET":
        return {200}
    if method == "POST":
        return {200, 204} if member else {200, 201}
    return {200, 204}


# ================================================================================================= Salesforce
# Salesforce REST API Developer Guide (developer.salesforce.com/docs/atlas.en-us.api_rest.meta): "Execute a SOQL
# Query", "Update a Record", "Create a Record", "Status Codes and Error Responses"; SOQL and SOSL Reference:
# "Reserved Characters", "Quoted String Escape Sequences"; Object Reference "FeedItem"; Salesforce Help "OAuth 2.0
# Client Credentials Flow for Server-to-Server Integration". Not in vendor-specs/: the rules are cited here.

_SF_PATH = re.compile(
    r"^/services/data/(?P<version>v\d+\.\d)/(?P<resource>query|sobjects)"
    r"(?:/(?P<sobject>[^/]+)(?:/(?P<id>[^/]+))?)?/?$"
)
_SF_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")  # record ids: 15 characters, or 18 case-safe
_SF_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # API names; custom ones end in __c
# "Create a Record" / "Update a Record": the id is in the URL or the answer, never in the sobject data.
_SF_NOT_IN_BODY = {"Id", "attributes", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById"}
SF_FEEDITEM_TYPES = {"TextPost", "LinkPost", "ContentPost"}
SF_FEEDITEM_BODY_MAX = 10000  # FeedItem.Body: textarea(10000), Field Reference "FeedItem"


def _sf_target(path: str) -> re.Match[str] | None:
    masked, _ = mask(path)
    return _SF_PATH.match(masked)


def salesforce_rule_path(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """/services/data/vXX.X/query (GET), …/sobjects/{SObject} (POST create), …/sobjects/{SObject}/{id}
    (GET, PATCH update, DELETE); ids of 15 or 18 characters."""
    match = _sf_target(path)
    if match is None:
        return [f"{path}: not /services/data/vXX.X/query or /services/data/vXX.X/sobjects/{{SObject}}[/{{id}}]"]
    resource, sobject, record = match.group("resource", "sobject", "id")
    if resource == "query":
        if sobject is not None:
            return [f"{path}: a query locator (query/<id>) is followed by nextRecordsUrl, not built by a mapping"]
        return [] if method == "GET" else [f"{method} on query: only GET"]
    problems = []
    if sobject is None:
        return [f"{path}: name the sObject, e.g. /sobjects/WorkOrder"]
    if MASK not in sobject and not _SF_NAME.match(sobject):
        problems.append(f"sObject {sobject!r}: not an API name")
    if record is None and method not in {"POST", "GET"}:
        problems.append(f"{method} on /sobjects/{sobject}: create with POST (or GET its basic information)")
    if record is not None:
        if method not in {"GET", "PATCH", "DELETE"}:
            problems.append(f"{method} on a record: GET, PATCH (update) or DELETE")
        if MASK not in record and not _SF_ID.match(record):
            problems.append(f"record id {record!r}: 15 or 18 letters and digits")
    return problems


def _soql_problems(soql: str) -> list[str]:
    """A SOQL statement: SELECT … FROM …, every string literal closed, with only the documented escapes."""
    problems = []
    if not re.match(r"(?is)^\s*SELECT\s.+\sFROM\s+\w+", soql):
        problems.append(f"q={soql[:60]!r}: not a SOQL SELECT … FROM …")
    inside, index = False, 0
    while index < len(soql):
        char = soql[index]
        if inside and char == "\\":
            if soql[index + 1 : index + 2] not in ("n", "N", "r", "R", "t", "T", "b", "B", "f", "F", '"', "'", "\\",
                                                  "_", "%", "u"):  # fmt: skip
                problems.append(f"q: `\\{soql[index + 1 : index + 2]}` is not a SOQL escape sequence")
            index += 2
            continue
        if char == "'":
            inside = not inside
        index += 1
    if inside:
        problems.append("q: a string literal is never closed (a quote in a value not escaped?)")
    return problems


def salesforce_rule_params(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """Query: exactly `q`, a SOQL statement whose inserted values go through `soql_quote`. Records: no params."""
    match = _sf_target(path)
    if match is None or match.group("resource") != "query":
        return [f"{name}: not a parameter here" for name in params if name != "fields"]
    if set(params) != {"q"}:
        return [f"query takes exactly `q` (the SOQL), got {sorted(params)}"]
    soql = str(params["q"])
    if is_template(soql):
        masked, templates = mask(soql)
        unquoted = [t for t in templates if not uses_filter(t, "soql_quote")]
        problems = [f"q: {t} is inserted into SOQL without `| soql_quote`" for t in unquoted]
        return problems + _soql_problems(masked.replace(MASK, "'x'"))
    return _soql_problems(soql)


def salesforce_rule_headers(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """`Authorization: Bearer <token>` on every call; JSON in and out."""
    problems = []
    authorization = header_text(headers, "authorization") or ""
    if not (is_template(authorization) or authorization.startswith("Bearer ")):
        problems.append("Authorization: Bearer <token> (OAuth 2.0) is required on every call")
    if body is not None and not json_media(header_text(headers, "content-type")):
        problems.append("Content-Type: application/json is required with a JSON body")
    return problems


def salesforce_rule_body(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """POST/PATCH: a flat object of field: value, no Id; a FeedItem TextPost has ParentId and a Body ≤ 10,000."""
    match = _sf_target(path)
    if method in {"GET", "DELETE"}:
        return [] if body is None else [f"{method}: no body expected"]
    if not isinstance(body, dict):
        return ["body must be a JSON object of field: value"]
    problems = []
    for field, value in body.items():
        if field in _SF_NOT_IN_BODY:
            problems.append(f"{field}: not specified in the sobject data (it is in the URL or set by Salesforce)")
        elif not _SF_NAME.match(field):
            problems.append(f"{field}: not a field API name")
        if isinstance(value, dict | list):
            problems.append(f"{field}: a field value is a plain value, not {type(value).__name__}")
    if match is not None and match.group("sobject") == "FeedItem" and method == "POST":
        kind = body.get("Type", "TextPost")
        if not is_template(kind) and kind not in SF_FEEDITEM_TYPES:
            problems.append(f"FeedItem.Type {kind!r}: one of {sorted(SF_FEEDITEM_TYPES)}")
        if "ParentId" not in body:
            problems.append("FeedItem: ParentId (the record whose feed it is posted to) is required")
        if kind == "TextPost":
            if "Body" not in body:
                problems.append("FeedItem: Body is required for a TextPost")
            else:
                problem = text_length_problem("FeedItem.Body", body["Body"], SF_FEEDITEM_BODY_MAX)
                problems.extend([problem] if problem else [])
    return problems


def salesforce_success_statuses(method: str, path: str) -> set[int]:
    """ "Status Codes and Error Responses": 200 GET, 201 POST (create), 204 PATCH and DELETE."""
    return {"GET": {200}, "POST": {201}, "PATCH": {204}, "DELETE": {204}}.get(method, set())


# ====================================================================================================== table

RULES: dict[str, tuple[Rule, ...]] = {
    "sap": (sap_rule_path, sap_rule_params, sap_rule_headers, sap_rule_body),
    "servicenow": (
        servicenow_rule_path,
        servicenow_rule_params,
        servicenow_rule_headers,
        servicenow_rule_body,
    ),
    "maximo": (maximo_rule_path, maximo_rule_params, maximo_rule_headers, maximo_rule_body),
    "salesforce": (salesforce_rule_path, salesforce_rule_params, salesforce_rule_headers, salesforce_rule_body),
}
SUCCESS: dict[str, Callable[[str, str], set[int]]] = {
    "sap": sap_success_statuses,
    "servicenow": servicenow_success_statuses,
    "maximo": maximo_success_statuses,
    "salesforce": salesforce_success_statuses,
}


def vendor_of(path: str) -> str | None:
    if path.startswith(SAP_PREFIX):
        return "sap"
    if path.startswith("/api/now/"):
        return "servicenow"
    if path.startswith("/maximo/"):
        return "maximo"
    if path.startswith("/services/data/"):
        return "salesforce"
    return None


def check_request(
    method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, Any], body: Any
) -> list[str]:
    """All problems of one request (template or rendered) against its vendor's rules."""
    vendor = vendor_of(path)
    if vendor is None:
        return [f"{path}: no vendor rules for this path"]
    headers = lower_keys(headers)
    return [p for rule in RULES[vendor] for p in rule(method, path, params, headers, body)]


def wire_request(
    method: str, url: str, headers: Mapping[str, str], content: bytes | None
) -> tuple[str, str, dict[str, str], dict[str, str], Any]:
    """(method, path, params, headers, body) of a request as it went on the wire, for ``check_request``.

    The path is percent-decoded: wlmap encodes every value it puts into a path, so SAP's key predicate
    ``('10000123')`` arrives as ``(%2710000123%27)``, and servers decode the path before parsing it. Query
    parameters are decoded (a repeated name keeps its last value); header names are lower-cased; a JSON body
    is parsed, a form body becomes a dict, any other body stays text, and no body is None.
    """
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    body: Any = None
    if content:
        text = content.decode("utf-8", errors="replace")
        media = lowered.get("content-type", "").lower()
        if "json" in media:
            body = json.loads(text)
        elif "x-www-form-urlencoded" in media:
            body = dict(parse_qsl(text, keep_blank_values=True))
        else:
            body = text
    return method.upper(), unquote(parts.path), params, lowered, body


# ===================================================================================== reading the mappings


def load_mapping(name: str) -> dict[str, Any]:
    with (MAPPINGS_DIR / name).open(encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    assert isinstance(doc, dict), f"{name}: not a mapping document"
    return doc


def static_request(
    mapping: dict[str, Any], step: dict[str, Any]
) -> tuple[str, str, dict[str, Any], dict[str, Any], Any]:
    """(method, path, params, headers, body) of a step as far as the YAML fixes them.

    Connection params/headers are merged in; auth and CSRF, which wlmap adds itself, become the headers they
    produce (with placeholder values), so the request-level rules see what goes on the wire.
    """
    connection = mapping["connections"][step["connection"]]
    method = step["method"]
    params: dict[str, Any] = dict(connection.get("params") or {})
    if "url" in step:
        parts = urlsplit(step["url"])
        path = parts.path
        params.update(parse_qsl(parts.query))
    else:
        path = step.get("path", "/")
    params.update(step.get("params") or {})
    headers = lower_keys(connection.get("headers"))
    headers.update(lower_keys(step.get("headers")))
    auth = connection.get("auth")
    if isinstance(auth, dict):
        if "basic" in auth:
            headers.setdefault("authorization", "Basic <username:password>")
        elif "bearer" in auth or "oauth2" in auth:
            headers.setdefault("authorization", "Bearer <token>")
        elif "api_key" in auth:
            key = auth["api_key"]
            if key.get("in", "header") == "header":
                headers.setdefault(key["name"].lower(), key["value"])
            else:
                params.setdefault(key["name"], key["value"])
    csrf = connection.get("csrf")
    if csrf is not None and method in MODIFYING:
        headers.setdefault((csrf.get("header") or "x-csrf-token").lower(), "<token fetched with x-csrf-token: Fetch>")
        headers.setdefault("cookie", "<session cookies set by the token fetch>")
    body = step.get("json", step.get("form", step.get("body")))
    return method, path, params, headers, body


def shipped_steps() -> Iterator[Any]:
    for name in SHIPPED:
        if not (MAPPINGS_DIR / name).is_file():
            continue
        for index, step in enumerate(load_mapping(name).get("steps") or []):
            yield pytest.param(name, index, id=f"{name}:{step.get('name', index)}")


def _run_or_skip(func: Callable[[], Any]) -> Any:
    try:
        return func()
    except SpecsMissing as exc:
        pytest.skip(str(exc))


# ====================================================================================================== tests


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_mapping_is_present(name: str) -> None:
    path = MAPPINGS_DIR / name
    assert path.is_file(), f"{path} is missing"
    assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_MODELINE
    assert load_mapping(name).get("steps"), f"{name}: no steps"


@pytest.mark.parametrize(("name", "index"), list(shipped_steps()))
def test_step_conforms_to_vendor_rules(name: str, index: int) -> None:
    mapping = load_mapping(name)
    method, path, params, headers, body = static_request(mapping, mapping["steps"][index])
    assert vendor_of(path) == SHIPPED[name], f"{path}: expected a {SHIPPED[name]} path"
    problems = _run_or_skip(lambda: check_request(method, path, params, headers, body))
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(("name", "index"), list(shipped_steps()))
def test_step_expects_the_vendor_success_status(name: str, index: int) -> None:
    mapping = load_mapping(name)
    step = mapping["steps"][index]
    method, path, *_ = static_request(mapping, step)
    success = _run_or_skip(lambda: SUCCESS[SHIPPED[name]](method, path))
    expect = set(step.get("expect") or [])
    assert expect, f"{step['name']}: state the expected status (vendor: {sorted(success)})"
    assert expect <= success, f"{step['name']}: expect {sorted(expect)}, vendor documents {sorted(success)}"


def test_sap_connection_fetches_csrf_from_the_service_root() -> None:
    mapping = load_mapping("sap.yaml")
    for step in mapping["steps"]:
        if step["method"] not in MODIFYING:
            continue
        connection = mapping["connections"][step["connection"]]
        csrf = connection.get("csrf")
        assert csrf is not None, f"{step['name']}: modifying SAP request on a connection without csrf"
        root = _sap_target(step["path"])[0]
        fetch = csrf.get("fetch_path", "/")
        assert fetch.rstrip("/") in {root, root + "/$metadata"}, f"csrf fetch_path {fetch}: use {root}/"
        assert "basic" in (connection.get("auth") or {}), "SAP: Basic auth (OpenAPI basicAuthentication)"


def test_sap_patch_reads_the_etag_first() -> None:
    mapping = load_mapping("sap.yaml")
    names = [s["name"].replace("-", "_") for s in mapping["steps"]]
    for position, step in enumerate(mapping["steps"]):
        if step["method"] != "PATCH":
            continue
        if_match = lower_keys(step.get("headers")).get("if-match", "")
        earlier = [n for n in names[:position] if f"steps.{n}." in if_match]
        assert earlier, f"{step['name']}: If-Match must come from an earlier GET's ETag capture"
        source = mapping["steps"][names.index(earlier[0])]
        assert source["method"] == "GET" and "etag" in " ".join(source.get("capture", {}).values()).lower()
        assert source["path"] == step["path"], "the ETag must be read from the entity being patched"


def test_servicenow_connection_uses_basic_or_oauth() -> None:
    for name, connection in load_mapping("servicenow.yaml")["connections"].items():
        if "base_url" in connection:
            auth = connection.get("auth") or {}
            assert {"basic", "bearer", "oauth2"} & set(auth), f"{name}: Basic or OAuth auth"


def test_maximo_connection_uses_the_apikey_header() -> None:
    for name, connection in load_mapping("maximo.yaml")["connections"].items():
        if "base_url" in connection:
            key = (connection.get("auth") or {}).get("api_key")
            assert key is not None, f"{name}: use api_key auth"
            assert key["name"].lower() == "apikey" and key.get("in", "header") == "header", key


def test_salesforce_connection_uses_the_client_credentials_flow_on_its_my_domain() -> None:
    """Salesforce Help, "OAuth 2.0 Client Credentials Flow for Server-to-Server Integration": the app POSTs
    grant_type=client_credentials with its consumer key and secret to <My Domain>/services/oauth2/token."""
    for name, connection in load_mapping("salesforce.yaml")["connections"].items():
        if "base_url" not in connection:
            continue
        oauth2 = (connection.get("auth") or {}).get("oauth2")
        assert oauth2 is not None, f"{name}: use oauth2 (client credentials)"
        assert oauth2["token_url"] == connection["base_url"].rstrip("/") + "/services/oauth2/token", oauth2
        assert {"client_id", "client_secret"} <= set(oauth2), oauth2
        assert "scopes" not in oauth2, "scopes come from the app's settings, not from the token request"


# ---------------------------------------------------------------- the checker itself, on rendered requests

_SAP_NOTIF = "/sap/opu/odata/sap/API_MAINTNOTIFICATION/MaintenanceNotification('10000123')"
_SAP_HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/json",
    "Authorization": "Basic dXNlcjpwYXNz",
    "x-csrf-token": "Z3xpQ0fD-Lq4aB1xk9wVrQ==",
    "Cookie": "SAP_SESSIONID_S4H_100=Zm9v; sap-usercontext=sap-client=100",
    "If-Match": "W/\"datetimeoffset'2024-04-30T14%3A22%3A05.0000000Z'\"",
}
_SNOW_HEADERS = {"Accept": "application/json", "Content-Type": "application/json", "Authorization": "Basic x"}
_MAXIMO_HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/json",
    "apikey": "k",
    "x-method-override": "PATCH",
    "patchtype": "MERGE",
}
_MAXIMO_MEMBER = "/maximo/oslc/os/mxapiwodetail/_QkVERk9SRC83MjEx"
_WORKLOG = {"worklog": [{"description": "WorkLink session", "logtype": "CLIENTNOTE"}]}
_SF_QUERY = "/services/data/v62.0/query"
_SF_RECORD = "/services/data/v62.0/sobjects/WorkOrder/0WOWs00000A1bCdOAE"
_SF_FEED = "/services/data/v62.0/sobjects/FeedItem"
_SF_HEADERS = {"Accept": "application/json", "Content-Type": "application/json", "Authorization": "Bearer 00Dx!a"}

# (vendor, method, path, params, headers, body, expected problem fragment or None when it must pass)
CASES: list[tuple[str, str, str, dict[str, Any], dict[str, Any], Any, str | None]] = [
    ("sap", "PATCH", _SAP_NOTIF, {"sap-client": "100"}, _SAP_HEADERS,
     {"MaintNotifLongTextForEdit": "done", "MalfunctionEndDate": "/Date(1714521600000)/",
      "MalfunctionEndTime": "PT10H30M55S"}, None),
    ("sap", "PATCH", _SAP_NOTIF, {}, _SAP_HEADERS, {"d": {"NotificationText": "Seal replaced"}}, None),
    ("sap", "PATCH", "/sap/opu/odata/sap/API_MAINTNOTIFICATION_SRV/MaintenanceNotification('1')", {},
     _SAP_HEADERS, {}, "unknown service"),
    ("sap", "GET", "/sap/opu/odata/sap/API_MAINTNOTIFICATION/A_MaintenanceNotification('1')", {},
     _SAP_HEADERS, None, "no such entity set"),
    ("sap", "GET", "/sap/opu/odata/sap/API_MAINTNOTIFICATION/MaintenanceNotification(10000123)", {},
     _SAP_HEADERS, None, "single-quoted"),
    ("sap", "GET", "/sap/opu/odata/sap/API_MAINTNOTIFICATION/MaintenanceNotification('1234567890123')", {},
     _SAP_HEADERS, None, "maximum 12"),
    ("sap", "GET", "/sap/opu/odata/sap/API_MAINTNOTIFICATION/MaintenanceNotification('{{ n }}')", {},
     _SAP_HEADERS, None, "odata_quote"),
    ("sap", "DELETE", _SAP_NOTIF, {}, _SAP_HEADERS, None, "allowed here"),
    ("sap", "PATCH", _SAP_NOTIF, {}, _SAP_HEADERS, {"MaintNotificationLongText": "x"}, "not updatable"),
    ("sap", "PATCH", _SAP_NOTIF, {}, _SAP_HEADERS, {"NotificationType": "M2"}, "not updatable"),
    ("sap", "PATCH", _SAP_NOTIF, {}, _SAP_HEADERS, {"NotificationText": "x" * 41}, "maximum 40"),
    ("sap", "PATCH", _SAP_NOTIF, {}, _SAP_HEADERS, {"MalfunctionEndDate": "2024-05-01"}, "Edm.DateTime"),
    ("sap", "PATCH", _SAP_NOTIF, {}, {**_SAP_HEADERS, "If-Match": ""}, {"NotificationText": "x"}, "If-Match"),
    ("sap", "PATCH", _SAP_NOTIF, {}, {**_SAP_HEADERS, "x-csrf-token": "Fetch"}, {"NotificationText": "x"},
     "x-csrf-token"),
    ("sap", "PATCH", _SAP_NOTIF, {}, {k: v for k, v in _SAP_HEADERS.items() if k != "Cookie"},
     {"NotificationText": "x"}, "session cookies"),
    ("sap", "GET", "/sap/opu/odata/sap/API_MAINTNOTIFICATION/", {"sap-client": "100"},
     {"Accept": "application/json", "Authorization": "Basic x", "x-csrf-token": "Fetch"}, None, None),
    ("sap", "POST", "/sap/opu/odata/sap/API_MAINTNOTIFICATION/CompleteMaintNotification",
     {"MaintenanceNotification": "'10000123'"}, _SAP_HEADERS, None, None),
    ("sap", "POST", "/sap/opu/odata/sap/API_MAINTNOTIFICATION/CompleteMaintNotification", {},
     _SAP_HEADERS, None, "required parameter MaintenanceNotification"),
    ("sap", "GET", "/sap/opu/odata/sap/API_MAINTNOTIFICATION/CompleteMaintNotification",
     {"MaintenanceNotification": "'1'"}, _SAP_HEADERS, None, "m:HttpMethod=POST"),
    ("sap", "POST", "/sap/opu/odata/sap/API_MAINTNOTIFICATION/MaintenanceNotification", {}, _SAP_HEADERS,
     {"MaintPriority": "1"}, "required on create"),
    ("servicenow", "GET", "/api/now/table/incident",
     {"sysparm_query": "number=INC0010001", "sysparm_limit": 1},
     {"Accept": "application/json", "Authorization": "Basic x"}, None, None),
    ("servicenow", "PATCH", "/api/now/table/incident/ef43c6d40a0a0b5700c77f9bf387afe3",
     {"sysparm_fields": "sys_id"},
     _SNOW_HEADERS, {"work_notes": "x", "u_worklink_session_id": "abc"}, None),
    ("servicenow", "PATCH", "/api/now/table/incident/ef43c6d40a0a0b5700c77f9bf387afe3", {}, _SNOW_HEADERS,
     {"sys_updated_on": "2024-05-01 10:00:00"}, "sys_ fields"),
    ("servicenow", "PATCH", "/api/now/table/incident", {}, _SNOW_HEADERS, {"work_notes": "x"},
     "collection path"),
    ("servicenow", "PATCH", "/api/now/table/incident/INC0010001", {}, _SNOW_HEADERS, {}, "32 lower-case hex"),
    ("servicenow", "PATCH", "/api/now/table/incident/ef43c6d40a0a0b5700c77f9bf387afe3", {"sysparm_limit": 1},
     _SNOW_HEADERS, {}, "not a parameter"),
    ("servicenow", "PATCH", "/api/now/table/incident/ef43c6d40a0a0b5700c77f9bf387afe3", {},
     {"Accept": "application/json", "Authorization": "Basic x"}, {}, "Content-Type"),
    ("servicenow", "GET", "/api/now/table/incident", {}, {"Authorization": "Basic x"}, None, "Accept"),
    ("servicenow", "GET", "/api/now/table/incident", {"sysparm_display_value": "yes"},
     {"Accept": "application/json", "Authorization": "Basic x"}, None, "allowed"),
    ("servicenow", "PATCH", "/api/now/table/incident/ef43c6d40a0a0b5700c77f9bf387afe3", {}, _SNOW_HEADERS,
     {"worklink_notes": "x"}, "custom fields start with u_"),
    ("maximo", "POST", _MAXIMO_MEMBER, {"lean": 1}, _MAXIMO_HEADERS, _WORKLOG, None),
    ("maximo", "GET", "/maximo/api/os/mxapiwodetail", {"lean": "1", "oslc.where": 'wonum="7211"'},
     {"Accept": "application/json", "apikey": "k"}, None, None),
    ("maximo", "POST", _MAXIMO_MEMBER, {}, _MAXIMO_HEADERS, _WORKLOG, "lean=1"),
    ("maximo", "PATCH", _MAXIMO_MEMBER, {"lean": 1}, _MAXIMO_HEADERS, _WORKLOG, "x-method-override"),
    ("maximo", "POST", _MAXIMO_MEMBER, {"lean": 1}, {**_MAXIMO_HEADERS, "x-method-override": ""}, _WORKLOG,
     "x-method-override: PATCH"),
    ("maximo", "POST", _MAXIMO_MEMBER, {"lean": 1}, {**_MAXIMO_HEADERS, "patchtype": ""}, _WORKLOG, "MERGE"),
    ("maximo", "POST", _MAXIMO_MEMBER, {"lean": 1}, _MAXIMO_HEADERS,
     {"worklog": [{"description": "x" * 101}]}, "maximum 100"),
    ("maximo", "POST", _MAXIMO_MEMBER, {"lean": 1}, _MAXIMO_HEADERS,
     {"worklog": [{"description": "{{ text }}"}]}, "truncate_text"),
    ("maximo", "POST", _MAXIMO_MEMBER, {"lean": 1}, _MAXIMO_HEADERS,
     {"worklog": [{"note": "x"}]}, "not a known worklog field"),
    ("maximo", "POST", _MAXIMO_MEMBER, {"lean": 1}, _MAXIMO_HEADERS, {"wonum": "7212"}, "primary key"),
    ("maximo", "POST", _MAXIMO_MEMBER, {"lean": 1}, _MAXIMO_HEADERS, {"_rowstamp": "1"}, "read-only"),
    ("maximo", "GET", "/maximo/oslc/os/mxapiwodetail", {"lean": 1, "apikey": "k"},
     {"Accept": "application/json"}, None, "apikey header"),
    ("salesforce", "GET", _SF_QUERY, {"q": "SELECT Id FROM WorkOrder WHERE WorkOrderNumber = 'O\\'Neil' LIMIT 1"},
     _SF_HEADERS, None, None),
    ("salesforce", "GET", _SF_QUERY, {"q": "SELECT Id FROM WorkOrder WHERE WorkOrderNumber = 'O'Neil'"},
     _SF_HEADERS, None, "never closed"),
    ("salesforce", "GET", _SF_QUERY, {"q": "SELECT Id FROM WorkOrder WHERE WorkOrderNumber = {{ n }}"},
     _SF_HEADERS, None, "soql_quote"),
    ("salesforce", "GET", _SF_QUERY, {"q": "Id FROM WorkOrder"}, _SF_HEADERS, None, "SELECT"),
    ("salesforce", "GET", _SF_QUERY, {"q": "SELECT Id FROM WorkOrder", "limit": "1"}, _SF_HEADERS, None,
     "exactly `q`"),
    ("salesforce", "POST", _SF_QUERY, {"q": "SELECT Id FROM WorkOrder"}, _SF_HEADERS, None, "only GET"),
    ("salesforce", "PATCH", _SF_RECORD, {}, _SF_HEADERS, {"WorkLink_Minutes__c": 35.53}, None),
    ("salesforce", "PATCH", _SF_RECORD, {}, _SF_HEADERS, {"Id": "0WOWs00000A1bCdOAE"}, "not specified"),
    ("salesforce", "PATCH", "/services/data/v62.0/sobjects/WorkOrder/00001042", {}, _SF_HEADERS, {},
     "15 or 18"),
    ("salesforce", "PUT", _SF_RECORD, {}, _SF_HEADERS, {}, "PATCH (update)"),
    ("salesforce", "PATCH", _SF_RECORD, {}, {"Content-Type": "application/json"}, {}, "Bearer"),
    ("salesforce", "POST", _SF_FEED, {}, _SF_HEADERS,
     {"ParentId": "0WOWs00000A1bCdOAE", "Type": "TextPost", "Body": "done"}, None),
    ("salesforce", "POST", _SF_FEED, {}, _SF_HEADERS, {"Type": "TextPost", "Body": "done"}, "ParentId"),
    ("salesforce", "POST", _SF_FEED, {}, _SF_HEADERS,
     {"ParentId": "0WOWs00000A1bCdOAE", "Body": "x" * 10001}, "maximum 10000"),
    ("salesforce", "POST", _SF_FEED, {}, _SF_HEADERS,
     {"ParentId": "0WOWs00000A1bCdOAE", "Body": "{{ text }}"}, "truncate_text"),
    ("salesforce", "POST", _SF_FEED, {}, _SF_HEADERS,
     {"ParentId": "0WOWs00000A1bCdOAE", "Type": "Post", "Body": "x"}, "FeedItem.Type"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("vendor", "method", "path", "params", "headers", "body", "expected"),
    CASES,
    ids=[f"{c[0]}-{i}-{c[6] or 'ok'}" for i, c in enumerate(CASES)],
)
def test_checker_on_rendered_requests(
    vendor: str,
    method: str,
    path: str,
    params: dict[str, Any],
    headers: dict[str, Any],
    body: Any,
    expected: str | None,
) -> None:
    assert vendor_of(path) == vendor
    problems = _run_or_skip(lambda: check_request(method, path, params, headers, body))
    if expected is None:
        assert problems == [], "\n".join(problems)
    else:
        assert any(expected in p for p in problems), f"expected a problem containing {expected!r}, got {problems}"


def test_wire_request_decodes_what_wlmap_encodes() -> None:
    url = (
        "https://s4.example.com:44300/sap/opu/odata/sap/API_MAINTNOTIFICATION/"
        "MaintenanceNotification(%27O%27%27NEIL-1%27)?sap-client=100"
    )
    body = b'{"MaintNotifLongTextForEdit":"done"}'
    method, path, params, headers, parsed = wire_request("patch", url, _SAP_HEADERS, body)
    assert (method, params, parsed) == ("PATCH", {"sap-client": "100"}, {"MaintNotifLongTextForEdit": "done"})
    assert path == "/sap/opu/odata/sap/API_MAINTNOTIFICATION/MaintenanceNotification('O''NEIL-1')"
    assert _run_or_skip(lambda: check_request(method, path, params, headers, parsed)) == []
    still_encoded = urlsplit(url).path
    problems = _run_or_skip(lambda: check_request(method, still_encoded, params, headers, parsed))
    assert any("single-quoted" in p for p in problems), problems
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    form = wire_request("POST", "https://x/y?a=%22b%22", form_type, b"k=v+w")
    assert form[2:] == ({"a": '"b"'}, {"content-type": "application/x-www-form-urlencoded"}, {"k": "v w"})
    assert wire_request("GET", "https://x/y", {}, b"")[4] is None
