"""The Markdown report: the throughput/latency table, the verdict, memory and health checks.

Added latency is the target's percentile minus the direct call's at the same mode and
concurrency, measured minutes apart in the same run: a difference of percentiles, not a
percentile of differences, which is what a client of the gateway actually experiences.
"""

from dataclasses import dataclass, field
from importlib import metadata

from bench.load import CellResult, HoldResult

DIRECT = "direct"
BARE = "bare proxy"
# The targets of the hot-path issue (16); CPU per request against the bare proxy is bench/cpu.py's.
RATIO_TARGET = 0.30  # gateway req/s over bare proxy req/s, concurrency 16, non-streamed
ADDED_P50_TARGET_MS = 1.0  # gateway p50 over direct, concurrency 1, non-streamed
VERSIONS_OF = ("django", "granian", "uvicorn", "daphne", "aiohttp", "httpx", "httpx-aiohttp")


@dataclass
class MemoryHold:
    """Gateway RSS around holding many streams open (KiB, all of the server's processes)."""

    variant: str
    before_kib: int
    during_kib: int
    after_kib: int
    threads: tuple[int, int, int]  # OS threads before, during, after
    hold: HoldResult
    note: str = ""


@dataclass
class Report:
    started_utc: str
    machine: dict[str, str]
    duration: float
    warmup: float
    primary: str  # the gateway variant measured in every cell
    cells: list[CellResult] = field(default_factory=list)
    rss_after_runs: dict[str, dict[int, int]] = field(default_factory=dict)  # variant -> pid -> KiB
    memory: MemoryHold | None = None
    usage_records: dict[str, tuple[int, int]] = field(default_factory=dict)  # variant -> (records, sent)
    log_alarms: dict[str, dict[str, int]] = field(default_factory=dict)  # service -> alarm -> count
    notes: list[str] = field(default_factory=list)

    def cell(self, target: str, *, stream: bool, concurrency: int) -> CellResult | None:
        for cell in self.cells:
            if (cell.target, cell.stream, cell.concurrency) == (target, stream, concurrency):
                return cell
        return None


def package_versions() -> str:
    found = []
    for name in VERSIONS_OF:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def ms(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def describe_errors(cell: CellResult) -> str:
    if not cell.errors:
        return "0"
    detail = ", ".join(f"{label} ×{count}" for label, count in cell.errors.most_common())
    return f"**{cell.error_count}** ({detail})"


def added(report: Report, cell: CellResult, fraction: float) -> float | None:
    direct = report.cell(DIRECT, stream=cell.stream, concurrency=cell.concurrency)
    mine = cell.percentile_ms(fraction)
    if cell.target == DIRECT or direct is None or mine is None or direct.percentile_ms(fraction) is None:
        return None
    return mine - direct.percentile_ms(fraction)


def render_table(report: Report) -> list[str]:
    lines = ["| target | mode | conc. | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    ordered = sorted(report.cells, key=lambda c: (c.stream, c.concurrency, target_rank(report, c.target)))
    for cell in ordered:
        lines.append(
            f"| {cell.target} | {'stream' if cell.stream else 'json'} | {cell.concurrency} "
            f"| {cell.requests_per_second:.0f} | {ms(cell.percentile_ms(0.50))} | {ms(cell.percentile_ms(0.99))} "
            f"| {ms(added(report, cell, 0.50), signed=True)} | {ms(added(report, cell, 0.99), signed=True)} "
            f"| {describe_errors(cell)} |"
        )
    return lines


def target_rank(report: Report, target: str) -> tuple[int, str]:
    if target == DIRECT:
        return (0, "")
    if target == BARE:
        return (1, "")
    return (2 if target.endswith(report.primary) else 3, target)


def gateway_name(variant: str) -> str:
    return f"gateway {variant}"


def render_verdict(report: Report) -> list[str]:
    gateway = gateway_name(report.primary)
    lines = []
    bare = report.cell(BARE, stream=False, concurrency=16)
    mine = report.cell(gateway, stream=False, concurrency=16)
    if bare and mine and bare.requests_per_second:
        ratio = mine.requests_per_second / bare.requests_per_second
        verdict = "meets" if ratio >= RATIO_TARGET else "MISSES"
        lines.append(f"- Throughput: {gateway} ÷ bare proxy at concurrency 16, non-streamed = "
                     f"{mine.requests_per_second:.0f} / {bare.requests_per_second:.0f} = **{ratio:.2f}** "
                     f"({verdict} the target ≥ {RATIO_TARGET:.2f}).")
    single = report.cell(gateway, stream=False, concurrency=1)
    extra = added(report, single, 0.50) if single else None
    if extra is not None:
        verdict = "meets" if extra <= ADDED_P50_TARGET_MS else "MISSES"
        lines.append(f"- Latency: {gateway} adds **{extra:.2f} ms** at p50 over direct at concurrency 1, "
                     f"non-streamed ({verdict} the target ≤ {ADDED_P50_TARGET_MS:g} ms).")
    contenders = [c for c in report.cells if c.target.startswith("gateway ") and not c.stream and c.concurrency == 16]
    if contenders:
        best = max(contenders, key=lambda c: c.requests_per_second)
        ranking = ", ".join(f"{c.target.removeprefix('gateway ')} {c.requests_per_second:.0f}"
                            + (f" ({c.error_count} errors)" if c.errors else "")
                            for c in sorted(contenders, key=lambda c: -c.requests_per_second))
        lines.append(f"- Fastest server/transport (non-streamed, concurrency 16): "
                     f"**{best.target.removeprefix('gateway ')}**; req/s: {ranking}.")
    failing = [c for c in report.cells if c.errors]
    if failing:
        lines.append(f"- **Errors in {len(failing)} cell(s)**: see the errors column.")
    else:
        lines.append("- No request failed in any cell.")
    return lines


def render_memory(report: Report) -> list[str]:
    lines = ["## Memory (VmRSS of the gateway, all of its processes)", ""]
    for variant, sizes in report.rss_after_runs.items():
        parts = " + ".join(mib(kib) for kib in sizes.values())
        lines.append(f"- {variant}, after its runs: **{mib(sum(sizes.values()))}**"
                     + (f" ({parts}: {len(sizes)} processes)" if len(sizes) > 1 else ""))
    hold = report.memory
    if hold is not None:
        held = hold.hold
        lines.append(f"- {hold.variant}, {held.wanted} streams held open: before **{mib(hold.before_kib)}**, "
                     f"with {held.opened} open **{mib(hold.during_kib)}** "
                     f"(+{(hold.during_kib - hold.before_kib) / max(held.opened, 1):.0f} KiB per stream), "
                     f"after closing them **{mib(hold.after_kib)}**. "
                     f"OS threads {hold.threads[0]} / {hold.threads[1]} / {hold.threads[2]}. "
                     f"Opened {held.opened}/{held.wanted} in {held.seconds_to_open:.1f} s"
                     + (f"; errors: {dict(held.errors)}" if held.errors else "") + ".")
        if hold.note:
            lines.append(f"  {hold.note}")
    return lines


def render_health(report: Report) -> list[str]:
    lines = ["## Health checks", ""]
    for variant, (records, sent) in report.usage_records.items():
        flag = "" if records == sent else " **(mismatch)**"
        lines.append(f"- {variant}: {records} usage records for {sent} chat requests sent{flag}.")
    for service, alarms in report.log_alarms.items():
        found = ", ".join(f"'{alarm}' ×{count}" for alarm, count in alarms.items())
        lines.append(f"- log of {service}: " + (f"**{found}**" if found else "clean"))
    lines.extend(f"- {note}" for note in report.notes)
    lines.append("- Server logs of this run: bench/results/logs/.")
    return lines


def render(report: Report) -> str:
    facts = ", ".join(f"{name} {value}" for name, value in report.machine.items())
    lines = [
        "# Tollgate benchmark",
        "",
        f"{report.started_utc} UTC; {facts}; {package_versions()}.",
        f"Each cell: {report.warmup:g} s warm-up, then {report.duration:g} s of closed-loop workers; "
        "latency is the full response (every SSE event for streams); added = target minus direct, "
        "same mode and concurrency.",
        "",
        "## Verdict",
        "",
        *render_verdict(report),
        "",
        "## Throughput and latency",
        "",
        *render_table(report),
        "",
        *render_memory(report),
        "",
        *render_health(report),
    ]
    return "\n".join(lines) + "\n"
