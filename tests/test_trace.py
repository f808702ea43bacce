"""run.trace.cap: what a stored trace keeps of each body (issue 15)."""

from __future__ import annotations

import json

from mapper.run.trace import cap


def test_a_trace_within_the_limit_is_returned_as_it_is() -> None:
    text = json.dumps({"stages": [{"stage": "query", "data": {"node": {"id": "x" * 50}}}]})
    assert cap(text, len(text)) is text


def test_a_body_over_the_limit_keeps_its_start_what_is_missing_and_its_whole_size() -> None:
    text = json.dumps({"stages": [{"stage": "query", "data": {"node": {"note": "é" * 300}}}]})
    [query] = json.loads(cap(text, 100))["stages"]
    whole = len(json.dumps({"node": {"note": "é" * 300}}, ensure_ascii=False).encode())
    assert query["data_bytes"] == whole
    kept = query["data"].split("…")[0]
    assert len(kept.encode()) <= 100 and query["data"].endswith(f"… {whole - len(kept.encode())} bytes more")


def test_an_exchange_excerpt_cut_further_keeps_the_size_of_the_whole_answer() -> None:
    exchange = {"response_body": "a" * 4096 + "… 195904 bytes more", "response_body_bytes": 200_000, "status": 200}
    text = json.dumps({"stages": [{"stage": "step", "exchanges": [exchange]}]})
    [shown] = json.loads(cap(text, 1000))["stages"][0]["exchanges"]
    assert shown == {"response_body": "a" * 1000 + "… 199000 bytes more", "response_body_bytes": 200_000, "status": 200}


def test_other_long_text_is_cut_too_and_short_text_is_not() -> None:
    text = json.dumps({"stages": [{"stage": "extract", "values": {"long": "z" * 500, "short": "ok"}}]})
    values = json.loads(cap(text, 200))["stages"][0]["values"]
    assert values == {"long": "z" * 200 + "… 300 bytes more", "short": "ok"}
