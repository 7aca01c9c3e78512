"""Model stand-ins that read the request like a model would: the offline demo model and
call-every-tool. Both are policies for :class:`LocalServer`, so the whole stack (client, SSE, loop,
dispatch, tracing) runs for real without a key or a network.

They are deterministic: the same request always gets the same answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ._offline_words import (
    _EXPR_RE,
    _FUNC_EXPR_RE,
    _IANA_RE,
    _KNOWN_PLACES,
    _NUMBER_RE,
    _PLACE_PARAMS,
    _PLACE_RE,
    _QUOTED_RE,
    _SENTENCE_STARTERS,
    _STOPWORDS,
    _SYNONYMS,
    _TIME_RE,
    _URL_RE,
    _ZONES,
)
from ._policies import Request, reply

__all__ = ["CallEveryTool", "OfflineModel", "example_input"]

_OUTPUT_TOOL = "final_result"


class OfflineModel:
    """A deterministic stand-in for Claude, good enough for tool demos.

    It reads the tool schemas and the last user prompt, calls the tools that fit with arguments
    taken from the prompt (``"weather in Tokyo and Paris"`` → two parallel ``get_weather`` calls),
    then answers in text built from the tool results. It honours ``tool_choice`` and answers the
    structured-output tool (``final_result``) from the results it saw.
    """

    def __call__(self, request: Request) -> Any:
        body = request.json if isinstance(request.json, dict) else {}
        tools = _client_tools(request)
        choice = body.get("tool_choice") or {}
        prompt = _last_prompt(request.messages)
        results = _latest_results(request.messages)
        output_tool = next((t for t in tools if t["name"] == _OUTPUT_TOOL), None)
        usable = [t for t in tools if t["name"] != _OUTPUT_TOOL]

        if choice.get("type") == "none":
            return reply.text(_answer(prompt, results, usable))
        if results is not None:
            if output_tool is not None and not _output_accepted(results):
                return reply.tool_use(
                    _OUTPUT_TOOL, _fill_output(output_tool["input_schema"], prompt, results)
                )
            return reply.text(_answer(prompt, results, usable))

        calls = _plan_calls(prompt, usable)
        if choice.get("type") == "tool":
            forced = next((t for t in tools if t["name"] == choice.get("name")), None)
            if forced is not None:
                calls = [c for c in calls if c[0] == forced["name"]] or [
                    (forced["name"], example_input(forced.get("input_schema", {}), prompt))
                ]
        elif choice.get("type") == "any" and not calls and tools:
            calls = [(tools[0]["name"], example_input(tools[0].get("input_schema", {}), prompt))]
        if choice.get("disable_parallel_tool_use"):
            calls = calls[:1]
        if calls:
            return reply.tool_uses(calls)
        if output_tool is not None:
            return reply.tool_use(_OUTPUT_TOOL, _fill_output(output_tool["input_schema"], prompt, []))
        return reply.text(_answer(prompt, None, usable))


class CallEveryTool:
    """Calls every tool once (in parallel) with inputs generated from its schema, then ends the turn
    with a text listing the results. Useful to smoke-test a whole toolset offline."""

    def __call__(self, request: Request) -> Any:
        results = _latest_results(request.messages)
        if results is not None:
            lines = [
                f"{name}: {'error: ' if error else ''}{_short(text)}" for name, _, text, error in results
            ]
            return reply.text("Called every tool.\n" + "\n".join(lines))
        tools = _client_tools(request)
        if not tools:
            return reply.text("No tools to call.")
        return reply.tool_uses([(t["name"], example_input(t.get("input_schema", {}))) for t in tools])


# --- reading the request -------------------------------------------------------------------------


def _client_tools(request: Request) -> list[dict[str, Any]]:
    """The client's own tools; server tools (``web_search_20250305``...) run at Anthropic, not here."""
    return [
        t for t in request.tools if isinstance(t, dict) and "name" in t and t.get("type") in (None, "custom")
    ]


def _last_prompt(messages: list[dict[str, Any]]) -> str:
    """The last real user text (skipping turns that only carry tool results)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
        if texts:
            return " ".join(texts)
    return ""


def _latest_results(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], str, bool]] | None:
    """``(tool name, input, result text, is_error)`` for the results in the last user turn, or None."""
    if len(messages) < 2 or messages[-1].get("role") != "user":
        return None
    content = messages[-1].get("content")
    if not isinstance(content, list):
        return None
    results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
    if not results:
        return None
    if any(isinstance(b, dict) and b.get("type") == "text" and b.get("text", "").strip() for b in content):
        return None  # the user wrote something new after the results: that is the prompt to answer
    uses: dict[str, dict[str, Any]] = {}
    for message in reversed(messages[:-1]):  # the assistant turn before (its messages are combined)
        if message.get("role") == "user":
            if uses:
                break
            continue
        previous = message.get("content")
        for block in previous if isinstance(previous, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                uses[str(block.get("id"))] = block
    out = []
    for result in results:
        use = uses.get(str(result.get("tool_use_id")), {})
        out.append(
            (
                str(use.get("name", "tool")),
                dict(use.get("input") or {}),
                _result_text(result),
                bool(result.get("is_error")),
            )
        )
    return out


def _result_text(result: Mapping[str, Any]) -> str:
    content = result.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _output_accepted(results: list[tuple[str, dict[str, Any], str, bool]]) -> bool:
    return any(name == _OUTPUT_TOOL and not error for name, _, _, error in results)


# --- choosing calls ------------------------------------------------------------------------------


def _words(text: str) -> set[str]:
    words = set()
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in _STOPWORDS or len(word) < 3:
            continue
        words.add(word[:-1] if word.endswith("s") and len(word) > 4 else word)
    return words


def _places(prompt: str) -> list[str]:
    places: list[str] = []
    for match in _PLACE_RE.finditer(prompt):
        words = match.group(0).split()
        while words and words[0] in _SENTENCE_STARTERS:
            words = words[1:]
        sentence_start = match.start() == 0 or prompt[: match.start()].rstrip()[-1:] in ".!?"
        if sentence_start and len(words) == 1 and words[0].lower() not in _KNOWN_PLACES:
            continue  # "Weather in Paris?": a capital at the start of a sentence is not a name
        while words and words[-1] in ("de", "del", "da", "do"):
            words = words[:-1]
        name = " ".join(words)
        if name and name not in places and name.upper() != "UTC" and not _IANA_RE.fullmatch(name):
            places.append(name)
    return places


def _topic_words(prompt: str) -> set[str]:
    words = _words(prompt)
    for topic, related in _SYNONYMS.items():
        if words & set(related):
            words.add(topic)
    return words


def _plan_calls(prompt: str, tools: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The calls a sensible model would make: tools named after the topic of the prompt (or, failing
    that, tools whose input the prompt spells out, like an arithmetic expression or a URL)."""
    prompt_words = _topic_words(prompt)
    strong: list[tuple[str, dict[str, Any]]] = []
    specific: list[tuple[str, dict[str, Any]]] = []
    for definition in tools:
        name = definition["name"]
        name_overlap = len(prompt_words & _words(name.replace("_", " ")))
        description_overlap = len(prompt_words & _words(str(definition.get("description", ""))))
        filled = _fill_from_prompt(definition.get("input_schema") or {}, prompt)
        if filled is None:
            continue
        inputs, exact = filled
        if name_overlap or description_overlap >= 2:
            strong.extend((name, item) for item in inputs)
        elif exact:
            specific.extend((name, item) for item in inputs)
    return strong or specific


def _fill_from_prompt(schema: Mapping[str, Any], prompt: str) -> tuple[list[dict[str, Any]], bool] | None:
    """Inputs for one tool from the prompt: a list (one per place when the tool takes a place), and
    whether a parameter was filled by a specific extractor (an expression, a URL, a time zone...)."""
    properties: Mapping[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    base: dict[str, Any] = {}
    place_param: str | None = None
    specific = False
    numbers = list(_NUMBER_RE.findall(prompt))
    places = _places(_IANA_RE.sub(" ", prompt))
    for param, prop in properties.items():
        kind = _type_of(prop)
        lname = param.lower()
        value: Any = None
        if "enum" in prop or "const" in prop:
            options = prop.get("enum") or [prop.get("const")]
            value = next((o for o in options if isinstance(o, str) and o.lower() in prompt.lower()), None)
        elif kind == "string":
            if any(p in lname for p in _PLACE_PARAMS):
                if places:
                    place_param = param
                    continue
            elif "expression" in lname or "math" in str(prop.get("description", "")).lower():
                value = _expression(prompt)
                specific = specific or value is not None
            elif "url" in lname:
                match = _URL_RE.search(prompt)
                value = match.group(0).rstrip(".,);") if match else None
                specific = specific or value is not None
            elif "zone" in lname or lname in ("tz", "from_tz", "to_tz"):
                value = _zone(prompt, lname)
                specific = specific or bool(_IANA_RE.search(prompt))
            elif lname in ("time", "when", "datetime"):
                match = _TIME_RE.search(prompt)
                value = match.group(0) if match else None
            elif lname in ("query", "text", "search", "pattern", "q"):
                match = _QUOTED_RE.search(prompt)
                value = match.group(1) if match else None
            elif "path" in lname or "file" in lname:
                match = re.search(r"[\w./-]+\.\w{1,5}\b", prompt)
                value = match.group(0) if match else None
            elif param in required:  # any other required text: what the prompt puts in quotes
                match = _QUOTED_RE.search(prompt)
                value = match.group(1) if match else None
        elif kind in ("integer", "number") and numbers and param in required:
            raw = numbers.pop(0)
            value = int(float(raw)) if kind == "integer" else float(raw)
        if value is not None:
            base[param] = value
        elif param in required:
            return None
    if place_param is not None:
        return [{**base, place_param: place} for place in places], specific
    return [base], specific


def _type_of(prop: Mapping[str, Any]) -> str | None:
    kind = prop.get("type")
    if isinstance(kind, str):
        return kind
    for option in prop.get("anyOf") or []:
        if isinstance(option, dict) and option.get("type") not in (None, "null"):
            return str(option.get("type"))
    return None


def _expression(prompt: str) -> str | None:
    candidates = [m.group(0).strip() for m in _EXPR_RE.finditer(prompt)]
    candidates += [m.group(0) for m in _FUNC_EXPR_RE.finditer(prompt)]
    candidates = [c for c in candidates if any(ch.isdigit() for ch in c)]
    return max(candidates, key=len) if candidates else None


def _zone(prompt: str, param: str) -> str | None:
    zones = [m.group(0) for m in _IANA_RE.finditer(prompt)]
    for place in _places(_IANA_RE.sub(" ", prompt)):
        zone = _ZONES.get(place.lower())
        if zone:
            zones.append(zone)
    if not zones:
        return None
    if param.startswith("to") and len(zones) > 1:
        return zones[1]
    return zones[0]


# --- answering -----------------------------------------------------------------------------------


def _answer(
    prompt: str, results: list[tuple[str, dict[str, Any], str, bool]] | None, tools: list[Any]
) -> str:
    if not results:
        if not tools:
            return (
                f"Offline demo model here. You said: “{_short(prompt, 120)}”. "
                "Set ANTHROPIC_API_KEY to talk to Claude."
            )
        names = ", ".join(t["name"] for t in tools)
        return (
            "I'm the offline demo model, so I can only answer with tools, and none of them "
            f"({names}) fits “{_short(prompt, 120)}”. Set ANTHROPIC_API_KEY to talk to Claude."
        )
    sentences = []
    weather: list[dict[str, Any]] = []
    for name, inputs, text, error in results:
        if name == _OUTPUT_TOOL:
            continue
        if error:
            sentences.append(f"I couldn't use {name}{_args(inputs)}: {_short(text, 160)}")
            continue
        data = _json(text)
        if isinstance(data, dict) and "temperature" in data and ("condition" in data or "weather" in data):
            weather.append(data)
            sentences.append(_weather_sentence(data))
        elif isinstance(data, dict):
            facts = ", ".join(f"{k}: {_short(str(v), 40)}" for k, v in list(data.items())[:6])
            sentences.append(f"{name}{_args(inputs)} gave {facts}.")
        elif "calc" in name and len(inputs) == 1:
            sentences.append(f"{next(iter(inputs.values()))} = {_short(text, 200)}.")
        else:
            sentences.append(f"{name}{_args(inputs)} gave {_short(text, 200)}.")
    answer = " ".join(sentences) or "Done."
    if weather and re.search(r"suggest|travel|trip|visit|wear|pack|plan", prompt, re.IGNORECASE):
        answer += " " + _suggestion(weather[0])
    return answer


def _weather_sentence(data: Mapping[str, Any]) -> str:
    city = data.get("city") or data.get("location") or "there"
    unit = data.get("units") or data.get("unit") or "celsius"
    symbol = "°F" if str(unit).lower().startswith("f") else "°C"
    condition = data.get("condition") or data.get("weather")
    return f"In {city} it is {data['temperature']}{symbol}, {condition}."


def _suggestion(data: Mapping[str, Any]) -> str:
    temperature = data.get("temperature")
    celsius = float(temperature) if isinstance(temperature, int | float) else 20.0
    if str(data.get("units", "celsius")).lower().startswith("f"):
        celsius = (celsius - 32) * 5 / 9
    condition = str(data.get("condition", "")).lower()
    city = data.get("city", "the city")
    if any(w in condition for w in ("rain", "drizzle", "shower", "thunder")):
        return (
            f"Travel tip: pack an umbrella and plan some indoor stops — {city}'s museums and cafés are ideal."
        )
    if "snow" in condition or celsius < 5:
        return f"Travel tip: bring a warm coat and gloves, and warm up between sights in {city}."
    if celsius > 28:
        return f"Travel tip: explore {city} early or late, carry water, and rest indoors at midday."
    return f"Travel tip: it's a good day to explore {city} on foot — wear comfortable shoes."


def _fill_output(
    schema: Mapping[str, Any], prompt: str, results: Iterable[tuple[str, dict[str, Any], str, bool]]
) -> dict[str, Any]:
    """Structured output from what the tools returned, matching keys by name."""
    facts: dict[str, Any] = {}
    weather: dict[str, Any] | None = None
    for _, inputs, text, error in results:
        if error:
            continue
        facts.update(inputs)
        data = _json(text)
        if isinstance(data, dict):
            facts.update(data)
            if "temperature" in data:
                weather = weather or data
    if weather is not None:
        facts.setdefault("suggestion", _suggestion(weather))
        facts.setdefault("summary", _weather_sentence(weather))
    places = _places(prompt)
    if places:
        facts.setdefault("city", places[0])
    return _fill_object(schema, facts, schema)


def _fill_object(
    schema: Mapping[str, Any], facts: Mapping[str, Any], root: Mapping[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    properties: Mapping[str, Any] = schema.get("properties") or {}
    for name, prop in properties.items():
        value = _lookup(name, facts)
        if value is None:
            value = example_value(prop, root, name)
        elif _type_of(prop) == "string" and not isinstance(value, str):
            value = str(value)
        elif _type_of(prop) in ("number", "integer") and isinstance(value, str):
            value = example_value(prop, root, name)
        out[name] = value
    return out


def _lookup(name: str, facts: Mapping[str, Any]) -> Any:
    if name in facts:
        return facts[name]
    lname = name.lower()
    for key, value in facts.items():
        k = key.lower()
        if lname.startswith(k) or k.startswith(lname) or (len(k) > 3 and k in lname):
            return value
    return None


# --- schema-driven examples ----------------------------------------------------------------------


def example_input(schema: Mapping[str, Any], prompt: str = "") -> dict[str, Any]:
    """A valid input for a tool's ``input_schema`` (prompt-derived where possible, else examples)."""
    filled = _fill_from_prompt(schema, prompt) if prompt else None
    base = filled[0][0] if filled else {}
    example = _fill_object(schema, {}, schema)
    required = set(schema.get("required") or [])
    return {k: v for k, v in {**example, **base}.items() if k in required or k in base}


def example_value(prop: Mapping[str, Any], root: Mapping[str, Any], name: str = "") -> Any:
    """An example value satisfying a (simple) JSON schema: enums, consts, defaults, bounds, nesting."""
    ref = prop.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = (root.get("$defs") or {}).get(ref.split("/")[-1], {})
        return example_value(target, root, name)
    if "const" in prop:
        return prop["const"]
    if prop.get("enum"):
        return prop["enum"][0]
    if "default" in prop:
        return prop["default"]
    for key in ("anyOf", "oneOf"):
        options = [o for o in prop.get(key) or [] if isinstance(o, dict) and o.get("type") != "null"]
        if options:
            return example_value(options[0], root, name)
    kind = _type_of(prop)
    if kind == "string":
        fmt = prop.get("format")
        if fmt == "date-time":
            return "2026-01-01T12:00:00Z"
        if fmt == "date":
            return "2026-01-01"
        if fmt == "uuid":
            return "00000000-0000-4000-8000-000000000000"
        text = "Tokyo" if any(p in name.lower() for p in _PLACE_PARAMS) else "example"
        minimum = int(prop.get("minLength", 0))
        return text + "x" * max(0, minimum - len(text))
    if kind == "integer":
        return int(
            prop.get("minimum", prop.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in prop else 1)
        )
    if kind == "number":
        return float(prop.get("minimum", 1.0))
    if kind == "boolean":
        return False
    if kind == "array":
        items = prop.get("items")
        count = int(prop.get("minItems", 1))
        return [example_value(items, root, name) for _ in range(count)] if isinstance(items, dict) else []
    if kind == "object":
        return _fill_object(prop, {}, root)
    return "example"


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _args(inputs: Mapping[str, Any]) -> str:
    if not inputs:
        return ""
    return "(" + ", ".join(f"{k}={_short(str(v), 40)}" for k, v in inputs.items()) + ")"


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
