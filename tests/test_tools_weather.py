"""tools.weather: Open-Meteo through a MockTransport, the simulated provider, and provider switching."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from agentkit._exceptions import ToolError
from agentkit.tools import weather
from agentkit.tools.weather import (
    OpenMeteoProvider,
    SimulatedWeatherProvider,
    WeatherProvider,
    describe_weather_code,
    get_weather,
    get_weather_provider,
    set_weather_provider,
    use_weather_provider,
)

pytestmark = pytest.mark.anyio

GEOCODE_LONDON = {
    "results": [
        {
            "id": 2643743,
            "name": "London",
            "latitude": 51.50853,
            "longitude": -0.12574,
            "elevation": 25.0,
            "feature_code": "PPLC",
            "country_code": "GB",
            "admin1_id": 6269131,
            "timezone": "Europe/London",
            "population": 8961989,
            "country_id": 2635167,
            "country": "United Kingdom",
            "admin1": "England",
        }
    ],
    "generationtime_ms": 0.61,
}

GEOCODE_PARIS_MANY = {
    "results": [
        {"id": 2988507, "name": "Paris", "latitude": 48.85341, "longitude": 2.3488, "country_code": "FR",
         "country": "France", "admin1": "Île-de-France", "timezone": "Europe/Paris"},
        {"id": 4717560, "name": "Paris", "latitude": 33.66094, "longitude": -95.55551, "country_code": "US",
         "country": "United States", "admin1": "Texas", "timezone": "America/Chicago"},
    ],
    "generationtime_ms": 0.8,
}  # fmt: skip


def forecast(units: str = "celsius") -> dict[str, Any]:
    fahrenheit = units == "fahrenheit"
    return {
        "latitude": 51.5,
        "longitude": -0.120000124,
        "generationtime_ms": 0.04,
        "utc_offset_seconds": 3600,
        "timezone": "Europe/London",
        "timezone_abbreviation": "BST",
        "elevation": 23.0,
        "current_units": {
            "time": "iso8601",
            "interval": "seconds",
            "temperature_2m": "°F" if fahrenheit else "°C",
            "relative_humidity_2m": "%",
            "wind_speed_10m": "mp/h" if fahrenheit else "km/h",
            "weather_code": "wmo code",
        },
        "current": {
            "time": "2025-06-01T14:00",
            "interval": 900,
            "temperature_2m": 64.9 if fahrenheit else 18.3,
            "relative_humidity_2m": 62,
            "wind_speed_10m": 7.0 if fahrenheit else 11.2,
            "weather_code": 61,
        },
    }


Handler = Callable[[httpx2.Request], httpx2.Response]


def open_meteo(geocode: dict[str, Any] | None = None, seen: list[httpx2.Request] | None = None) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if seen is not None:
            seen.append(request)
        if request.url.host == "geocoding-api.open-meteo.com":
            return httpx2.Response(200, json=geocode if geocode is not None else GEOCODE_LONDON)
        if request.url.host == "api.open-meteo.com":
            return httpx2.Response(200, json=forecast(request.url.params["temperature_unit"]))
        return httpx2.Response(404)

    return handler


def provider(handler: Handler) -> OpenMeteoProvider:
    return OpenMeteoProvider(transport=httpx2.MockTransport(handler))


async def test_open_meteo_current_weather() -> None:
    seen: list[httpx2.Request] = []
    with use_weather_provider(provider(open_meteo(seen=seen))):
        result = await get_weather("London")
    assert result["city"] == "London"
    assert result["country"] == "United Kingdom"
    assert result["temperature"] == 18.3
    assert result["units"] == "celsius"
    assert result["condition"] == "light rain"
    assert result["humidity"] == 62
    assert result["wind_speed"] == 11.2
    assert result["wind_speed_unit"] == "km/h"
    geocode, forecast_request = seen
    assert geocode.url.params["name"] == "London"
    assert geocode.url.params["count"] == "1"
    assert forecast_request.url.params["latitude"] == "51.50853"
    assert forecast_request.url.params["temperature_unit"] == "celsius"
    assert set(forecast_request.url.params["current"].split(",")) == {
        "temperature_2m",
        "relative_humidity_2m",
        "wind_speed_10m",
        "weather_code",
    }


async def test_open_meteo_fahrenheit() -> None:
    result = await provider(open_meteo()).current("London", "fahrenheit")
    assert result["temperature"] == 64.9
    assert result["units"] == "fahrenheit"
    assert result["wind_speed_unit"] == "mp/h"


async def test_country_hint_picks_the_right_city() -> None:
    seen: list[httpx2.Request] = []
    result = await provider(open_meteo(GEOCODE_PARIS_MANY, seen)).current("Paris, United States", "celsius")
    assert result["country"] == "United States"
    assert result["region"] == "Texas"
    assert seen[0].url.params["name"] == "Paris"
    first = await provider(open_meteo(GEOCODE_PARIS_MANY)).current("Paris", "celsius")
    assert first["country"] == "France"


async def test_unknown_city_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="No city named 'Atlantis'"):
        await provider(open_meteo({"generationtime_ms": 0.2})).current("Atlantis", "celsius")


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (httpx2.ConnectError("connection refused"), "Could not reach"),
        (httpx2.ReadTimeout("timed out"), "timed out"),
    ],
)
async def test_network_failures_are_tool_errors(failure: Exception, message: str) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise failure

    with pytest.raises(ToolError, match=message):
        await provider(handler).current("London", "celsius")


async def test_http_error_carries_reason() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.host == "geocoding-api.open-meteo.com":
            return httpx2.Response(200, json=GEOCODE_LONDON)
        return httpx2.Response(
            400, json={"error": True, "reason": "Latitude must be in range of -90 to 90°."}
        )

    with pytest.raises(ToolError, match=r"HTTP 400: Latitude must be"):
        await provider(handler).current("London", "celsius")


async def test_invalid_json_and_missing_current_block() -> None:
    def not_json(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, text="<html>maintenance</html>")

    with pytest.raises(ToolError, match="invalid JSON"):
        await provider(not_json).current("London", "celsius")

    def no_current(request: httpx2.Request) -> httpx2.Response:
        if request.url.host == "geocoding-api.open-meteo.com":
            return httpx2.Response(200, json=GEOCODE_LONDON)
        return httpx2.Response(200, json={"latitude": 51.5, "longitude": -0.12})

    with pytest.raises(ToolError, match="no current conditions"):
        await provider(no_current).current("London", "celsius")


@pytest.mark.parametrize("bad", ["", "   ", "12345", "!!!", "x", "DROP TABLE; --", "a" * 101, "<script>"])
async def test_garbage_city_names_refused_before_any_request(bad: str) -> None:
    calls: list[httpx2.Request] = []
    with pytest.raises(ToolError):
        await provider(open_meteo(seen=calls)).current(bad, "celsius")
    with pytest.raises(ToolError):
        await SimulatedWeatherProvider().current(bad, "celsius")
    assert calls == []


async def test_simulated_is_deterministic_and_plausible() -> None:
    sim = SimulatedWeatherProvider()
    tokyo = await sim.current("Tokyo", "celsius")
    assert tokyo == await sim.current("  tokyo ", "celsius")
    assert tokyo["country"] == "Japan"
    assert 10 <= tokyo["temperature"] <= 25
    assert 20 <= tokyo["humidity"] <= 98
    assert tokyo["source"] == "simulated"
    for city, country in [("Paris", "France"), ("London", "United Kingdom"), ("New York", "United States"),
                          ("Sydney", "Australia")]:  # fmt: skip
        result = await sim.current(city, "celsius")
        assert result["country"] == country
        assert -10 <= result["temperature"] <= 35
        assert result["condition"] != "unknown"


async def test_simulated_unknown_city_is_stable_and_converts_units() -> None:
    sim = SimulatedWeatherProvider()
    celsius = await sim.current("Ouagadougou", "celsius")
    fahrenheit = await sim.current("Ouagadougou", "fahrenheit")
    assert celsius["city"] == "Ouagadougou"
    assert celsius["country"] is None
    assert -5 <= celsius["temperature"] <= 30
    assert fahrenheit["temperature"] == pytest.approx(celsius["temperature"] * 9 / 5 + 32, abs=0.11)
    assert fahrenheit["units"] == "fahrenheit"
    assert celsius["condition"] == fahrenheit["condition"]
    # Pinned value: the hash is SHA-256, so this holds in every process (unlike hash()).
    assert celsius == await SimulatedWeatherProvider().current("ouagadougou", "celsius")


async def test_set_use_and_offline_switch_the_provider() -> None:
    original = get_weather_provider()
    assert isinstance(original, OpenMeteoProvider)
    try:
        simulated = weather.offline()
        assert get_weather_provider() is simulated
        assert (await get_weather("Paris"))["source"] == "simulated"
        with use_weather_provider(provider(open_meteo())):
            assert (await get_weather("London"))["source"] == "open-meteo.com"
        assert get_weather_provider() is simulated
    finally:
        set_weather_provider(original)
    assert get_weather_provider() is original


async def test_custom_provider_satisfies_protocol() -> None:
    class Fixed:
        async def current(self, city: str, units: weather.Units) -> dict[str, Any]:
            return {"city": city, "temperature": 1.0, "units": units}

    assert isinstance(Fixed(), WeatherProvider)
    with use_weather_provider(Fixed()):
        assert await get_weather("Oslo", "fahrenheit") == {
            "city": "Oslo",
            "temperature": 1.0,
            "units": "fahrenheit",
        }


async def test_tool_run_turns_errors_into_error_results() -> None:
    with use_weather_provider(SimulatedWeatherProvider()):
        ok = await get_weather.run(
            {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Tokyo"}}
        )
        bad = await get_weather.run(
            {"type": "tool_use", "id": "t2", "name": "get_weather", "input": {"city": "???"}}
        )
        units = await get_weather.run(
            {
                "type": "tool_use",
                "id": "t3",
                "name": "get_weather",
                "input": {"city": "Tokyo", "units": "kelvin"},
            }
        )
    assert not ok.is_error
    assert bad.is_error
    assert units.is_error


def test_schema_and_code_table() -> None:
    schema = get_weather.input_schema
    assert schema["required"] == ["city"]
    assert schema["properties"]["units"]["enum"] == ["celsius", "fahrenheit"]
    assert describe_weather_code(0) == "clear sky"
    assert describe_weather_code(95) == "thunderstorm"
    assert describe_weather_code(1234) == "unknown"
