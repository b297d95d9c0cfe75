"""The HTML run report: one self-contained file with a run's figures.

Entry point ``report-html``. ``blut runs report RUN`` and ``blut run --report`` write it:
a Gantt chart of attempts coloured by how they ended, memory over time (booked, measured,
available), estimate against peak per attempt, metric curves and every attempt's figures,
as inline SVG in one HTML file that fetches nothing (:mod:`blut_plugins.report.render`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from blut_core import hookimpl

if TYPE_CHECKING:
    from pathlib import Path

    from blut_core import ReportSpec


def render_html(run_dir: Path) -> str:
    """The HTML report of the run in ``run_dir`` (``ReportSpec.render``)."""
    from blut_plugins.report.render import render_run

    return render_run(run_dir)


@hookimpl
def blut_reports() -> Iterator[ReportSpec]:
    """Registration: the ``html`` report."""
    from blut_core import ReportSpec

    yield ReportSpec(name="html", summary="one self-contained HTML file: Gantt chart, memory, "
                                          "estimates against peaks, metrics",
                     suffix=".html", render=render_html)
