"""GET /links/<mapping>: links and QR codes over real HTTP, never a 500, never a redirect, never without its token.

Most cases run the listener's app with the links routes added as `wlmap run --serve --links` adds them, on
uvicorn at 127.0.0.1 (raw sockets for what httpx will not send). The last ones start the real service and
check what it refuses to start with, and that a 400 says what `wlmap link` says.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import zxingcpp
from fakes import serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_service_support import Service, Target

from mapper.language import loader
from mapper.language.plan import Plan
from mapper.links import signing
from mapper.service import links
from mapper.service.listener import ListenerOptions, create_app
from mapper.service.metrics import Metrics
from mapper.service.options import LINKS_PATH
from mapper.service.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "links-token-0123456789abcdef"
LINK_KEY = "link-signing-key"
NAME = "servicenow-incident-call"
GOOD = {"asset": "P-101", "incident": "INC0010001"}
SIGNED = """version: 1
name: signed-orders
link: { signed: true, target: catalog, parameters: { order: { required: true } } }
trigger: { topics: [scenario_session/completed] }
connections: { orders: { base_url: https://orders.example.com } }
extract: { order: payload.data.node.externalData.order }
steps: [ { name: send, connection: orders, method: POST, path: "/orders/{{ order }}" } ]
"""


def plans(keys: bool = True) -> dict[str, Plan]:
    found = loader.load_plans([ROOT / "mappings"])
    signed, problems = loader.load_text(SIGNED, "signed.yaml")
    assert signed is not None, problems
    return {plan.name: plan for plan in [*found, signed]}


def app(tmp_path: Path, rate: float = 1e6, keys: tuple[bytes, ...] = (LINK_KEY.encode(),)) -> Any:
    """The listener's app with the links routes first, as the server composes them."""
    made = create_app(
        SqliteStore(tmp_path / "wlmap.db"), lambda event: [], ListenerOptions(secrets=("s",)), metrics=Metrics()
    )
    everything = plans()
    made.router.routes[0:0] = links.routes(lambda: everything, links.LinkOptions(TOKEN, keys, rate), LINKS_PATH)
    return made


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(app(tmp_path_factory.mktemp("links"))) as url:
        yield url


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


def get(http: httpx.Client, path: str = f"/links/{NAME}", token: str | None = TOKEN, **params: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}".strip()} if token is not None else {}
    return http.get(path, params=params or GOOD, headers=headers)


def decoded(image: bytes) -> list[str]:
    return [found.text for found in zxingcpp.read_barcodes(Image.open(io.BytesIO(image)))]


# ---------------------------------------------------------------------------------------------- answers


def test_the_json_answer_has_the_link_and_its_deferred_form(http: httpx.Client) -> None:
    answer = get(http)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    link = "worklink://resource?action=fetch_catalog&asset=P-101&incident=INC0010001"
    assert answer.json() == {
        "mapping": NAME,
        "link": link,
        "deferred_link": "https://getworklink.com/deferred?deep_link=worklink%3A%2F%2Fresource%3Faction%3D"
        "fetch_catalog%26asset%3DP-101%26incident%3DINC0010001",
        "asset": "P-101",
        "external_data": {"incident": "INC0010001"},
    }


def test_the_images_have_their_content_types_and_decode_to_the_link(http: httpx.Client) -> None:
    png = get(http, f"/links/{NAME}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert decoded(png.content) == ["worklink://resource?action=fetch_catalog&asset=P-101&incident=INC0010001"]
    svg = get(http, f"/links/{NAME}/qr.svg", **GOOD, deferred="true")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert svg.content.startswith(b"<?xml")
    deferred = get(http, f"/links/{NAME}/qr.png", **GOOD, deferred="true")
    assert decoded(deferred.content) == [get(http).json()["deferred_link"]]


def test_answers_can_be_cached_privately_and_revalidated(http: httpx.Client) -> None:
    first = get(http, f"/links/{NAME}/qr.svg")
    assert first.headers["cache-control"] == "private, max-age=300"
    assert first.headers["vary"] == "Authorization" and first.headers["x-content-type-options"] == "nosniff"
    again = http.get(
        f"/links/{NAME}/qr.svg",
        params=GOOD,
        headers={"authorization": f"Bearer {TOKEN}", "if-none-match": first.headers["etag"]},
    )
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == first.headers["etag"]
    other = get(http, f"/links/{NAME}/qr.svg", asset="P-102", incident="INC0010001")
    assert other.headers["etag"] != first.headers["etag"]


def test_the_token_can_be_given_in_the_url_for_an_image_tag(http: httpx.Client) -> None:
    answer = http.get(f"/links/{NAME}/qr.png", params={**GOOD, "access_token": TOKEN})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"


def test_a_signed_mapping_gets_a_signed_link(http: httpx.Client) -> None:
    answer = get(http, "/links/signed-orders", catalog="C 1", order="A/7")
    assert answer.status_code == 200
    sig = signing.sign([("order", "A/7")], LINK_KEY.encode())
    assert answer.json()["link"] == f"worklink://resource?action=fetch_catalog&catalog=C%201&order=A%2F7&sig={sig}"


# --------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("token", "status", "error"),
    [
        (None, 401, "a token is required"),
        ("", 401, "a token is required"),
        ("wrong-token", 401, "the token does not match"),
        (TOKEN + "x", 401, "the token does not match"),
    ],
)
def test_without_the_right_token_it_is_401(http: httpx.Client, token: str | None, status: int, error: str) -> None:
    answer = get(http, token=token)
    assert (answer.status_code, answer.json()) == (status, {"error": error})
    assert answer.headers["www-authenticate"].startswith("Bearer ")
    as_query = http.get(f"/links/{NAME}", params={**GOOD, "access_token": "wrong"})
    assert as_query.status_code == 401


def test_the_webhook_secret_is_not_the_links_token(http: httpx.Client) -> None:
    assert get(http, token="s").status_code == 401


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"asset": "P-101"}, "`incident` is required"),
        ({"asset": "P-101", "incident": "INC^1"}, '`incident` "INC^1" does not match the pattern `[A-Za-z0-9_-]+`'),
        (
            {"asset": "P-101", "incident": "I", "incidnet": "x"},
            "`incidnet` is not a parameter of this link: did you mean `incident`?",
        ),
        ({"incident": "INC1"}, "the link needs the `asset` it opens (its id)"),
        ({"catalog": "C", "incident": "INC1"}, "this link opens asset=ID, not catalog"),
        ({"asset": "P", "incident": "INC1", "deferred": "maybe"}, "`deferred` must be true or false"),
        ({"asset": "P", "incident": "INC1", "sig": "x"}, "`sig` is not a parameter of this link: it takes: incident"),
    ],
)
def test_a_bad_parameter_is_400_with_the_contracts_message(
    http: httpx.Client, params: dict[str, str], error: str
) -> None:
    for kind in ("", "/qr.svg", "/qr.png"):
        answer = get(http, f"/links/{NAME}{kind}", **params)
        assert (answer.status_code, answer.json()) == (400, {"error": error})


def test_a_parameter_given_twice_is_400(http: httpx.Client) -> None:
    answer = http.get(
        f"/links/{NAME}?asset=P&incident=INC1&incident=INC2", headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert (answer.status_code, answer.json()) == (400, {"error": "`incident` is given twice"})


def test_an_unknown_mapping_or_one_without_a_link_is_404(http: httpx.Client) -> None:
    for path in ("/links/nothing-here", "/links/nothing-here/qr.png"):
        answer = get(http, path)
        assert (answer.status_code, answer.json()) == (404, {"error": "no mapping of that name declares a link"})
    assert get(http, "/links/a/b/c").status_code == 404


def test_only_get_is_answered(http: httpx.Client) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        answer = http.request(method, f"/links/{NAME}", params=GOOD, headers={"authorization": f"Bearer {TOKEN}"})
        assert (answer.status_code, answer.json(), answer.headers["allow"]) == (
            405,
            {"error": "method not allowed"},
            "GET",
        )


def test_more_than_the_rate_is_429_and_counts_before_the_token(tmp_path: Path) -> None:
    with serve(app(tmp_path, rate=1)) as url, httpx.Client(base_url=url) as http:
        assert get(http, token="wrong").status_code == 401  # the one request of this second
        refused = get(http)
        assert (refused.status_code, refused.json()) == (429, {"error": "too many requests"})
        assert refused.headers["retry-after"] == "1"


def test_the_rate_limit_refills_with_time() -> None:
    now = [0.0]
    limit = links.RateLimit(2, clock=lambda: now[0])
    assert [limit.take() for _ in range(3)] == [True, True, False]
    now[0] = 0.5
    assert [limit.take() for _ in range(2)] == [True, False]


def test_a_signed_mapping_without_a_key_is_503_not_500(tmp_path: Path) -> None:
    with serve(app(tmp_path, keys=())) as url, httpx.Client(base_url=url) as http:
        answer = get(http, "/links/signed-orders", catalog="C", order="1")
        assert answer.status_code == 503
        assert answer.json() == {"error": "this mapping requires signed links, and WLMAP_LINK_KEY is not set"}


# ------------------------------------------------------------------------------------- any input at all

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
names = st.sampled_from(["asset", "incident", "catalog", "deferred", "access_token", "sig", "action", "x", ""]) | texts


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from([NAME, "signed-orders", "sap-maintenance-notification", "maximo-workorder-worklog", "x"]),
    st.sampled_from(["", "/qr.svg", "/qr.png", "/qr.gif", "/"]),
    st.lists(st.tuples(names, texts), max_size=6),
    st.sampled_from([TOKEN, "wrong", ""]),
)
def test_no_input_gives_a_500_or_a_redirect(
    http: httpx.Client, mapping: str, kind: str, params: list[tuple[str, str]], token: str
) -> None:
    answer = http.get(f"/links/{mapping}{kind}", params=params, headers={"authorization": f"Bearer {token}".strip()})
    assert answer.status_code in (200, 304, 400, 401, 404), answer.text
    assert "location" not in answer.headers
    if answer.status_code != 200:
        assert set(answer.json()) == {"error"}


def _raw(url: str, target: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"GET "
            + target
            + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nConnection: close\r\n\r\n"
        )
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@pytest.mark.parametrize(
    "target",
    [
        b"/links/" + NAME.encode() + b"?asset=%FF%FE&incident=%ZZ",
        b"/links/" + NAME.encode() + b"?asset=P&incident=INC1%00",
        b"/links/" + NAME.encode() + b"?&&&=&asset&incident",
        b"/links/" + NAME.encode() + b"?asset=P&incident=" + b"9" * 5000,
        b"/links/" + NAME.encode() + b"?asset=" + b"%C3%BC" * 900 + b"&incident=INC1",
        b"/links/%2e%2e/%2e%2e/metrics",
        b"/links//evil.example.com/qr.png",
        b"/links/" + NAME.encode() + b"/?asset=P&incident=INC1",  # starlette would redirect by the Host header
        b"/links/" + NAME.encode() + b"/qr.png?asset=P&incident=INC1&deferred",
    ],
)
def test_malformed_requests_on_the_wire_get_a_plain_answer(base_url: str, target: bytes) -> None:
    head = _raw(base_url, target).split(b"\r\n\r\n", 1)[0].lower()
    status = int(head.split(b" ", 2)[1])
    assert status in (200, 400, 404), head
    assert b"\r\nlocation:" not in head


# ------------------------------------------------------------------------------------- the real service


def test_the_service_serves_links_and_its_400_says_what_wlmap_link_says(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "servicenow.yaml").write_text((ROOT / "mappings" / "servicenow.yaml").read_text())
    with Target().running() as target:
        service = Service(tmp_path, target, args=("--links",), env={"WLMAP_LINKS_TOKEN": TOKEN})
        try:
            service.start()
            ok = httpx.get(f"{service.url}/links/{NAME}/qr.png", params={**GOOD, "access_token": TOKEN})
            assert ok.status_code == 200 and decoded(ok.content) == [
                "worklink://resource?action=fetch_catalog&asset=P-101&incident=INC0010001"
            ]
            bad = {"asset": "P-101", "incident": "INC 1", "incidnet": "x"}
            answer = httpx.get(f"{service.url}/links/{NAME}", params=bad, headers={"authorization": f"Bearer {TOKEN}"})
            assert answer.status_code == 400
            assert httpx.get(f"{service.url}/links/{NAME}", params=GOOD).status_code == 401
        finally:
            service.close()
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "mapper.cli",
            "link",
            str(ROOT / "mappings" / "servicenow.yaml"),
            "--asset",
            "P-101",
            "--param",
            "incident=INC 1",
            "--param",
            "incidnet=x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1
    assert cli.stderr.splitlines()[0] == "wlmap: " + answer.json()["error"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "wlmap: --links needs a token of its own: set WLMAP_LINKS_TOKEN"),
        ({"WLMAP_LINKS_TOKEN": "short"}, "wlmap: WLMAP_LINKS_TOKEN is too short: use at least 16 random characters"),
        (
            {"WLMAP_LINKS_TOKEN": "the-webhook-secret-0123", "WLMAP_WEBHOOK_SECRETS": "old,the-webhook-secret-0123"},
            "wlmap: WLMAP_LINKS_TOKEN must not be a webhook secret: give the links a token of their own",
        ),
    ],
)
def test_the_service_will_not_serve_links_without_a_token_of_their_own(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "servicenow.yaml").write_text((ROOT / "mappings" / "servicenow.yaml").read_text())
    environment = {k: v for k, v in os.environ.items() if k != "WLMAP_LINKS_TOKEN"}
    environment.setdefault("WLMAP_WEBHOOK_SECRETS", "a-webhook-secret")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mapper.cli",
            "run",
            "--serve",
            "--links",
            "--mappings",
            "mappings",
            "--port",
            "0",
            "--store",
            "wlmap.db",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**environment, "PYTHONPATH": str(ROOT), **env},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == message


def test_json_answers_are_json(http: httpx.Client) -> None:
    """Every refusal is a JSON object with one `error`: parseable by a UI action without special cases."""
    for answer in (get(http, token=None), get(http, asset="P"), get(http, "/links/x")):
        assert json.loads(answer.content).keys() == {"error"}
