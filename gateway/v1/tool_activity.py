"""The gateway's own tools in a Chat Completions answer (gateway.serving.tool_loop): the protocol
has no place for them, so each run is shown in the answer's text where it happened, as markdown a
chat client renders, on lines of its own:

    web_fetch          > Read [<title>](<url>)                a url_citation annotation spans the link
                       > Could not read <url>: <why>
    code_interpreter   the code in a python fence, then its output (at most SHOWN_CHARS) in a plain
                       one; > The code could not run: <why>

The answer's own annotations (web search citations) move by the text put before them. Streamed,
a block goes out when its tool is done (its start shows nothing)."""

from dataclasses import replace

from providers.types import WEB_FETCH, ToolRun, UrlCitation

SHOWN_CHARS = 2000


def lead(before: str) -> str:
    """What puts a block on lines of its own after ``before`` (the text so far, or its end)."""
    if not before or before.endswith("\n\n"):
        return ""
    return "\n" if before.endswith("\n") else "\n\n"


def fenced(text: str, language: str = "") -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}{language}\n{text.rstrip()}\n{fence}\n\n"


def block(run: ToolRun, before: str) -> tuple[str, list[UrlCitation]]:
    """The run's block after ``before``, and its citation (offsets within the block)."""
    start = lead(before)
    if run.tool == WEB_FETCH:
        if run.status != "completed":
            return f"{start}> Could not read {run.url or 'the page'}: {run.error}\n\n", []
        title = (run.title or run.url).replace("[", "(").replace("]", ")")
        link = f"[{title}]({run.url})"
        text = f"{start}> Read {link}\n\n"
        begin = len(start) + len("> Read ")
        return text, [UrlCitation(url=run.url, title=run.title or run.url, start_index=begin,
                                  end_index=begin + len(link))]
    text = start + fenced(run.code, "python")
    if run.status != "completed":
        return f"{text}> The code could not run: {run.error}\n\n", []
    logs = run.logs if len(run.logs) <= SHOWN_CHARS else f"{run.logs[:SHOWN_CHARS]}\n[cut for display]"
    return text + (fenced(logs) if logs.strip() else ""), []


def moved(citation: UrlCitation, by: int) -> UrlCitation:
    return replace(citation, start_index=citation.start_index + by, end_index=citation.end_index + by)


def weave(content: str, annotations: list[UrlCitation], runs: list[ToolRun]) -> tuple[str, list[UrlCitation]]:
    """A whole answer's text with each run's block at its offset, and the annotations: the
    answer's own, moved past the blocks before them, and the blocks' citations."""
    text, cited, start = "", [], 0
    shifts: list[tuple[int, int]] = []  # (offset in the answer, characters put there)
    for run in runs:
        text += content[start:run.offset]
        added, citations = block(run, text)
        cited += [moved(citation, len(text)) for citation in citations]
        shifts.append((run.offset, len(added)))
        text, start = text + added, run.offset
    text += content[start:]
    own = [moved(a, sum(size for at, size in shifts if at <= a.start_index)) for a in annotations]
    return text, sorted(own + cited, key=lambda citation: citation.start_index)


class ActivityCounter:
    """A stream's text so far, as much as placing blocks needs: its end, its length, and the
    characters of blocks put in it (which move the answer's own annotations)."""

    def __init__(self) -> None:
        self.tail = ""
        self.length = 0
        self.inserted = 0

    def said(self, text: str) -> None:
        self.tail = (self.tail + text)[-2:]
        self.length += len(text)

    def shown(self, annotations: list[UrlCitation]) -> list[UrlCitation]:
        return [moved(annotation, self.inserted) for annotation in annotations]

    def block(self, run: ToolRun) -> tuple[str, list[UrlCitation]] | None:
        """The block of a run that is done (None for one starting), its citations in the stream's offsets."""
        if run.status == "in_progress":
            return None
        text, citations = block(run, self.tail)
        citations = [moved(citation, self.length) for citation in citations]
        self.said(text)
        self.inserted += len(text)
        return text, citations
