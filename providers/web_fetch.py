"""Reading a web page for the ``web_fetch`` tool: the page a model asked for, as title and text.

    read_page(url, *, max_chars=None) -> WebPage    the page through providers.outbound, each hop
                                                     allowed by its site's robots.txt; trafilatura's
                                                     main-content extraction, cut to a budget
    forget_robots()                                  empties the per-site robots.txt cache

The URL comes from a model that read a client's prompt, so it is a client's URL: every byte is
read by outbound.fetch (https only, public addresses on every hop, size and time caps), and every
failure is an outbound.UrlRefused naming its rule (a 400 the client caused: never retried, no
verdict on a breaker). Rules added here: ``robots``, ``content`` (not a page), ``unreadable``.

robots.txt is read as RFC 9309 says: no file (a 4xx, or too many redirects) allows everything; a
file that cannot be read (a 5xx, a timeout, a dropped connection) forbids everything. The product
token is Tollgate-fetch, the one outbound.fetch sends as its User-Agent. Every hop is checked
before it is requested (a redirect to another site answers to that site's rules), and the rules
are cached per site (scheme, host, port) for ROBOTS_TTL_SECONDS, so a tool loop reading several
pages of one site asks once.
"""

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import trafilatura
from django.conf import settings

from providers import outbound
from providers.outbound import UrlRefused

ROBOTS_AGENT = "Tollgate-fetch"  # the product token of outbound.fetch's User-Agent, Tollgate-fetch/1
ROBOTS_TTL_SECONDS = 300.0
UNREADABLE_TTL_SECONDS = 30.0  # a robots.txt that failed is asked again sooner
ROBOTS_CACHE_SITES = 1024
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks a crawler to read at least 500 KiB of it
PAGE_MAX_BYTES = 5 * 1024 * 1024  # under OUTBOUND_MAX_BYTES, which is sized for media
HTML_TYPES = {"text/html", "application/xhtml+xml"}
UNDECLARED = {"application/octet-stream", ""}  # aiohttp's name for a missing Content-Type
TEXT_TYPES = {"text/plain", "text/markdown"}
NOT_THERE = frozenset(range(400, 500))

Site = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class WebPage:
    url: str  # as the model asked for it
    final_url: str  # after redirects: the one to cite
    title: str  # "" when the page has none
    text: str  # the readable text, at most the budget
    truncated: bool  # the text was cut at the budget


@dataclass(frozen=True, slots=True)
class RobotsRules:
    parser: RobotFileParser
    unreadable: str | None  # why robots.txt could not be read (then nothing is allowed)
    expires: float


TITLE_MAX_CHARS = 300
URL_MAX_CHARS = 2_000
_robots: dict[Site, RobotsRules] = {}
clock = time.monotonic


async def read_page(url: str, *, max_chars: int | None = None) -> WebPage:
    """The readable text and title of the page at ``url``, cut to ``max_chars`` (default
    WEB_FETCH_MAX_CHARS); UrlRefused when the policy, robots.txt or the page refuse it."""
    budget = max_chars or settings.WEB_FETCH_MAX_CHARS
    outbound.parts_of(url)  # an http(s) URL only: outbound.fetch would also decode a data: URL
    fetched = await outbound.fetch(url, max_bytes=min(settings.OUTBOUND_MAX_BYTES, PAGE_MAX_BYTES),
                                   before_hop=check_robots)
    title, text = await asyncio.to_thread(extract, fetched)  # lxml parsing: CPU, off the loop
    clipped, truncated = truncate(text, budget)
    # The title and the final URL (a redirect's) are bounded too: what the model reads of a page,
    # and what admission reserved for it, is the text's budget and a little more.
    return WebPage(url=url, final_url=fetched.url[:URL_MAX_CHARS], title=truncate(title, TITLE_MAX_CHARS)[0],
                   text=clipped, truncated=truncated)


async def check_robots(url: str) -> None:
    """Before each hop of a page's fetch (outbound.fetch's before_hop): UrlRefused when the site's
    robots.txt does not allow the URL or could not be read."""
    site = outbound.parts_of(url)
    rules = cached_robots(site) or await load_robots(url, site)
    if rules.unreadable:
        raise UrlRefused("robots", f"The robots.txt of {site[1]} could not be read ({rules.unreadable}), so the "
                         "gateway reads none of its pages; try again later.")
    if not rules.parser.can_fetch(ROBOTS_AGENT, url):
        raise UrlRefused("robots", f"The robots.txt of {site[1]} does not allow reading {url[:200]}; the gateway "
                         "honours it.")


def cached_robots(site: Site) -> RobotsRules | None:
    rules = _robots.get(site)
    return rules if rules is not None and rules.expires > clock() else None


async def load_robots(url: str, site: Site) -> RobotsRules:
    robots_url = urlunsplit((*urlsplit(url)[:2], "/robots.txt", "", ""))
    parser, unreadable = RobotFileParser(robots_url), None
    try:
        fetched = await outbound.fetch(robots_url, max_bytes=min(settings.OUTBOUND_MAX_BYTES, ROBOTS_MAX_BYTES))
    except UrlRefused as exc:
        if exc.rule == "redirects" or exc.upstream_status in NOT_THERE:
            parser.allow_all = True
        else:
            parser.disallow_all, unreadable = True, exc.message
    else:
        parser.parse(fetched.content.decode("utf-8", "replace").splitlines())
    rules = RobotsRules(parser, unreadable, clock() + (UNREADABLE_TTL_SECONDS if unreadable else ROBOTS_TTL_SECONDS))
    remember_robots(site, rules)
    return rules


def remember_robots(site: Site, rules: RobotsRules) -> None:
    _robots.pop(site, None)
    _robots[site] = rules
    if len(_robots) > ROBOTS_CACHE_SITES:
        for stale in [key for key, kept in _robots.items() if kept.expires <= clock()]:
            del _robots[stale]
        while len(_robots) > ROBOTS_CACHE_SITES:
            del _robots[next(iter(_robots))]  # the oldest


def forget_robots() -> None:
    _robots.clear()


def extract(fetched: outbound.Fetched) -> tuple[str, str]:
    """(title, readable text) of a fetched page; UrlRefused when it is not a page or has no text."""
    kind = fetched.content_type.lower()
    if kind in TEXT_TYPES:
        title, text = "", fetched.content.decode("utf-8", "replace")
    elif kind in HTML_TYPES or (kind in UNDECLARED and looks_like_html(fetched.content)):
        document = trafilatura.bare_extraction(fetched.content, url=fetched.url, with_metadata=True,
                                               include_comments=False, include_tables=True)
        title = (document.title if document is not None else None) or ""
        # trafilatura finds no main content in a very short page; all its text is the page then.
        text = (document.text if document is not None else None) or trafilatura.html2txt(fetched.content)
    else:
        raise UrlRefused("content", f"{fetched.url[:200]} is {kind}, not a web page; web_fetch reads HTML and "
                         "plain text.")
    if not text.strip():
        raise UrlRefused("unreadable", f"{fetched.url[:200]} has no readable text.")
    return title.strip(), text.strip()


def looks_like_html(content: bytes) -> bool:
    start = content[:1024].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html")) or b"<head" in start


def truncate(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` characters, at a word boundary when one is near."""
    if len(text) <= limit:
        return text, False
    cut = text[:limit]
    boundary = max(cut.rfind(" "), cut.rfind("\n"))
    if boundary > limit * 0.8:
        cut = cut[:boundary]
    return cut.rstrip(), True
