"""`wlmap graphql-schema CONNECTION`: an API's schema fetched by introspection (gql on our transport), over real
HTTP to a fake GraphQL API on 127.0.0.1, and used by `wlmap validate --graphql-schema NAME=FILE`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from fakes import FakeServer, Recorded, Reply, connection
from graphql import build_client_schema, build_schema, introspection_from_schema, print_schema
from test_cli_run import wlmap

from mapper.run.clients import GraphQLFailure
from mapper.run.clients.graphql import fetch_schema
from mapper.run.clients.settings import ConnectionSettings
from mapper.run.connections import resolve

ROOT = Path(__file__).resolve().parents[1]
SDL = (ROOT / "samples" / "graphql" / "assets-api.graphql").read_text(encoding="utf-8")
TOKEN = "assets-canary-token-31337"


def serve_schema(server: FakeServer, answer: Reply | None = None) -> list[dict[str, object]]:
    """The fake API: answers the introspection query with the schema of samples/graphql/assets-api.graphql."""
    payloads: list[dict[str, object]] = []

    def handle(request: Recorded) -> Reply:
        if request.header("authorization") != f"Bearer {TOKEN}":
            return Reply.json({"errors": [{"message": "Unauthorized"}]}, 401)
        payloads.append(request.json())
        return answer or Reply.json({"data": introspection_from_schema(build_schema(SDL))})

    server.route("POST", "/graphql", handle)
    return payloads


def assets(server: FakeServer) -> ConnectionSettings:
    conn = connection("assets", url="{{ env.URL }}/graphql", headers={"Authorization": "Bearer {{ env.TOKEN }}"})
    return resolve(conn, {"URL": server.url, "TOKEN": TOKEN})


def test_the_schema_comes_back_as_sdl_and_as_introspection_json() -> None:
    with FakeServer() as server:
        payloads = serve_schema(server)
        sdl = asyncio.run(fetch_schema(assets(server)))
        as_json = asyncio.run(fetch_schema(assets(server), form="json"))
    assert "__schema" in str(payloads[0]["query"])  # gql's introspection query
    assert build_schema(sdl).type_map.keys() == build_schema(SDL).type_map.keys()
    assert "recordInspection(input: InspectionInput!): RecordInspectionPayload!" in sdl
    assert print_schema(build_client_schema(json.loads(as_json)["data"])) == sdl


def test_an_endpoint_that_refuses_says_so() -> None:
    with FakeServer() as server:
        serve_schema(server, Reply.json({"data": None, "errors": [{"message": "introspection is disabled"}]}))
        try:
            asyncio.run(fetch_schema(assets(server)))
        except GraphQLFailure as failure:
            assert failure.message == "the introspection query failed: introspection is disabled"
        else:
            raise AssertionError("no failure")


def test_the_command_prints_a_schema_that_validate_reads(tmp_path: Path) -> None:
    env = {"SCOPE_GRAPHQL_URL": "https://cms.example.com/api/v3/graphql", "SCOPE_API_TOKEN": "x"}
    with FakeServer() as server:
        serve_schema(server)
        env |= {"ASSETS_GRAPHQL_URL": server.url + "/graphql", "ASSETS_API_TOKEN": TOKEN}
        done = wlmap("graphql-schema", "assets", "mappings/asset-inspection-graphql.yaml", env=env)
    assert done.returncode == 0, done.stderr
    assert "type Inspection {" in done.stdout
    assert TOKEN not in done.stdout + done.stderr
    assert done.stderr.strip() == (
        "schema of `assets` (as defined in mappings/asset-inspection-graphql.yaml) fetched by introspection"
    )
    schema_file = tmp_path / "assets.graphql"
    schema_file.write_text(done.stdout, encoding="utf-8")
    checked = wlmap(
        "validate", "mappings/asset-inspection-graphql.yaml", "--graphql-schema", f"assets={schema_file}", env=env
    )
    assert (checked.returncode, checked.stdout.strip()) == (0, "1 file checked: all valid"), checked.stderr


def test_the_command_names_a_connection_it_cannot_use() -> None:
    missing = wlmap("graphql-schema", "nowhere", "mappings/salesforce.yaml")
    assert missing.returncode == 1
    assert (
        missing.stderr.strip() == "connection `nowhere` is not defined in the mappings under mappings/salesforce.yaml"
    )
    http = wlmap("graphql-schema", "salesforce", "mappings/salesforce.yaml")
    assert http.returncode == 1
    assert "connection `salesforce` has no GraphQL `url` (only a `base_url`)" in http.stderr


def test_the_command_says_why_the_endpoint_gave_no_schema() -> None:
    with FakeServer() as server:
        serve_schema(server)
        env = {"ASSETS_GRAPHQL_URL": server.url + "/graphql", "ASSETS_API_TOKEN": "a-wrong-token"}
        done = wlmap("graphql-schema", "assets", "mappings/asset-inspection-graphql.yaml", env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "connection `assets` (mappings/asset-inspection-graphql.yaml): "
        'the GraphQL endpoint answered 401: {"errors": [{"message": "Unauthorized"}]}'
    )
    assert done.stdout == ""
