"""``blut tui --check``: draw every view headless and say whether each one drew something.

Also the helpers tests use to read a screen back as text (:func:`screen_text`).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from blut_plugins.tui.app import VIEWS, Cockpit, ConfirmCancel

if TYPE_CHECKING:
    from textual.app import App

    from blut_core import App as BlutApp

SIZE = (120, 36)


def screen_text(app: App[Any]) -> str:
    """What the terminal shows now, as plain text (one line per row)."""
    from rich.console import Console

    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(),
                      force_terminal=True, color_system=None, record=True, legacy_windows=False)
    # textual's own export_screenshot renders the same compositor update, as SVG
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


def drawn(text: str) -> bool:
    """Whether a view drew more than the header, the tab bar and the footer."""
    body = [line for line in text.splitlines()[3:-1] if line.strip()]
    return len(body) >= 1


async def check(blut: BlutApp, *, size: tuple[int, int] = SIZE) -> list[tuple[str, bool, str]]:
    """``(view, drew something, its text)`` for every view and the cancel dialog."""
    app = Cockpit(blut, refresh=3600.0)
    out: list[tuple[str, bool, str]] = []
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        for view in VIEWS:
            app.action_view(view)
            await pilot.pause()
            text = screen_text(app)
            out.append((view, drawn(text), text))
        row = app.rows[0] if app.rows else None
        if row is not None:
            await app.push_screen(ConfirmCancel(row, 0))
            await pilot.pause()
            text = screen_text(app)
            out.append(("cancel", "Cancel run" in text, text))
            app.pop_screen()
            await pilot.pause()
    return out
