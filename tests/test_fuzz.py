"""Bad input never crashes the server: every route fuzzed from the app's own OpenAPI schema
(schemathesis), and the OpenAI request bodies from hypothesis strategies.

The property: no answer is a 5xx (the fake engine is never down), and every error is
OpenAI-shaped, ``{"error": {"message", "type", "code"}}``. Example counts are bounded so the
file runs in seconds; a failure prints the request that reproduces it.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from assistant.chat.embeddings import EmbeddingRequest
from assistant.chat.feedback import FeedbackRequest
from assistant.chat.feedback_store import FeedbackStore
from assistant.chat.schemas import MAX_JSON_DEPTH, ChatCompletionRequest, CompletionRequest
from assistant.escalation.service import EscalationRequest
from assistant.identity.users import UserStore
from assistant.knowledge.index import IndexService
from assistant.knowledge.jobs import JobRunner, JobStore
from assistant.settings import load_settings
from tests.conftest import gateway_app
from tests.fakes import FakeEmbedder, FakeIndex, FakeUpstream

MODELS = ("helpdesk-demo", "it-support")
ADMIN_KEY, SERVICE_KEY = "fuzz-admin-key", "fuzz-service-key"
CALLERS = ["nobody", "wrong key", "user key", "admin key", "mode's own"]
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,  # the same examples every run: CI time is tight, failures reproducible
    derandomize=True,
)


class WireUpstream(FakeUpstream):
    """The fake engine, but bodies cross the wire as the real one's do (httpx encodes JSON
    strictly: no NaN or Infinity), so what cannot be sent to vLLM fails here too; and a
    message with no content (``"content": null`` is left out on the way) is echoed as ''."""

    @staticmethod
    def _answer(body: dict) -> str:
        if "messages" in body:
            return "echo: " + str(body["messages"][-1].get("content", ""))
        return "echo: " + str(body["prompt"])

    async def post(self, path, body):
        json.dumps(body, allow_nan=False)
        return await super().post(path, body)

    async def stream(self, path, body):
        json.dumps(body, allow_nan=False)
        async for chunk in super().stream(path, body):
            yield chunk


class QueuedJobs(JobRunner):
    """Real job records, but no reindex is run (the fuzzer starts hundreds)."""

    def submit(self, kind, params, work):
        return self.store.create(kind, params)


def build_gateway(tmp, auth: str) -> SimpleNamespace:
    """The gateway with fakes for its engine and index, in ``auth`` mode: an admin key, a
    service key (mode ``none``), a user with a key and, for ``local``, a session."""
    docs = tmp / "docs"
    docs.mkdir()
    (docs / "vpn.md").write_text("# VPN\n\nTP-204 means the device certificate expired.\n")
    overrides = {"api_keys": [SERVICE_KEY]} if auth == "none" else {}
    if auth == "local":  # with (generous) limits, so their code is fuzzed too
        overrides.update(rate_limit_per_minute=100_000, max_concurrent_per_key=4)
    # tickets go to a port nobody listens on: queued and retried, never a 5xx to the caller
    overrides["escalation_webhook_url"] = "http://127.0.0.1:9/tickets"
    config = load_settings(
        home=tmp / "home", docs_dir=docs, admin_key=ADMIN_KEY, auth=auth, **overrides
    )
    users = UserStore(tmp / "users.sqlite")
    users.add("alice", ["staff"], password="alice-password")
    user_key = users.create_key("alice")[1]
    feedback, jobs = FeedbackStore(tmp / "feedback.sqlite"), JobStore(tmp / "jobs.sqlite")
    app = gateway_app(
        config,
        upstream=WireUpstream(models=MODELS),
        index=FakeIndex(),
        embedder=FakeEmbedder(),
        index_service=IndexService(
            config,
            SimpleNamespace(list_collections=list),  # a Chroma client with no collections
            FakeEmbedder(),
            QueuedJobs(jobs),
        ),
        feedback_store=feedback,
        users=users,
        login_delay_s=0.0,
    )
    headers = {
        "nobody": {},
        "wrong key": {"Authorization": "Bearer sk-wrong"},
        "user key": {"Authorization": f"Bearer {user_key}"},
        "admin key": {"Authorization": f"Bearer {ADMIN_KEY}"},
    }
    if auth == "none":
        headers["mode's own"] = {"Authorization": f"Bearer {SERVICE_KEY}"}
    else:  # signed in on the page
        headers["mode's own"] = {
            "Cookie": f"hd_session={app.state.services.auth.start_session('alice')}"
        }
    return SimpleNamespace(app=app, headers=headers, stores=(users, feedback, jobs))


def documented(app) -> dict:
    """The app's OpenAPI schema, plus the bodies of the routes that read their body raw
    (the OpenAI ones, feedback and escalations), so the fuzzer sends those too."""
    schema = app.openapi()
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for path, model in {
        "/v1/chat/completions": ChatCompletionRequest,
        "/v1/completions": CompletionRequest,
        "/v1/embeddings": EmbeddingRequest,
        "/v1/feedback": FeedbackRequest,
        "/v1/escalations": EscalationRequest,
    }.items():
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
        schema["paths"][path]["post"]["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    return schema


@pytest.fixture(scope="module", params=["none", "local"])
def gateway(request, tmp_path_factory):
    made = build_gateway(tmp_path_factory.mktemp(f"fuzz-{request.param}"), request.param)
    made.app.openapi_schema = documented(made.app)  # what /openapi.json serves from now on
    yield made
    for store in made.stores:
        store.close()


def assert_sane(status: int, content_type: str, body: bytes, request: str) -> None:
    """No 5xx, and every error in OpenAI's shape."""
    assert status < 500, f"{status} for {request}: {body[:500]!r}"
    if status < 400:
        return
    assert content_type.startswith("application/json"), f"{status} {content_type} for {request}"
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "code"}, f"{error} for {request}"
    assert isinstance(error["message"], str) and error["message"], request
    assert isinstance(error["type"], str) and error["type"], request


# What generated strings rarely are: NUL, too long for a file name, paths out of the docs or
# through a file, unpaired surrogates, NaN and Infinity (Python's json writes them; JSON has
# no such thing), numbers beyond 64 bits.
HOSTILE_TEXT = ["a\x00b", "x" * 5000, "/".join(["d" * 200] * 30), "..", "../../etc", "vpn.md",
                "vpn.md/x", "%2e%2e", "\u202e", " ", ""]  # fmt: skip
HOSTILE_JSON = [*HOSTILE_TEXT, "\ud800", "a\udfffb", math.nan, math.inf, -(2**70), [], {}]


def places(case, schema: dict) -> list[tuple[str, str]]:
    """Where a value can go: each path and query parameter, each field of the body (those
    the schema names, those generated) and one unknown field."""
    operation = schema["paths"][case.path][case.method.lower()]
    found = [(p["in"], p["name"]) for p in operation.get("parameters", [])]
    if "requestBody" in operation:
        body = next(iter(operation["requestBody"]["content"].values()))["schema"]
        named = [body, *body.get("anyOf", [])]  # an optional body: anyOf [model, null]
        refs = [b["$ref"].rsplit("/", 1)[1] for b in named if "$ref" in b]
        if refs:
            body = schema["components"]["schemas"][refs[0]]
        generated = case.body if isinstance(case.body, dict) else {}
        fields = [*body.get("properties", {}), *generated, "unknown_field"]
        found += [("body", k) for k in dict.fromkeys(fields)]
    return found


def hostile_values(case, where: str) -> list:
    json_body = where == "body" and "json" in (case.media_type or "")
    return HOSTILE_JSON if json_body else HOSTILE_TEXT  # a URL or a form carries text only


def with_value(case, where: str, key: str, value) -> tuple:
    """A copy of ``case`` with ``value`` at ``where``/``key``, and the headers it needs."""
    case = case.derive()
    if where == "path":
        case.path_parameters[key] = value
    elif where == "query":
        case.query = {**(case.query or {}), key: value}
    elif "json" in (case.media_type or ""):  # encoded here: the client refuses NaN and
        body = case.body if isinstance(case.body, dict) else {}  # unpaired surrogates
        case.body = json.dumps({**body, key: value}).encode()
        return case, {"content-type": "application/json"}
    else:  # a form, with a document the server takes: the hostile field is what it judges
        from urllib3 import encode_multipart_formdata

        case.body, content_type = encode_multipart_formdata(
            {"files": ("notes.md", b"# Notes\n"), key: value}
        )
        return case, {"content-type": content_type}
    return case, {}


def call(gateway, case, who: str, headers: dict | None = None) -> None:
    response = case.call(headers={**gateway.headers[who], **(headers or {})})
    content_type = (response.headers.get("content-type") or [""])[0]  # lowercase keys, lists
    request = f"{case.method} {case.formatted_path} as {who}: {case.body!r}"[:2000]
    assert_sane(response.status_code, content_type, response.content, request)


@pytest.fixture(scope="module")
def operations(gateway):
    api = schemathesis.openapi.from_asgi("/openapi.json", gateway.app)
    found = [result.ok() for result in api.get_all_operations()]
    assert len(found) == sum(len(ops) for ops in gateway.app.openapi()["paths"].values())
    return found


def test_every_route_survives_the_fuzzer(gateway, operations, subtests):
    """Each operation of /openapi.json, with data that fits its schema and data that does
    not (schemathesis' positive and negative modes), as each kind of caller."""
    for operation in operations:

        @settings(FUZZ, max_examples=25)  # per auth mode: 50 in all per operation
        @given(
            case=st.one_of([operation.as_strategy(mode) for mode in GenerationMode]),
            who=st.sampled_from(CALLERS),
        )
        def survives(case, who):
            call(gateway, case, who)

        with subtests.test(operation.label):
            survives()


def first_example(strategy):
    """One example of ``strategy``, as given (not shrunk), the same every run."""
    found = []

    @settings(FUZZ, max_examples=1, phases=[Phase.generate])
    @given(strategy)
    def take(example):
        found.append(example)

    take()
    return found[0]


def test_every_parameter_and_field_survives_hostile_values(gateway, operations, subtests):
    """Every hostile value in every parameter and body field of every operation, once
    (too rare in random data to leave to chance), as the admin, who gets furthest."""
    for operation in operations:
        base = first_example(operation.as_strategy(GenerationMode.POSITIVE))
        with subtests.test(operation.label):
            for where, key in places(base, gateway.app.openapi()):
                for value in hostile_values(base, where):
                    hostile, headers = with_value(base, where, key, value)
                    call(gateway, hostile, "admin key", headers)


# --- the OpenAI request bodies, from hypothesis ------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
anything = json_values | st.sampled_from(HOSTILE_JSON)


content_parts = st.lists(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=30)}), max_size=3
)
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
            "content": st.one_of(st.text(max_size=40), content_parts, st.none()),
        },
        optional={"name": st.text(max_size=10), "tool_calls": json_values},
    ),
    min_size=1,
    max_size=4,
)
good_chats = st.fixed_dictionaries(
    {"model": st.sampled_from([*MODELS, "gpt-7"]), "messages": messages},
    optional={
        "stream": st.booleans(),
        "max_tokens": st.integers(1, 5000),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0.01, 1),
        "n": st.integers(1, 16),
        "retrieval": st.fixed_dictionaries(
            {},
            optional={
                "enabled": st.booleans(),
                "k": st.integers(1, 50),
                "collection": st.just("docs"),
                "hyde": st.booleans(),
            },
        ),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "tools": json_values,
        "some_future_field": json_values,
    },
)
FIELDS = ["model", "messages", "stream", "max_tokens", "temperature", "top_p", "n", "retrieval"]


@st.composite
def spoiled(draw, bodies):
    """A body with one field (or one message's field) replaced by anything at all."""
    body = draw(bodies)
    value = draw(anything)
    where = draw(st.sampled_from([*FIELDS, "role", "content"]))
    if where in {"role", "content"}:
        body["messages"][0][where] = value
    else:
        body[where] = value
    return body


chat_bodies = st.one_of(good_chats, spoiled(good_chats))


def nested(depth: int, body: bytes) -> bytes:
    return b"[" * depth + body + b"]" * depth


def deep_object(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


def deep_field(depth: int) -> bytes:
    """A good chat request, but for one field nested ``depth`` lists deep."""
    chat = b'{"model": "helpdesk-demo", "messages": [{"role": "user", "content": "hi"}], "x": '
    return chat + nested(depth, b"") + b"}"


DEPTHS = st.sampled_from([MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 900, 100_000])
raw_bodies = st.one_of(
    chat_bodies.map(lambda body: json.dumps(body).encode()),
    st.binary(max_size=64),
    st.builds(nested, DEPTHS, st.just(b"1")),
    st.builds(deep_field, DEPTHS),
    st.builds(deep_object, DEPTHS),
)


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    made = build_gateway(tmp_path_factory.mktemp("bodies"), "none")
    with TestClient(made.app, raise_server_exceptions=False) as client:
        client.headers.update(made.headers["mode's own"])
        yield client
    for store in made.stores:
        store.close()


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"])
@given(raw=raw_bodies)
@FUZZ
def test_openai_bodies_get_an_answer_or_a_clear_400(http, route, raw):
    resp = http.post(route, content=raw, headers={"content-type": "application/json"})
    assert_sane(resp.status_code, resp.headers.get("content-type", ""), resp.content, repr(raw))


@given(body=chat_bodies)
@FUZZ
def test_a_chat_body_the_model_accepts_is_answered(http, body):
    """The request model decides: what it accepts (for a served model, with JSON that can
    be sent on) is answered, streamed or not; everything else is a 400 or 404 naming it."""
    raw = json.dumps(body).encode()
    resp = http.post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert_sane(resp.status_code, resp.headers.get("content-type", ""), resp.content, repr(raw))
    try:
        request = ChatCompletionRequest.model_validate(json.loads(raw))
        sendable = request.model_dump(exclude_none=True)
        json.dumps(sendable, allow_nan=False, ensure_ascii=False).encode()
    except ValueError:  # not valid for the model, or not JSON that can be sent on
        assert resp.status_code == 400, resp.text
        return
    if request.model not in MODELS:
        assert resp.status_code == 404, resp.text
        return
    assert resp.status_code == 200, resp.text
    if request.stream:
        assert resp.text.rstrip().endswith("data: [DONE]")
    else:
        assert resp.json()["choices"][0]["message"]["role"] == "assistant"


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
        ("POST", "/v1/feedback"),
        ("POST", "/v1/admin/reindex"),  # these two are parsed by FastAPI itself
        ("PATCH", "/v1/conversations/c1"),
    ],
)
def test_deep_nesting_is_a_400_that_says_so(http, method, route):
    admin = {"Authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
    for depth in (5_000, 100_000):
        for raw in (nested(depth, b""), deep_object(depth)):
            resp = http.request(method, route, content=raw, headers=admin)
            assert resp.status_code == 400, resp.text
            assert "nested too deeply" in resp.json()["error"]["message"]


def test_json_bodies_are_json_text_nested_at_most_max_depth():
    from assistant.chat.schemas import load_json
    from assistant.errors import APIError

    deepest = b'{"x": ' + nested(MAX_JSON_DEPTH - 1, b"") + b"}"
    assert load_json(deepest)["x"]  # the object itself is the first level
    assert load_json(b'{"a": "\\ud83d\\ude00 \xed\x95\x9c"}') == {"a": "\U0001f600 \ud55c"}
    for raw in (
        b'{"x": ' + nested(MAX_JSON_DEPTH, b"") + b"}",
        b'{"a": NaN}',
        b'{"a": -Infinity}',
        b'{"a": "\\udc00"}',
        b'{"a": "\xed\xa0\x80"}',
    ):
        with pytest.raises(APIError) as caught:
            load_json(raw)
        assert caught.value.status == 400, raw
