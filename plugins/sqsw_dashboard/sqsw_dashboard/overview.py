"""The overview's rows: each queue's counts, oldest age, dead-letter queue, rates, chart."""

from __future__ import annotations

from dataclasses import dataclass

from sqsw_dashboard.describe import age_text
from sqsw_dashboard.oldest_ages import OldestAge
from sqsw_dashboard.queue_listing import QueueInfo, link_dead_letters
from sqsw_dashboard.sampling import Sample, rates, sparkline

__all__ = ["OverviewRow", "age_notes", "overview_rows"]


@dataclass(frozen=True)
class OverviewRow:
    name: str
    visible: int
    in_flight: int
    delayed: int
    age: str
    age_error: str | None
    dead_letter_queue: str | None
    #: Whether the dead-letter queue has the environment's prefix (it has a page here).
    dead_letter_listed: bool
    dead_letter_depth: int | None
    sources: tuple[str, ...]
    received_rate: str
    completed_rate: str
    chart: str
    error: str | None


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def overview_rows(
    infos: list[QueueInfo],
    ages: dict[str, OldestAge],
    samples: dict[str, list[Sample]],
    *,
    prefix: str = "",
    search: str = "",
) -> list[OverviewRow]:
    """The rows of the queues whose name starts with ``prefix`` and contains ``search``."""
    by_arn = link_dead_letters(infos)
    search = search.strip().lower()
    rows: list[OverviewRow] = []
    for info in infos:
        if not info.name.startswith(prefix) or search not in info.name.lower():
            continue
        dead = by_arn.get(info.dead_letter_arn or "")
        dead_name = dead.name if dead else None
        if dead is None and info.dead_letter_arn:
            dead_name = info.dead_letter_arn.rsplit(":", 1)[-1] + " (outside the prefix)"
        age = ages.get(info.name, OldestAge(None))
        queue_samples = samples.get(info.name, [])
        rate = rates(queue_samples)
        rows.append(
            OverviewRow(
                name=info.name,
                visible=info.visible,
                in_flight=info.in_flight,
                delayed=info.delayed,
                age=age_text(age.seconds, age.error),
                age_error=age.error,
                dead_letter_queue=dead_name,
                dead_letter_listed=dead is not None,
                dead_letter_depth=dead.visible if dead else None,
                sources=tuple(info.sources),
                received_rate=_rate(rate.received),
                completed_rate=_rate(rate.completed),
                chart=sparkline(queue_samples),
                error=info.error,
            )
        )
    return rows


def age_notes(rows: list[OverviewRow]) -> list[str]:
    """One line per reason an oldest age is n/a, with how many queues it concerns."""
    by_reason: dict[str, int] = {}
    for row in rows:
        if row.age_error is not None:
            by_reason[row.age_error] = by_reason.get(row.age_error, 0) + 1
    return [f"Oldest age n/a for {n} queue(s): {reason}" for reason, n in by_reason.items()]
