"""Weather tool: current conditions for a city.

The data comes from a :class:`WeatherProvider`. The default is :class:`OpenMeteoProvider` (Open-Meteo,
free and keyless: geocoding, then the forecast API's ``current`` block). :class:`SimulatedWeatherProvider`
answers deterministically without a network, for tests, demos and offline mode::

    tools.weather.offline()                       # process-wide: use the simulated provider
    with use_weather_provider(OpenMeteoProvider(transport=mock)):
        await get_weather("Paris")                # this context only
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, Protocol, runtime_checkable

import httpx2

from agentkit._exceptions import ToolError
from agentkit._tool import tool

__all__ = [
    "OpenMeteoProvider",
    "SimulatedWeatherProvider",
    "Units",
    "WeatherProvider",
    "describe_weather_code",
    "get_weather",
    "get_weather_provider",
    "offline",
    "set_weather_provider",
    "use_weather_provider",
]

Units = Literal["celsius", "fahrenheit"]

GEOCODING_URL = "https://geocoding-api.open-meteo.com/v1/search"
FORECAST_URL = "https://api.open-meteo.com/v1/forecast"

# WMO weather interpretation codes, as documented by Open-Meteo.
_WMO_CODES: dict[int, str] = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "moderate drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "light rain",
    63: "moderate rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "light snow",
    73: "moderate snow",
    75: "heavy snow",
    77: "snow grains",
    80: "light rain showers",
    81: "moderate rain showers",
    82: "violent rain showers",
    85: "light snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with light hail",
    99: "thunderstorm with heavy hail",
}

_MAX_CITY_LENGTH = 100
_CITY_PUNCTUATION = set(" -'\u2019.,()")


def describe_weather_code(code: float | None) -> str:
    """The words for a WMO weather code ("light rain"); ``"unknown"`` for codes outside the table."""
    if code is None:
        return "unknown"
    try:
        return _WMO_CODES.get(int(code), "unknown")
    except (ValueError, OverflowError):  # NaN or infinity from a broken answer
        return "unknown"


@runtime_checkable
class WeatherProvider(Protocol):
    """A source of current weather. ``current`` raises ToolError for an unknown city or a failure."""

    async def current(self, city: str, units: Units) -> dict[str, Any]:
        """Current weather for ``city``: the dict :func:`get_weather` returns."""
        ...


def _clean_city(city: str) -> str:
    """Normalise a city name; refuse empty or garbage names with a message the model can act on."""
    if not isinstance(city, str):
        raise ToolError("city must be a string, e.g. 'Paris'.")
    name = " ".join(unicodedata.normalize("NFC", city).split())
    if not name:
        raise ToolError("The city name is empty. Give a city name such as 'Paris' or 'New York'.")
    if len(name) > _MAX_CITY_LENGTH:
        raise ToolError(
            f"The city name is too long (over {_MAX_CITY_LENGTH} characters). Give just the city."
        )
    letters = sum(1 for ch in name if ch.isalpha())
    bad = [
        ch for ch in name if not (ch.isalpha() or ch in _CITY_PUNCTUATION or unicodedata.category(ch) == "Mn")
    ]
    if letters < 2 or bad:
        raise ToolError(
            f"{city!r} does not look like a city name. Use letters only, e.g. 'London' or 'São Paulo' "
            "(a country can follow after a comma: 'Paris, France')."
        )
    return name


class OpenMeteoProvider:
    """Real weather from Open-Meteo (no API key). ``transport`` lets tests use ``httpx2.MockTransport``."""

    def __init__(
        self,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        *,
        language: str = "en",
    ) -> None:
        self._transport = transport
        self._timeout = timeout
        self._language = language

    async def current(self, city: str, units: Units) -> dict[str, Any]:
        name = _clean_city(city)
        # "Paris, France": geocode the city part; the rest is used to prefer a matching country.
        query, _, country_hint = name.partition(",")
        async with httpx2.AsyncClient(
            transport=self._transport,
            timeout=self._timeout,
            headers={"User-Agent": "agentkit-weather-tool"},
        ) as client:
            place = await self._geocode(client, query.strip(), country_hint.strip(), name)
            params: dict[str, str | float] = {
                "latitude": place["latitude"],
                "longitude": place["longitude"],
                "current": "temperature_2m,relative_humidity_2m,wind_speed_10m,weather_code",
                "temperature_unit": units,
                "wind_speed_unit": "mph" if units == "fahrenheit" else "kmh",
                "timezone": "auto",
            }
            data = await self._get_json(client, FORECAST_URL, params, "forecast")
        current = data.get("current")
        if not isinstance(current, dict) or "temperature_2m" not in current:
            raise ToolError("The weather service returned no current conditions; try again later.")
        raw_units = data.get("current_units")
        current_units: dict[str, Any] = raw_units if isinstance(raw_units, dict) else {}
        code = current.get("weather_code")
        return {
            "city": place.get("name", query.strip()),
            "region": place.get("admin1"),
            "country": place.get("country"),
            "latitude": place["latitude"],
            "longitude": place["longitude"],
            "time": current.get("time"),
            "timezone": data.get("timezone"),
            "temperature": current.get("temperature_2m"),
            "units": units,
            "condition": describe_weather_code(code if isinstance(code, int | float) else None),
            "weather_code": code,
            "humidity": current.get("relative_humidity_2m"),
            "wind_speed": current.get("wind_speed_10m"),
            "wind_speed_unit": current_units.get(
                "wind_speed_10m", "mp/h" if units == "fahrenheit" else "km/h"
            ),
            "source": "open-meteo.com",
        }

    async def _geocode(
        self, client: httpx2.AsyncClient, query: str, country_hint: str, original: str
    ) -> dict[str, Any]:
        params: dict[str, str | int] = {
            "name": query,
            "count": 10 if country_hint else 1,
            "language": self._language,
            "format": "json",
        }
        data = await self._get_json(client, GEOCODING_URL, params, "geocoding")
        results = data.get("results")
        if not isinstance(results, list) or not results:
            raise ToolError(
                f"No city named {original!r} was found. Check the spelling or use the English name "
                "(e.g. 'Munich' rather than a nickname)."
            )
        places = [r for r in results if isinstance(r, dict) and "latitude" in r and "longitude" in r]
        if not places:
            raise ToolError("The geocoding service returned an unexpected answer; try again later.")
        if country_hint:
            hint = country_hint.casefold()
            for place in places:
                fields = (place.get("country"), place.get("country_code"), place.get("admin1"))
                if any(isinstance(f, str) and f.casefold() == hint for f in fields):
                    return place
        return places[0]

    async def _get_json(self, client: httpx2.AsyncClient, url: str, params: Any, what: str) -> dict[str, Any]:
        try:
            response = await client.get(url, params=params)
        except httpx2.TimeoutException:
            raise ToolError(f"The weather {what} service timed out; try again in a moment.") from None
        except httpx2.HTTPError as exc:
            raise ToolError(
                f"Could not reach the weather {what} service ({type(exc).__name__}); the network may be "
                "down. Try again later."
            ) from None
        if response.status_code >= 400:
            reason = ""
            try:
                body = response.json()
                if isinstance(body, dict) and isinstance(body.get("reason"), str):
                    reason = f": {body['reason'][:200]}"
            except ValueError:
                pass
            raise ToolError(f"The weather {what} service answered HTTP {response.status_code}{reason}.")
        try:
            data = response.json()
        except ValueError:
            raise ToolError(f"The weather {what} service returned invalid JSON; try again later.") from None
        if not isinstance(data, dict):
            raise ToolError(f"The weather {what} service returned an unexpected answer; try again later.")
        return data


# Plausible baselines for well-known cities: (display name, country, lat, lon, base °C, base humidity).
_KNOWN_CITIES: dict[str, tuple[str, str, float, float, float, int]] = {
    "tokyo": ("Tokyo", "Japan", 35.6895, 139.6917, 17.0, 65),
    "paris": ("Paris", "France", 48.8534, 2.3488, 13.0, 72),
    "london": ("London", "United Kingdom", 51.5085, -0.1257, 12.0, 78),
    "new york": ("New York", "United States", 40.7143, -74.006, 14.0, 63),
    "new york city": ("New York", "United States", 40.7143, -74.006, 14.0, 63),
    "sydney": ("Sydney", "Australia", -33.8678, 151.2073, 19.0, 66),
    "berlin": ("Berlin", "Germany", 52.5244, 13.4105, 11.0, 70),
    "san francisco": ("San Francisco", "United States", 37.7749, -122.4194, 15.0, 75),
    "cairo": ("Cairo", "Egypt", 30.0626, 31.2497, 26.0, 45),
    "reykjavik": ("Reykjavik", "Iceland", 64.1355, -21.8954, 4.0, 80),
    "singapore": ("Singapore", "Singapore", 1.2897, 103.8501, 28.0, 82),
}

_SIMULATED_CODES = (0, 1, 2, 3, 3, 45, 51, 61, 63, 80)


class SimulatedWeatherProvider:
    """Deterministic, offline weather: values derived from a SHA-256 of the city name.

    The same city always gets the same answer (across processes). Well-known cities have plausible
    baselines; any other well-formed name still gets a stable answer; garbage names raise ToolError.
    """

    async def current(self, city: str, units: Units) -> dict[str, Any]:
        name = _clean_city(city)
        query = name.partition(",")[0].strip()
        key = query.casefold()
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        known = _KNOWN_CITIES.get(key)
        if known is not None:
            display, country, lat, lon, base_c, base_humidity = known
            celsius = base_c + (digest[0] % 81 - 40) / 10  # ±4 °C around the baseline
            humidity = min(98, max(20, base_humidity + digest[1] % 21 - 10))
        else:
            display, country = query.title(), None
            lat = round((int.from_bytes(digest[4:8], "big") / 2**32) * 120 - 60, 4)
            lon = round((int.from_bytes(digest[8:12], "big") / 2**32) * 360 - 180, 4)
            celsius = (digest[0] % 351) / 10 - 5  # -5.0 .. 30.0 °C
            humidity = 25 + digest[1] % 71
        code = _SIMULATED_CODES[digest[2] % len(_SIMULATED_CODES)]
        wind_kmh = round((digest[3] % 300) / 10, 1)
        if units == "fahrenheit":
            temperature = round(celsius * 9 / 5 + 32, 1)
            wind, wind_unit = round(wind_kmh / 1.609344, 1), "mp/h"
        else:
            temperature, wind, wind_unit = round(celsius, 1), wind_kmh, "km/h"
        return {
            "city": display,
            "region": None,
            "country": country,
            "latitude": lat,
            "longitude": lon,
            "time": None,
            "timezone": None,
            "temperature": temperature,
            "units": units,
            "condition": describe_weather_code(code),
            "weather_code": code,
            "humidity": humidity,
            "wind_speed": wind,
            "wind_speed_unit": wind_unit,
            "source": "simulated",
        }


_default_provider: WeatherProvider = OpenMeteoProvider()
_context_provider: ContextVar[WeatherProvider | None] = ContextVar("agentkit_weather_provider", default=None)


def get_weather_provider() -> WeatherProvider:
    """The provider :func:`get_weather` uses now (a ``use_weather_provider`` override, else the default)."""
    return _context_provider.get() or _default_provider


def set_weather_provider(provider: WeatherProvider) -> WeatherProvider:
    """Set the process-wide default provider; returns the previous one."""
    global _default_provider
    previous, _default_provider = _default_provider, provider
    return previous


@contextmanager
def use_weather_provider(provider: WeatherProvider) -> Iterator[WeatherProvider]:
    """Use ``provider`` for :func:`get_weather` in this context (tasks started inside inherit it)."""
    token = _context_provider.set(provider)
    try:
        yield provider
    finally:
        _context_provider.reset(token)


def offline() -> SimulatedWeatherProvider:
    """Switch the process-wide default to :class:`SimulatedWeatherProvider` and return it."""
    provider = SimulatedWeatherProvider()
    set_weather_provider(provider)
    return provider


@tool
async def get_weather(city: str, units: Units = "celsius") -> dict[str, Any]:
    """Get the current weather for a city: temperature, condition, humidity and wind speed.

    Args:
        city: City name, optionally followed by a country to disambiguate, e.g. "Paris" or "Paris, France".
        units: Temperature units: "celsius" (wind in km/h) or "fahrenheit" (wind in mph).
    """
    if units not in ("celsius", "fahrenheit"):
        raise ToolError("units must be 'celsius' or 'fahrenheit'.")
    report = await get_weather_provider().current(city, units)
    return {key: value for key, value in report.items() if value is not None}  # no null noise for the model
