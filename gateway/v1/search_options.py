"""OpenAI's ways of asking for a web search in Chat Completions, decoded: ``web_search_options``
(its search models) and a ``{"type": "web_search"}`` tool (the Responses API's, accepted here
too). The gateway runs the search itself for any model (gateway.v1.web_search)."""

from typing import Any

from gateway.v1.errors import bad_request
from gateway.v1.json_body import expect
from providers.types import WebSearchOptions

WEB_SEARCH_TOOLS = ("web_search", "web_search_preview")  # the Responses API's names, accepted here too
SEARCH_CONTEXT_SIZES = ("low", "medium", "high")


def decode_search_location(value: Any, param: str) -> str | None:
    """The country of OpenAI's approximate user_location ({"type": "approximate", "approximate":
    {"country": "GB", ...}} in chat completions; flat in the Responses API's tool)."""
    if value is None:
        return None
    expect(value, dict, param, "an object such as {'type': 'approximate', 'approximate': {'country': 'GB'}}")
    place = value.get("approximate", value)
    expect(place, dict, f"{param}.approximate", "an object")
    country = place.get("country")
    if country is None:
        return None
    if not (isinstance(country, str) and len(country) == 2 and country.isalpha()):
        raise bad_request(f"'{param}.country' must be a two-letter ISO country code such as 'GB'.",
                          param=f"{param}.country")
    return country.upper()


def decode_search_context_size(value: Any, param: str) -> str:
    if value is None:
        return "medium"
    if value not in SEARCH_CONTEXT_SIZES:
        raise bad_request(f"'{param}' must be one of {', '.join(SEARCH_CONTEXT_SIZES)}.", param=param)
    return value


def decode_web_search_options(value: Any) -> WebSearchOptions | None:
    """OpenAI's ``web_search_options`` (search models): the gateway searches for any model."""
    if value is None:
        return None
    expect(value, dict, "web_search_options", "an object")
    return WebSearchOptions(
        context_size=decode_search_context_size(value.get("search_context_size"),
                                                "web_search_options.search_context_size"),
        country=decode_search_location(value.get("user_location"), "web_search_options.user_location"))


def decode_web_search_tool(tool: dict, param: str) -> WebSearchOptions:
    """``{"type": "web_search"}`` (or ``web_search_preview``), as the Responses API declares it."""
    return WebSearchOptions(
        context_size=decode_search_context_size(tool.get("search_context_size"), f"{param}.search_context_size"),
        country=decode_search_location(tool.get("user_location"), f"{param}.user_location"))
