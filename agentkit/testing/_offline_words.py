"""The offline model's vocabulary: stopwords, sentence starters, the patterns it reads prompts with
(places, expressions, URLs, time zones, numbers, quotes, times), known places and their zones, synonyms."""

from __future__ import annotations

import re

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "get",
        "give",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "please",
        "show",
        "tell",
        "than",
        "that",
        "the",
        "then",
        "this",
        "to",
        "use",
        "was",
        "what",
        "whats",
        "what's",
        "when",
        "where",
        "which",
        "who",
        "will",
        "with",
        "would",
        "you",
        "your",
        "current",
        "now",
        "today",
        "check",
        "find",
        "look",
        "provide",
        "one",
        "sentence",
        "suggestion",
        "also",
        "some",
        "any",
        "there",
        "right",
        "like",
        "should",
    ]
)
_SENTENCE_STARTERS = frozenset(
    [
        "What",
        "What's",
        "Whats",
        "Check",
        "Tell",
        "Please",
        "How",
        "Is",
        "Are",
        "Can",
        "Could",
        "Would",
        "Give",
        "Show",
        "Get",
        "The",
        "I",
        "Compare",
        "Find",
        "Calculate",
        "Convert",
        "Also",
        "And",
        "Then",
        "Hi",
        "Hello",
        "Thanks",
        "Do",
        "Does",
        "Should",
        "Will",
        "It",
        "Use",
        "Look",
        "Fetch",
        "Read",
        "List",
        "Search",
        "Me",
        "My",
        "Now",
        "Today",
        "If",
        "Let",
        "Plan",
        "Provide",
        "Suggest",
        "Which",
        "When",
        "Where",
        "Who",
        "Why",
        "Summarize",
        "Explain",
        "Help",
    ]
)
_PLACE_RE = re.compile(
    r"\b[A-Z][a-zA-Z\u00C0-\u024F'-]+(?:\s+(?:[A-Z][a-zA-Z\u00C0-\u024F'-]+|de|del|da|do))*"
)
_EXPR_RE = re.compile(
    r"(?:(?:sqrt|sin|cos|tan|log|log10|exp|abs|round|floor|ceil|factorial)\s*\()?"
    r"[-(]*\d[\d.]*(?:\s*(?:\*\*|[-+*/^%])\s*[-(]*(?:(?:sqrt|sin|cos|tan|log|exp|abs|factorial)\s*\()?\d[\d.]*\)*)+\)*"
)
_FUNC_EXPR_RE = re.compile(r"\b(?:sqrt|factorial|log10|log|sin|cos|tan|exp|abs)\s*\(\s*[\d.]+\s*\)")
_URL_RE = re.compile(r"https?://[^\s'\"<>]+")
_IANA_RE = re.compile(
    r"\b(?:Africa|America|Antarctica|Asia|Atlantic|Australia|Europe|Indian|Pacific)/[A-Za-z_]+\b|\bUTC\b"
)
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED_RE = re.compile(r"[\"“']([^\"”']{1,200})[\"”']")
_TIME_RE = re.compile(r"\b\d{1,2}:\d{2}(?:\s*[ap]m)?\b", re.IGNORECASE)
_ZONES = {
    "tokyo": "Asia/Tokyo",
    "paris": "Europe/Paris",
    "london": "Europe/London",
    "berlin": "Europe/Berlin",
    "new york": "America/New_York",
    "los angeles": "America/Los_Angeles",
    "sydney": "Australia/Sydney",
    "madrid": "Europe/Madrid",
    "rome": "Europe/Rome",
    "moscow": "Europe/Moscow",
    "cairo": "Africa/Cairo",
    "singapore": "Asia/Singapore",
    "dubai": "Asia/Dubai",
    "mumbai": "Asia/Kolkata",
    "chicago": "America/Chicago",
    "toronto": "America/Toronto",
    "lima": "America/Lima",
    "oslo": "Europe/Oslo",
    "nairobi": "Africa/Nairobi",
}
_KNOWN_PLACES = frozenset(_ZONES) | {"paris", "tokyo", "london", "berlin", "sydney", "lima", "oslo"}
_PLACE_PARAMS = ("city", "location", "place", "town", "country", "destination", "region")
_SYNONYMS = {
    "weather": ("temperature", "forecast", "rain", "sunny", "cold", "hot", "umbrella", "wind", "degrees"),
    "time": ("clock", "hour", "date", "timezone"),
    "calculate": ("compute", "sum", "plus", "times", "multiply", "divide", "math", "minus"),
    "fetch": ("url", "download", "page", "website"),
    "file": ("read", "folder", "directory"),
}
