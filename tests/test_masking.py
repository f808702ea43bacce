import base64
import json
import time
from urllib.parse import quote, quote_plus

from hypothesis import given
from hypothesis import strategies as st

from mapper.run.masking import LEARNT_LIMIT, Masker, hide_headers, looks_secret

SECRET = "canary-s3cret-XYZ"


def test_text_replaces_every_secret_longest_first():
    masker = Masker(["abcd", "abcdefgh"])
    assert masker.text("x abcdefgh y abcd z") == "x *** y *** z"


def test_short_values_are_not_secrets():
    masker = Masker(["100", "on", ""])
    assert masker.text("sap-client=100 on") == "sap-client=100 on"


def test_encoded_forms_are_masked():
    secret = 'p@ss w/rd"!'
    masker = Masker([secret])
    for form in (secret, quote(secret, safe=""), quote_plus(secret), 'p@ss w/rd\\"!'):
        assert masker.text(f"before {form} after") == "before *** after", form


def test_basic_pair_is_masked_in_base64():
    masker = Masker()
    masker.add_basic("admin", SECRET)
    encoded = base64.b64encode(f"admin:{SECRET}".encode()).decode()
    assert masker.text(f"Basic {encoded} / {SECRET}") == "Basic *** / ***"
    assert masker.text("admin") == "admin"


def test_add_after_use_takes_effect():
    masker = Masker(["first-secret"])
    assert masker.text("second-secret") == "second-secret"
    masker.add("second-secret")
    assert masker.text("first-secret second-secret") == "*** ***"


def test_headers_hide_credentials_and_keep_the_csrf_handshake_words():
    masker = Masker([SECRET], sensitive_headers=["X-Custom-Key"])
    headers = {
        "Authorization": "Basic Zm9vOmJhcg==",
        "Proxy-Authorization": "x",
        "Cookie": "a=b",
        "Set-Cookie": "SAP_SESSIONID_ABC_100=xyz",
        "x-csrf-token": "Fetch",
        "X-CSRF-Token": "Required",
        "apikey": "k",
        "api-key": "k",
        "x-api-key": "k",
        "x-custom-key": "k",
        "X-Note": f"contains {SECRET}",
        "Accept": "application/json",
    }
    assert masker.headers(headers) == {
        "authorization": "***",
        "proxy-authorization": "***",
        "cookie": "***",
        "set-cookie": "***",
        "x-csrf-token": "Fetch, Required",
        "apikey": "***",
        "api-key": "***",
        "x-api-key": "***",
        "x-custom-key": "***",
        "x-note": "contains ***",
        "accept": "application/json",
    }
    assert masker.headers([("x-csrf-token", "aGVsbG8gd29ybGQ=")]) == {"x-csrf-token": "***"}


def test_url_hides_userinfo_credential_parameters_and_secrets():
    masker = Masker([SECRET], sensitive_params=["sysparm_key"])
    url = (
        f"https://user:pw@sap.example.com/a/{SECRET}?Token=t1&access_token=t2&apikey=a&api_key=b&key=c"
        f"&password=d&secret=e&client_secret=f&sig=g&signature=h&sysparm_key=i&q={quote_plus(SECRET)}&x=1"
    )
    assert masker.url(url) == (
        "https://***@sap.example.com/a/***?Token=***&access_token=***&apikey=***&api_key=***&key=***"
        "&password=***&secret=***&client_secret=***&sig=***&signature=***&sysparm_key=***&q=***&x=1"
    )


def test_url_finds_a_secret_whatever_encoder_built_the_query():
    secret = "p@ss:w/rd"
    masker = Masker([secret])
    assert masker.url("https://h/p?v=p%40ss%3Aw%2Frd&w=p@ss:w/rd") == "https://h/p?v=***&w=***"


def test_value_masks_strings_anywhere_in_json_like_data():
    masker = Masker([SECRET])
    data = {"a": [SECRET, {"b": f"x{SECRET}x", SECRET: 1}], "n": 5, "t": True, "none": None}
    assert masker.value(data) == {"a": ["***", {"b": "x***x", "***": 1}], "n": 5, "t": True, "none": None}
    assert data["a"][0] == SECRET  # a copy, not changed in place


def test_excerpt_never_leaves_part_of_a_secret_at_the_cut():
    secret = "Zq9#xW-Kp2"
    masker = Masker([secret])
    for offset in range(0, 30):
        text = "." * offset + secret + "." * 40
        excerpt = masker.excerpt(text, 20)
        assert len(excerpt) <= 20
        assert "Zq" not in excerpt and "Kp" not in excerpt, (offset, excerpt)


@given(st.text(max_size=200), st.text(max_size=200), st.integers(min_value=5, max_value=300))
def test_masked_text_and_excerpts_never_contain_the_secret(before, after, limit):
    masker = Masker([SECRET])
    text = before + SECRET + after
    assert SECRET not in masker.text(text)
    assert "canary-s3" not in masker.excerpt(text, limit)


def test_large_text_is_masked_quickly():
    secrets = [f"secret-value-{n:03d}-padding" for n in range(50)]
    masker = Masker(secrets)
    chunk = "lorem ipsum dolor sit amet " * 40 + secrets[17] + " "
    text = chunk * (5_000_000 // len(chunk))
    started = time.perf_counter()
    masked = masker.text(text)
    assert time.perf_counter() - started < 2.0
    assert "secret-value" not in masked


# ------------------------------------------------------------------------ masking serialised JSON (traces)

_json_leaves = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
_json_values = st.recursive(
    _json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
# Secrets that meet JSON syntax: digits (a client number), literal letters, quotes, backslashes, escapes.
_secrets = st.one_of(
    st.text(alphabet='0123456789.e-tru"\\\\,:{}[] éa\n', min_size=4, max_size=8),
    st.text(min_size=4, max_size=12),
).filter(lambda s: "*" not in s)


@given(_json_values, st.lists(_secrets, min_size=1, max_size=3))
def test_masking_a_trace_keeps_it_json_and_hides_every_secret(value, secrets):
    from mapper.run.trace import mask

    masker = Masker(secrets)
    record = {"data": value, "note": f"{secrets[0]} in text", "list": [secrets[-1], 1234]}
    text = mask(record, masker)
    loaded = json.loads(text)  # whatever the secrets are, the result is JSON
    for secret in secrets:
        assert not any(secret in string for string in _strings(loaded)), secret
    assert text.isascii()


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@given(_json_values, st.lists(_secrets, min_size=1, max_size=3))
def test_json_text_never_claims_valid_json_it_broke(value, secrets):
    masker = Masker(secrets)
    masked, surely_json = masker.json_text(json.dumps({"v": value, "s": secrets}))
    if surely_json:
        json.loads(masked)


def test_json_text_claims_valid_json_for_ordinary_secrets():
    masker = Masker(["https://acme.service-now.com", "secret-password", "0100"])
    text = json.dumps({"url": "https://acme.service-now.com/api", "auth": "secret-password"})
    assert masker.json_text(text) == (json.dumps({"url": "***/api", "auth": "***"}), True)
    numeric = json.dumps({"client": "0100", "n": 10100})
    assert masker.json_text(numeric)[1] is False  # "0100" could sit inside a number: the caller must check


# ------------------------------------------------------------------------------- every form, learnt secrets


def test_a_secret_is_masked_in_base64_too():
    masker = Masker([SECRET])
    raw = SECRET.encode()
    for form in (
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
    ):
        # the unpadded form is looked for (the padded one starts with it): what padding there was may stay
        assert masker.text(f"echo: {form}.").removesuffix(".").rstrip("=") == "echo: ***", form


def test_credentials_a_request_sends_are_secrets_however_they_were_built():
    masker = Masker()
    pair = base64.b64encode(b"someone:built-by-a-template").decode()
    masker.learn_sent(
        [
            ("Authorization", f"Basic {pair}"),
            ("Cookie", "SESSION=cookie-value-1; other=cookie-value-2"),
            ("X-CSRF-Token", "Fetch"),
            ("Accept", "application/json"),
        ]
    )
    page = f"you sent Basic {pair} with cookie-value-1 and cookie-value-2; x-csrf-token: Fetch; application/json"
    assert masker.text(page) == "you sent Basic *** with *** and ***; x-csrf-token: Fetch; application/json"
    masker.learn_sent([("authorization", "Token token=scope-api-token-42")])
    assert masker.text('token "scope-api-token-42"') == 'token "***"'


def test_cookies_and_csrf_tokens_a_target_hands_out_become_secrets():
    masker = Masker()
    masker.learn_received(
        [
            ("Set-Cookie", "SAP_SESSIONID_ABC_100=session-canary-1; path=/; HttpOnly"),
            ("set-cookie", "sap-usercontext=sap-client=100; path=/"),
            ("x-csrf-token", "csrf-canary-2"),
            ("content-type", "application/json"),
        ]
    )
    text = "session-canary-1 csrf-canary-2 path=/ HttpOnly sap-client=100 application/json"
    assert masker.text(text) == "*** *** path=/ HttpOnly *** application/json"
    masker.learn_received([("x-csrf-token", "Required")])
    assert masker.text("Required") == "Required"


def test_secrets_learnt_from_traffic_are_bounded_and_the_newest_kept():
    masker = Masker(["lasting-secret"])
    for n in range(LEARNT_LIMIT + 10):
        masker.remember(f"token-number-{n:05d}")
    assert masker.text("token-number-00000") == "token-number-00000"  # the oldest went
    assert masker.text(f"token-number-{LEARNT_LIMIT + 9:05d} lasting-secret") == "*** ***"


def test_labels_name_a_value_and_a_secret_wins_over_a_label():
    masker = Masker(labels={"SNOW_BASE_URL": "https://acme.service-now.com", "SAP_CLIENT": "0100"})
    assert masker.url("https://acme.service-now.com/api/now/table/incident?sysparm_limit=1&sap-client=0100") == (
        "‹SNOW_BASE_URL›/api/now/table/incident?sysparm_limit=1&sap-client=0100"
    )
    assert masker.text(quote("https://acme.service-now.com", safe="")) == "‹SNOW_BASE_URL›"
    masker.add("https://acme.service-now.com")
    assert masker.text("https://acme.service-now.com/x") == "***/x"
    text, _ = masker.json_text(json.dumps({"u": "https://acme.service-now.com"}))
    assert json.loads(text) == {"u": "***"}


def test_a_label_inside_a_trace_keeps_it_json():
    from mapper.run.trace import mask

    masker = Masker(labels={"BASE_URL": "https://target.example.com"})
    shown = json.loads(mask({"url": "https://target.example.com/x", "n": 1}, masker))
    assert shown == {"url": "‹BASE_URL›/x", "n": 1}


def test_inbound_credential_headers_are_hidden_by_name():
    pairs = [("authorization", "Basic abc"), ("Cookie", "a=b"), ("x-scope-topic", "t"), ("x-extra", "v")]
    assert hide_headers(pairs, ["x-extra"]) == [
        ("authorization", "***"),
        ("Cookie", "***"),
        ("x-scope-topic", "t"),
        ("x-extra", "***"),
    ]


def test_names_that_say_secret():
    assert all(looks_secret(n) for n in ("SAP_PASSWORD", "SCOPE_API_TOKEN", "OAUTH_CLIENT_SECRET", "MAXIMO_API_KEY"))
    assert not any(looks_secret(n) for n in ("SNOW_BASE_URL", "SAP_CLIENT", "KEYBOARD_LAYOUT", "TOKEN_URL"))
