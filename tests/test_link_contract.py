"""The `link:` section compiled, and both sides of its contract with what the mapping reads from externalData.

Whole messages with line and column are in the golden folders (tests/cases/validate/link-*); these tests say
which reads count: JMESPath and Jinja, through `from_json`, in every section, and the whole object.
"""

from __future__ import annotations

from mapper.errors import Problem
from mapper.language import loader
from mapper.language.plan import Link, LinkParameter, Plan

MAPPING = """version: 1
name: order-sync
{link}
trigger:
  topics: [scenario_session/completed]
  {when}
connections:
  orders:
    base_url: https://orders.example.com
extract:
  order: {order}
skip_unless: order
steps:
  - name: update-order
    connection: orders
    method: PATCH
    path: "/api/orders/{{{{ order }}}}"
    json:
      note: {note}
"""

LINK = """link:
  parameters:
    order: {type: integer, required: true, pattern: "[0-9]+", max_length: 12, description: The order.}
    note: string"""


def load(
    link: str = LINK,
    order: str = "payload.data.node.externalData.order",
    note: str = '"{{ payload.data.node.externalData.note }}"',
    when: str = "",
) -> tuple[Plan | None, list[Problem]]:
    text = MAPPING.format(link=link, order=order, note=note, when=when)
    return loader.load_text(text, "m.yaml", loader.compiler.Options(env={"WLMAP_LINK_KEY": "k"}))


def messages(problems: list[Problem]) -> list[str]:
    return [f"{p.location.line}:{p.location.column} {p.severity}: {p.message} ({p.hint})" for p in problems]


def test_the_section_compiles_to_the_contract() -> None:
    plan, problems = load()
    assert problems == []
    assert plan is not None and plan.link is not None
    assert plan.link == Link(
        location=plan.link.location,
        action="fetch_catalog",
        target="asset",
        target_id=None,
        parameters=(
            LinkParameter("order", plan.link.parameters[0].location, "integer", True, "[0-9]+", 12, "The order."),
            LinkParameter("note", plan.link.parameters[1].location, "string"),
        ),
        signed=False,
        external_data=("payload", "data", "node", "externalData"),
    )
    assert plan.link.parameters[0].location.line == 5


def test_a_mapping_without_a_link_is_not_checked() -> None:
    plan, problems = load(link="", order="payload.data.node.externalData.whatever")
    assert problems == [] and plan is not None and plan.link is None


def test_a_template_read_is_checked_too() -> None:
    _, problems = load(note='"{{ payload.data.node.externalData.nte }}"')
    assert messages(problems) == ["22:48 error: `nte` is not a parameter of the deep link (did you mean `note`?)"]


def test_reads_through_from_json_count_in_jmespath_and_jinja() -> None:
    plan, problems = load(
        order="from_json(payload.data.node.externalData).order",
        note='"{{ (payload.data.node.externalData | from_json).note }}"',
    )
    assert problems == [] and plan is not None


def test_a_read_in_the_trigger_counts() -> None:
    _, problems = load(when="when: payload.data.node.externalData.odrer == 'x'")
    assert messages(problems) == ["9:40 error: `odrer` is not a parameter of the deep link (did you mean `order`?)"]


def test_a_parameter_nothing_reads_is_a_warning() -> None:
    plan, problems = load(note="done")
    assert plan is not None
    assert messages(problems) == [
        "6:5 warning: link parameter `note` is never read (read it as `externalData.note` (in `extract`, say), "
        "or remove it from the link)"
    ]


def test_without_any_declared_name_the_hint_says_to_declare_it() -> None:
    _, problems = load(link="link:\n  target: asset", note="done")
    assert messages(problems) == [
        "12:41 error: `order` is not a parameter of the deep link (declare it under `link: parameters:`)"
    ]


def test_externalData_read_whole_leaves_the_unused_check_out() -> None:
    plan, problems = load(order="payload.data.node.externalData && `1`", note="done")
    assert problems == [] and plan is not None


def test_the_unused_warning_waits_for_the_errors_to_be_fixed() -> None:
    _, problems = load(order="payload.data.node.externalData.ordr", note="done")
    assert [p.severity for p in problems] == ["error"]


def test_the_signature_may_be_read_when_the_link_is_signed() -> None:
    signed = LINK.replace("link:", "link:\n  signed: true")
    _, problems = load(link=signed, note='"{{ payload.data.node.externalData.sig }}"')
    assert messages(problems) == [
        "7:5 warning: link parameter `note` is never read (read it as `externalData.note` (in `extract`, say), "
        "or remove it from the link)"
    ]
    _, problems = load(note='"{{ payload.data.node.externalData.sig }}"')
    assert [p.message for p in problems] == ["`sig` is not a parameter of the deep link"]


def test_a_signed_link_needs_a_read_and_its_key_is_a_secret_of_the_mapping() -> None:
    signed = "link:\n  signed: true\n  target: catalog"
    _, problems = load(link=signed, order='"`1`"', note="done")
    assert messages(problems) == [
        "4:11 error: a signed link needs the mapping to read `externalData`: the signature is checked there (read "
        "the parameters in `extract`, e.g. `incident: result.node.externalData.incident`)"
    ]
    plan, _ = load(link=LINK.replace("link:", "link:\n  signed: true"))
    assert plan is not None and "WLMAP_LINK_KEY" in plan.env_names  # so its value is masked in traces


def test_the_first_read_in_extract_is_where_externalData_is() -> None:
    plan, _ = load(
        when="when: headers.x.externalData.order == '1' || `true`",
        order="from_json(payload.data.node.externalData).order",
    )
    assert plan is not None and plan.link is not None
    assert plan.link.external_data == ("payload", "data", "node", "externalData")
