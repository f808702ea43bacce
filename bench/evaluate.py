"""Pure evaluation cost: extract + render for one event, no I/O (issue 3).

Workload: the issue's example — three extractions (two paths and a comparison) and one text template —
through the compiled plan, against hand-written Python doing the same (dict access and an f-string),
measured in the same run. Issue 3 set a target of at most 10x the hand-written version; issue 9 gave it up
for the libraries' own evaluation (jmespath's interpreter, Jinja's compiled templates) when removing our
closure re-implementations made no measurable difference end to end (bench/service_load.py, < 5 %).
"""

from __future__ import annotations

import timeit

from mapper.language import loader

MAPPING = """
version: 1
name: bench-evaluate
trigger: {events: [updated]}
connections:
  scope: {url: "https://cms.scopear.com/api/v3/graphql"}
  snow: {base_url: "https://example.service-now.com"}
query:
  connection: scope
  graphql: "query ($id: ID!) { node(id: $id) { ... on CallSession { id duration state externalData } } }"
  variables: {id: "{{ event.resource_id }}"}
extract:
  incident: result.node.externalData.sys_id
  seconds: result.node.duration
  ended: result.node.state == 'ended'
steps:
  - name: update
    connection: snow
    method: PATCH
    path: "/api/now/table/incident/{{ incident }}"
    json:
      work_notes: "WorkLink call ended after {{ (seconds / 60) | round(1) }} min"
"""

SCOPE = {
    "event": {"name": "updated", "resource_id": "Q2FsbA=="},
    "headers": {},
    "payload": {},
    "result": {
        "node": {
            "id": "Q2FsbA==",
            "duration": 754,
            "state": "ended",
            "externalData": {"sys_id": "d71f7935c0a8016700802b64c67c11c6"},
        }
    },
}


def main() -> None:
    plan, problems = loader.load_text(MAPPING, "bench.yaml")
    assert plan is not None, problems
    extractions = plan.extract
    note = plan.steps[0].body.value
    assert note is not None

    def compiled() -> object:
        scope = dict(SCOPE)
        for extraction in extractions:
            scope[extraction.name] = extraction.expression.search(scope)
        return note.render(scope)

    def by_hand() -> object:
        node = SCOPE["result"]["node"]  # type: ignore[index]
        incident = node["externalData"]["sys_id"]
        seconds = node["duration"]
        ended = node["state"] == "ended"
        return {"work_notes": f"WorkLink call ended after {round(seconds / 60, 1)} min"}, incident, ended

    assert compiled() == by_hand()[0], (compiled(), by_hand())
    number = 20000
    ours = min(timeit.repeat(compiled, number=number, repeat=5)) / number
    hand = min(timeit.repeat(by_hand, number=number, repeat=5)) / number
    print(f"evaluate  hand-written: {hand * 1e6:.2f} µs per event")
    print(f"evaluate  wlmap plan:   {ours * 1e6:.2f} µs per event")
    print(f"evaluate  ratio: {ours / hand:.1f}x (issue 3's 10x given up in issue 9: see the docstring)")


if __name__ == "__main__":
    main()
