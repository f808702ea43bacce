"""Tests for mapper.events: normalising legacy, subscription and custom-query webhooks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapper.events import EVENT_FIELDS, Event, event_key, normalise, type_key

LEGACY_EXAMPLE: dict[str, Any] = {
    "time": "2020-10-20T18:06:02Z",
    "event": "create",
    "type": "resource",
    "data": {
        "resource-id": "OiSSdfK1Su4gwG4zAi2InavDB9eRE9aOnGHYRMG5dqY=",
        "resource-url": "https://cms.scopear.com/api/v3/graphql/object/w4Aa1bji",
        "resource-type": "scenario",
    },
}

SUB_HEADERS: dict[str, str] = {
    "X-Scope-Topic": "scenario_session/created",
    "X-Scope-Topic-Version": "1.1",
    "X-Scope-API-Version": "3",
    "X-Scope-Domain": "scopear.com",
    "X-Scope-Webhook-Type": "node",
    "X-Scope-Hmac-Sha256": "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bM=",
    "X-Scope-Webhook-Id": "0b5f1f1e-8c1d-4b59-9f0a-3c1d2e4f5a6b",
}

SUB_BODY: dict[str, Any] = {
    "data": {"id": "U2NlbmFyaW9TZXNzaW9uLTQy", "url": "https://cms.scopear.com/api/v3/graphql/object/U2Nl"}
}


def _bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


# ------------------------------------------------------------------------------------------------ legacy


def test_legacy_example_from_docs() -> None:
    event = normalise(_bytes(LEGACY_EXAMPLE), {"Content-Type": "application/json"})
    assert event.generation == "legacy"
    assert event.name == "created"
    assert event.raw_name == "create"
    assert event.resource_type == "scenario"
    assert event.resource_id == "OiSSdfK1Su4gwG4zAi2InavDB9eRE9aOnGHYRMG5dqY="
    assert event.resource_url == "https://cms.scopear.com/api/v3/graphql/object/w4Aa1bji"
    assert event.time == "2020-10-20T18:06:02Z"
    assert event.topic is None and event.delivery_id is None and event.domain is None
    assert event.problems == ()
    assert event.payload == LEGACY_EXAMPLE
    assert event.headers == {"content-type": "application/json"}


def test_legacy_underscored_keys_and_casing() -> None:
    body = {
        "time": "2021-01-01T00:00:00Z",
        "event": "Updated",
        "type": "resource",
        "data": {"resource_id": "abc", "resource_url": "https://x/abc", "resource_type": "ScenarioSession"},
    }
    event = normalise(_bytes(body), {})
    assert (event.generation, event.name, event.raw_name) == ("legacy", "updated", "Updated")
    assert (event.resource_id, event.resource_url, event.resource_type) == (
        "abc",
        "https://x/abc",
        "ScenarioSession",
    )
    assert event.problems == ()


def test_legacy_other_key_spellings() -> None:
    body = {"event": "created", "type": "resource", "data": {"resourceId": "a", "Resource-Type": "Call"}}
    event = normalise(_bytes(body), {})
    assert (event.resource_id, event.resource_type) == ("a", "Call")


def test_legacy_dashed_wins_over_underscored_with_note() -> None:
    body = {
        "event": "created",
        "type": "resource",
        "data": {"resource-id": "a", "resource_id": "b", "resource-type": "x"},
    }
    event = normalise(_bytes(body), {})
    assert event.resource_id == "a"
    assert any("both resource-id and resource_id" in p for p in event.problems)


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("create", "created"),
        ("created", "created"),
        ("Create", "created"),
        ("update", "updated"),
        ("UPDATED", "updated"),
        ("delete", "deleted"),
        ("complete", "completed"),
        ("paused", "paused"),
        ("Resumed", "resumed"),
        ("finished", "finished"),
    ],
)
def test_legacy_event_names(raw: str, name: str) -> None:
    event = normalise(_bytes({**LEGACY_EXAMPLE, "event": raw}), {})
    assert event.name == name
    assert event.raw_name == raw


def test_legacy_non_resource_type_is_noted_but_parsed() -> None:
    event = normalise(_bytes({**LEGACY_EXAMPLE, "type": "system"}), {})
    assert event.generation == "legacy"
    assert event.resource_id == LEGACY_EXAMPLE["data"]["resource-id"]
    assert any("'system'" in p and "not 'resource'" in p for p in event.problems)


def test_legacy_dotted_event_name() -> None:
    event = normalise(_bytes({"event": "ScenarioSession.create", "type": "resource", "data": {"resource-id": "i"}}), {})
    assert (event.name, event.raw_name, event.resource_type) == (
        "created",
        "ScenarioSession.create",
        "ScenarioSession",
    )
    assert event.problems


@pytest.mark.parametrize(
    ("value", "expected", "note"),
    [
        (42, "42", "is a number"),
        (1.5, "1.5", "is a number"),
        (True, None, "boolean"),
        (["a"], None, "is a list"),
        ({"a": 1}, None, "is an object"),
        ("", None, "is empty"),
    ],
)
def test_legacy_wrong_types(value: Any, expected: str | None, note: str) -> None:
    body = {"event": "create", "type": "resource", "data": {"resource-id": value, "resource-type": "Call"}}
    event = normalise(_bytes(body), {})
    assert event.generation == "legacy"
    assert event.resource_id == expected
    assert any(note in p for p in event.problems), event.problems


def test_legacy_event_not_text() -> None:
    event = normalise(_bytes({**LEGACY_EXAMPLE, "event": 3}), {})
    assert event.name is None and event.raw_name is None
    assert any("event is a number" in p for p in event.problems)


def test_legacy_missing_parts_are_noted() -> None:
    event = normalise(_bytes({"event": "create"}), {})
    assert event.generation == "legacy"
    assert event.resource_id is None
    assert "legacy webhook has no data" in event.problems
    assert "legacy webhook has no type" in event.problems
    event = normalise(_bytes({"event": "create", "type": "resource", "data": "nope"}), {})
    assert "data is a string, not an object" in event.problems
    event = normalise(_bytes({"event": "create", "type": "resource", "data": {}}), {})
    assert "data has no resource-id" in event.problems


# ------------------------------------------------------------------------------------------ subscription


def test_subscription_default_body() -> None:
    event = normalise(_bytes(SUB_BODY), SUB_HEADERS)
    assert event.generation == "subscription"
    assert (event.name, event.raw_name, event.resource_type) == ("created", "created", "scenario_session")
    assert event.resource_id == "U2NlbmFyaW9TZXNzaW9uLTQy"
    assert event.resource_url == "https://cms.scopear.com/api/v3/graphql/object/U2Nl"
    assert event.topic == "scenario_session/created"
    assert event.topic_version == "1.1"
    assert event.delivery_id == "0b5f1f1e-8c1d-4b59-9f0a-3c1d2e4f5a6b"
    assert event.domain == "scopear.com"
    assert event.time is None
    assert event.problems == ()
    assert event.headers["x-scope-webhook-type"] == "node"
    assert set(event.headers) == {k.lower() for k in SUB_HEADERS}


def test_subscription_headers_any_case() -> None:
    headers = {
        "x-scope-topic": "user/created",
        "X-SCOPE-WEBHOOK-ID": "d1",
        "x-Scope-Domain": "onprem.example",
    }
    event = normalise(_bytes({"data": {"id": "u1"}}), headers)
    assert (event.generation, event.resource_type, event.name) == ("subscription", "user", "created")
    assert (event.resource_id, event.resource_url, event.delivery_id, event.domain) == (
        "u1",
        None,
        "d1",
        "onprem.example",
    )


@pytest.mark.parametrize(
    ("topic", "rtype", "name", "raw"),
    [
        ("scenario_session/create", "scenario_session", "created", "create"),
        ("scenario_session/completed", "scenario_session", "completed", "completed"),
        ("user/created", "user", "created", "created"),
        ("Scenario_Session/Complete", "Scenario_Session", "completed", "Complete"),
    ],
)
def test_subscription_topics(topic: str, rtype: str, name: str, raw: str) -> None:
    event = normalise(_bytes(SUB_BODY), {**SUB_HEADERS, "X-Scope-Topic": topic})
    assert (event.resource_type, event.name, event.raw_name, event.topic) == (rtype, name, raw, topic)


def test_subscription_odd_topics_are_noted() -> None:
    event = normalise(_bytes(SUB_BODY), {**SUB_HEADERS, "X-Scope-Topic": "nonsense"})
    assert event.generation == "subscription"
    assert event.name is None and event.resource_type is None
    assert any("no '/'" in p for p in event.problems)
    event = normalise(_bytes(SUB_BODY), {**SUB_HEADERS, "X-Scope-Topic": ""})
    assert event.generation == "subscription" and event.topic is None
    assert "x-scope-topic header is empty" in event.problems


def test_subscription_without_webhook_id_is_noted() -> None:
    headers = {k: v for k, v in SUB_HEADERS.items() if k != "X-Scope-Webhook-Id"}
    event = normalise(_bytes(SUB_BODY), headers)
    assert event.generation == "subscription"
    assert any("X-Scope-Webhook-Id" in p for p in event.problems)


def test_custom_query_node_body() -> None:
    body = {"data": {"node": {"id": "n1", "state": "completed", "externalData": {"sr": "SR-1"}}}}
    event = normalise(_bytes(body), {**SUB_HEADERS, "X-Scope-Topic": "scenario_session/completed"})
    assert event.generation == "custom-query"
    assert (event.resource_id, event.resource_type, event.name) == ("n1", "scenario_session", "completed")
    assert event.payload == body
    assert event.problems == ()


def test_custom_query_data_id_and_other_shapes() -> None:
    event = normalise(_bytes({"data": {"id": "x", "state": "done"}}), SUB_HEADERS)
    assert (event.generation, event.resource_id) == ("custom-query", "x")
    event = normalise(_bytes({"session": {"id": "y"}}), SUB_HEADERS)
    assert (event.generation, event.resource_id) == ("custom-query", None)
    event = normalise(_bytes(LEGACY_EXAMPLE), SUB_HEADERS)  # the topic header decides
    assert event.generation == "custom-query"


def test_custom_query_errors_are_noted() -> None:
    body = {
        "data": {"node": None},
        "errors": [{"message": "Not authorized to read object", "path": ["node"]}],
    }
    event = normalise(_bytes(body), SUB_HEADERS)
    assert event.generation == "custom-query"
    assert event.resource_id is None
    assert "custom query result carries errors" in event.problems
    assert "custom query returned no node" in event.problems


def test_subscription_body_without_topic_header() -> None:
    event = normalise(_bytes(SUB_BODY), {})
    assert event.generation == "unknown"
    assert event.resource_id == "U2NlbmFyaW9TZXNzaW9uLTQy"
    assert any("no X-Scope-Topic header" in p for p in event.problems)


# --------------------------------------------------------------------------------------------- junk


@pytest.mark.parametrize(
    ("body", "note"),
    [
        (b"", "body is empty"),
        (b"   \n", "body is empty"),
        (None, "body is empty"),
        (b"not json", "body is not JSON"),
        (b"\xff\xfe\x00garbage", "not valid UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b"{" * 100_000, "body is not JSON"),
        ("1" * 5000, "body is not JSON"),
        (b"[1, 2]", "not an object (it is a list)"),
        (b'"text"', "not an object (it is a string)"),
        (b"null", "not an object (it is null)"),
        (b"{}", "no legacy fields"),
    ],
)
def test_junk_bodies(body: Any, note: str) -> None:
    event = normalise(body, {})
    assert event.generation == "unknown"
    assert any(note in p for p in event.problems), event.problems


def test_junk_body_with_topic_keeps_header_facts() -> None:
    event = normalise(b"<html>", SUB_HEADERS)
    assert event.generation == "unknown"
    assert (event.resource_type, event.name, event.delivery_id) == (
        "scenario_session",
        "created",
        SUB_HEADERS["X-Scope-Webhook-Id"],
    )
    assert any("body is not JSON" in p for p in event.problems)


def test_body_forms_agree() -> None:
    as_bytes = normalise(_bytes(LEGACY_EXAMPLE), {})
    as_text = normalise(json.dumps(LEGACY_EXAMPLE), {})
    as_parsed = normalise(LEGACY_EXAMPLE, {})
    as_bytearray = normalise(bytearray(_bytes(LEGACY_EXAMPLE)), {})
    with_bom = normalise(b"\xef\xbb\xbf" + _bytes(LEGACY_EXAMPLE), {})
    assert as_bytes == as_text == as_parsed == as_bytearray == with_bom


def test_deeply_nested_parsed_payload() -> None:
    deep: Any = "leaf"
    for _ in range(100_000):
        deep = [deep]
    event = normalise({"data": {"node": {"id": "n", "x": deep}}}, SUB_HEADERS)
    assert (event.generation, event.resource_id) == ("custom-query", "n")


def test_weird_headers() -> None:
    headers: Any = {b"X-Scope-Topic": b"user/created", 3: 4}
    event = normalise(_bytes(SUB_BODY), headers)
    assert event.resource_type == "user"
    event = normalise(_bytes(SUB_BODY), None)  # type: ignore[arg-type]
    assert "headers are not a mapping; ignored" in event.problems


# ---------------------------------------------------------------------------------------- as_dict etc.


def test_as_dict_shape() -> None:
    event = normalise(_bytes(SUB_BODY), SUB_HEADERS)
    data = event.as_dict()
    assert tuple(data) == EVENT_FIELDS
    assert "payload" not in data and "headers" not in data
    assert isinstance(data["problems"], list)
    assert json.loads(json.dumps(data)) == data


def test_event_is_frozen_and_hashable() -> None:
    event = normalise(_bytes(SUB_BODY), SUB_HEADERS)
    with pytest.raises(AttributeError):
        event.name = "x"  # type: ignore[misc]
    assert hash(event) == hash(normalise(_bytes(SUB_BODY), SUB_HEADERS))
    assert isinstance(event, Event)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("scenario_session", "ScenarioSession"),
        ("scenario-session", "ScenarioSession"),
        ("Scenario Session", "scenario_session"),
        ("scenario", "Scenario"),
        ("CALL", "call"),
    ],
)
def test_type_key_equalities(a: str, b: str) -> None:
    assert type_key(a) == type_key(b)


def test_type_key_distinguishes() -> None:
    assert type_key("scenario") != type_key("scenario_session")
    assert type_key("call") != type_key("call_session")


def test_event_key_examples() -> None:
    assert event_key("create") == event_key("created") == event_key("Create") == event_key(" CREATED ") == "created"
    assert event_key("update") == "updated"
    assert event_key("delete") == "deleted"
    assert event_key("complete") == "completed"
    assert event_key("Paused") == "paused"


# ------------------------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
header_names = st.sampled_from(
    ["X-Scope-Topic", "x-scope-topic", "X-Scope-Webhook-Id", "X-Scope-Domain", "X-Scope-Topic-Version"]
) | st.text(max_size=20)
headers_strategy = st.dictionaries(header_names, st.text(max_size=40), max_size=6)


def _check_event(event: Event) -> None:
    assert event.generation in {"legacy", "subscription", "custom-query", "unknown"}
    assert all(isinstance(p, str) and p for p in event.problems)
    data = event.as_dict()
    assert tuple(data) == EVENT_FIELDS
    for key in EVENT_FIELDS:
        if key not in {"generation", "problems"}:
            assert data[key] is None or isinstance(data[key], str)
    if event.generation == "unknown":
        assert event.problems


@settings(max_examples=300)
@given(st.binary(max_size=300), headers_strategy)
def test_normalise_never_raises_on_bytes(body: bytes, headers: dict[str, str]) -> None:
    _check_event(normalise(body, headers))


@settings(max_examples=300)
@given(json_values, headers_strategy)
def test_normalise_never_raises_on_json(value: Any, headers: dict[str, str]) -> None:
    _check_event(normalise(json.dumps(value).encode(), headers))
    _check_event(normalise(value, headers))


legacy_data_values = st.none() | st.booleans() | st.integers() | st.text() | st.lists(st.integers(), max_size=2)


@settings(max_examples=300)
@given(
    st.fixed_dictionaries(
        {"event": json_values, "type": json_values, "time": json_values},
        optional={
            "data": st.dictionaries(
                st.sampled_from(["resource-id", "resource_id", "resource-type", "resource_type", "resource-url", "x"]),
                legacy_data_values,
            )
        },
    ),
    headers_strategy,
)
def test_normalise_never_raises_on_legacy_like(value: dict[str, Any], headers: dict[str, str]) -> None:
    _check_event(normalise(json.dumps(value).encode(), headers))


@given(
    st.text(min_size=1).filter(lambda s: s.strip() != ""),
    st.sampled_from(["resource-id", "resource_id"]),
    st.sampled_from(["resource-type", "resource_type"]),
    st.sampled_from(["create", "created", "update", "Updated", "paused"]),
    st.text(),
)
def test_legacy_resource_id_round_trips(rid: str, id_key: str, type_key_name: str, name: str, rtype: str) -> None:
    body = {
        "time": "2020-10-20T18:06:02Z",
        "event": name,
        "type": "resource",
        "data": {id_key: rid, type_key_name: rtype},
    }
    event = normalise(json.dumps(body).encode(), {})
    assert event.generation == "legacy"
    assert event.resource_id == rid
    assert event.raw_name == name
    assert event.name == event_key(name)


@given(
    st.text(min_size=1).filter(lambda s: s.strip() != ""),
    st.text(min_size=1).filter(lambda s: s.strip() != ""),
)
def test_subscription_resource_id_round_trips(rid: str, url: str) -> None:
    event = normalise(json.dumps({"data": {"id": rid, "url": url}}).encode(), SUB_HEADERS)
    assert (event.generation, event.resource_id, event.resource_url) == ("subscription", rid, url)


@given(st.text())
def test_event_key_idempotent(name: str) -> None:
    assert event_key(event_key(name)) == event_key(name)


@given(st.text())
def test_type_key_idempotent_and_separator_blind(name: str) -> None:
    key = type_key(name)
    assert type_key(key) == key
    assert type_key(name.replace("_", "-")) == key
    assert type_key(name.upper().replace(" ", "_")) == type_key(name.upper())


@given(st.from_regex(r"[a-z]{1,8}(_[a-z]{1,8}){0,3}", fullmatch=True))
def test_type_key_snake_equals_camel(snake: str) -> None:
    camel = "".join(part.capitalize() for part in snake.split("_"))
    assert type_key(snake) == type_key(camel) == type_key(snake.replace("_", "-")) == type_key(snake.replace("_", " "))


def test_a_custom_query_result_without_a_node_id_is_noted() -> None:
    """Issue 15: a subscription query that does not select `id` gave resource_id null and no word about it."""
    body = {"data": {"node": {"__typename": "ScenarioSession", "state": "completed", "endedAt": "2024-05-02T13:41Z"}}}
    event = normalise(_bytes(body), SUB_HEADERS)
    assert (event.generation, event.resource_id) == ("custom-query", None)
    assert event.problems == ("custom query result has no data.node.id (nor data.id): the webhook names no resource",)
    no_node = normalise(_bytes({"data": {"node": None}}), SUB_HEADERS)
    assert no_node.problems == ("custom query returned no node",)  # explained already: said once
