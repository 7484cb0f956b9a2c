"""Properties: classify never raises, whatever it is given; redact never leaves a key behind."""

from __future__ import annotations

import contextlib
import itertools
import string
from typing import Any, get_args

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from byok_tasks import classify, llm_call, redact
from byok_tasks.failure import Reason

REASONS = set(get_args(Reason))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
# Field names the classifier looks at, mixed with names it does not.
bodies = st.recursive(
    json_values,
    lambda children: (
        st.dictionaries(
            st.sampled_from(
                [
                    "error",
                    "code",
                    "type",
                    "status",
                    "message",
                    "details",
                    "@type",
                    "reason",
                    "violations",
                    "quotaId",
                    "retryDelay",
                    "error_code",
                    "detail",
                    "x",
                ]
            ),
            children,
            max_size=6,
        )
        | st.lists(children, max_size=4)
    ),
    max_leaves=40,
)


class Hostile:
    """An object whose every attribute read raises."""

    def __init__(self, error: type[Exception]) -> None:
        self._error = error

    def __getattr__(self, name: str) -> Any:
        raise self._error(name)


class HostileHeaders(dict[Any, Any]):
    def get(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("headers")

    def items(self) -> Any:
        raise RuntimeError("headers")


attribute_values = st.one_of(
    json_values,
    bodies,
    st.integers(),
    st.binary(max_size=200),
    st.text(max_size=300),
    st.builds(Hostile, st.sampled_from([RuntimeError, ValueError, KeyError, TypeError, AttributeError])),
    st.just(HostileHeaders({"retry-after": "1"})),
    st.dictionaries(st.text(max_size=20), st.text(max_size=40) | st.integers() | st.none(), max_size=5),
    st.builds(
        lambda: {
            "Error": {"Code": "ThrottlingException"},
            "ResponseMetadata": {"HTTPStatusCode": 429, "HTTPHeaders": {"retry-after": "x"}},
        }
    ),
)
attribute_names = st.sampled_from(
    [
        "status_code",
        "status",
        "code",
        "body",
        "details",
        "response",
        "request",
        "headers",
        "raw_response",
        "request_info",
        "kwargs",
        "operation_name",
        "message",
        "_content",
        "url",
        "host",
    ]
)
exception_types = st.sampled_from(
    [Exception, RuntimeError, ValueError, TimeoutError, ConnectionError, OSError, KeyError]
)


@st.composite
def hostile_exceptions(draw: st.DrawFn) -> BaseException:
    base = draw(exception_types)
    attributes = draw(st.dictionaries(attribute_names, attribute_values, max_size=6))
    raising_property = draw(st.sampled_from([None, *sorted(attributes)]))
    namespace: dict[str, Any] = {}
    if raising_property is not None:
        namespace[raising_property] = property(lambda self: (_ for _ in ()).throw(RuntimeError("property")))
    if draw(st.booleans()):
        namespace["__str__"] = lambda self: (_ for _ in ()).throw(ValueError("str"))
    module = draw(
        st.sampled_from(
            ["openai._exceptions", "botocore.errorfactory", "httpx2", "google.genai.errors", "myapp.errors"]
        )
    )
    cls = type(
        draw(st.sampled_from(["APIStatusError", "ReadTimeout", "ConnectError", "ThrottlingException", "Oops"])),
        (base,),
        {**namespace, "__module__": module},
    )
    exc = cls(*draw(st.lists(st.text(max_size=30) | st.integers(), max_size=2)))
    for name, value in attributes.items():
        if name != raising_property:
            with contextlib.suppress(Exception):
                setattr(exc, name, value)
    return exc


@st.composite
def exception_chains(draw: st.DrawFn) -> BaseException:
    links = draw(st.lists(hostile_exceptions(), min_size=1, max_size=5))
    for outer, inner in itertools.pairwise(links):
        setattr(outer, draw(st.sampled_from(["__cause__", "__context__"])), inner)
    if draw(st.booleans()):
        links[-1].__context__ = links[0]  # a cycle
    return links[0]


def assert_well_formed(failure: Any) -> None:
    if failure is None:
        return
    assert failure.reason in REASONS
    assert failure.source in ("byok", "platform")
    assert isinstance(failure.message, str) and len(failure.message) <= 501
    assert failure.retryable == (
        failure.reason in {"rate_limit", "overloaded", "server_error", "timeout", "connection"}
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exception_chains(), st.none() | st.sampled_from(["openai", "bedrock", "made-up"]))
def test_classify_never_raises_on_hostile_exceptions(exc: BaseException, provider: str | None) -> None:
    assert_well_formed(classify(exc, provider=provider))


@settings(max_examples=100, deadline=None)
@given(exception_chains())
def test_classify_never_raises_on_annotated_hostile_exceptions(exc: BaseException) -> None:
    try:
        with llm_call("openai", model="m"):
            raise exc
    except BaseException as raised:
        assert_well_formed(classify(raised))


def test_classify_survives_a_recursive_body_and_a_huge_one() -> None:
    recursive: dict[str, Any] = {"error": {}}
    recursive["error"]["details"] = [recursive, recursive["error"]]
    recursive["error"]["message"] = "m"

    class Huge(Exception):
        status_code = 400
        response = None

    for body in (recursive, {"error": {"message": "sk-" + "a" * 2_000_000}}, "x" * 5_000_000):
        exc = Huge()
        exc.body = body  # type: ignore[attr-defined]
        with llm_call("openai"):
            pass
        assert_well_formed(classify(exc, provider="openai"))


def test_classify_survives_a_long_exception_chain() -> None:
    exc: BaseException = TimeoutError("innermost")
    for depth in range(10_000):
        outer = RuntimeError(depth)
        outer.__cause__ = exc
        exc = outer
    assert classify(exc) is None  # the timeout is beyond the depth bound: nothing informative in reach


# --- redact ----------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"


def keyed(prefix: str, alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=size, max_size=size + 40).map(lambda tail: prefix + tail)


KEY_SHAPES = st.one_of(
    keyed("sk-", ALNUM, 20),
    keyed("sk-proj-", URLSAFE, 40),
    keyed("sk-svcacct-", URLSAFE, 40),
    keyed("sk-admin-", URLSAFE, 40),
    keyed("sk-ant-api03-", URLSAFE, 80),
    keyed("sk-or-v1-", string.hexdigits.lower(), 64),
    st.text(ALNUM, min_size=4, max_size=4).map(lambda tail: "sk-proj-" + "*" * 40 + tail),  # OpenAI's masked echo
    keyed("AIza", URLSAFE, 35),
    keyed("ya29.", URLSAFE + ".", 30),
    keyed("gsk_", ALNUM, 52),
    keyed("xai-", ALNUM, 80),
    keyed("hf_", ALNUM, 34),
    st.tuples(
        st.sampled_from(["AKIA", "ASIA"]), st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16)
    ).map("".join),
)
# What stands between a key and the text around it in the messages, JSON and logs we see.
SEPARATORS = st.sampled_from(
    [" ", "\n", "\t", '"', "'", ":", "=", ",", ";", "(", ")", "[", "]", "{", "}", "<", ">", "|", "/", "`"]
)
NAMED_SECRETS = st.tuples(
    st.sampled_from(
        [
            "aws_secret_access_key=",
            "SecretAccessKey: ",
            '"aws_session_token": "',
            "x-api-key: ",
            "api-key=",
            "x-goog-api-key: ",
            "Authorization: Bearer ",
            "?key=",
            "&api_key=",
        ]
    ),
    st.text(ALNUM + "/+=", min_size=16, max_size=60),
)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80), SEPARATORS, KEY_SHAPES, SEPARATORS, st.text(max_size=80))
def test_redact_never_leaves_a_key_embedded_in_text(before: str, left: str, key: str, right: str, after: str) -> None:
    assume(key not in before and key not in after)
    assert key not in redact(before + left + key + right + after)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), NAMED_SECRETS, SEPARATORS, st.text(max_size=80))
def test_redact_never_leaves_a_named_secret(before: str, named: tuple[str, str], right: str, after: str) -> None:
    name, secret = named
    assume(secret not in before and secret not in after and secret not in name)
    text = before + " " + name + secret + right + after
    assert secret not in redact(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2000))
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
