"""Test against a real HTTP server speaking the Messages API, offline.

:class:`LocalServer` is a local HTTP/1.1 server (JSON and SSE, keep-alive, auth per provider flavour,
the API's request validation and 400s) that answers from a *policy*: a :class:`Script` of replies, a
function, or a built-in workload. The :data:`reply` helpers build answers and faults::

    from agentkit.testing import LocalServer, Script, reply

    script = Script([reply.tool_use("get_weather", {"city": "Tokyo"}), reply.text("Sunny.")])
    with LocalServer(policy=script) as srv:
        ...  # point a client at srv.base_url with api_key "sk-test"; srv.requests records what was sent

From a shell (benchmarks)::

    python -m agentkit.testing serve --port 0 --flavour anthropic --latency 0.2 --policy weather
"""

from ._demo import OFFLINE_NOTICE, DemoSetup, demo_client
from ._hostile import BareLFReply, BufferedStreamReply, GzipBombReply, GzipReply, StaleBytesReply
from ._offline import CallEveryTool, OfflineModel, example_input
from ._policies import (
    CITIES,
    CutStreamReply,
    DelayReply,
    DropMidBodyReply,
    DropReply,
    EchoPolicy,
    ErrorEventReply,
    ErrorReply,
    FunctionPolicy,
    MalformedReply,
    MessageReply,
    PingForeverReply,
    Policy,
    RawReply,
    Reply,
    ReplyLike,
    Request,
    ResetReply,
    Script,
    ScriptExhausted,
    TrickleReply,
    WeatherWorkload,
    reply,
)
from ._server import DEFAULT_MODELS, Flavour, LocalServer
from ._wire import message_events, sign_thinking, sse_event

__all__ = [
    "CITIES",
    "DEFAULT_MODELS",
    "OFFLINE_NOTICE",
    "BareLFReply",
    "BufferedStreamReply",
    "CallEveryTool",
    "CutStreamReply",
    "DelayReply",
    "DemoSetup",
    "DropMidBodyReply",
    "DropReply",
    "EchoPolicy",
    "ErrorEventReply",
    "ErrorReply",
    "Flavour",
    "FunctionPolicy",
    "GzipBombReply",
    "GzipReply",
    "LocalServer",
    "MalformedReply",
    "MessageReply",
    "OfflineModel",
    "PingForeverReply",
    "Policy",
    "RawReply",
    "Reply",
    "ReplyLike",
    "Request",
    "ResetReply",
    "Script",
    "ScriptExhausted",
    "StaleBytesReply",
    "TrickleReply",
    "WeatherWorkload",
    "demo_client",
    "example_input",
    "message_events",
    "reply",
    "sign_thinking",
    "sse_event",
]
