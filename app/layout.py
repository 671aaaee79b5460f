"""Which columns the chat screen shows at a given terminal width: a pure function, :func:`plan`.

The chat column comes first. The side panels (Breakers/Health/Context, :data:`PANELS_WIDTH`
columns) sit beside it only from :data:`WIDE` columns and only if the chat keeps
:data:`MIN_CHAT` columns; otherwise they collapse into the one-line status bar. The sidebar
(:data:`SIDEBAR_WIDTH` columns) is shown when the user wants it and the chat still keeps
:data:`MIN_CHAT` columns. Either can still be opened on demand as an overlay over the chat,
which leaves the chat column's width alone. :func:`welcome_compact` picks the welcome card's
form for the terminal's height.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Terminal columns from which the side panels may sit beside the chat.
WIDE = 110
#: The chat column never gets narrower than this because of a side column (when the terminal
#: is at least MIN_CHAT + 4 wide; below that the chat simply gets everything).
MIN_CHAT = 60
SIDEBAR_WIDTH = 24
PANELS_WIDTH = 36


@dataclass(frozen=True)
class Plan:
    """What to show: the sidebar and panels inline (beside the chat), or the status bar."""

    sidebar: bool
    panels: bool
    status_bar: bool
    #: Columns left for the chat.
    chat_width: int


def plan(width: int, *, want_sidebar: bool, want_panels: bool) -> Plan:
    """The layout for a terminal ``width`` columns wide, given what the user wants shown.

    The status bar shows whenever the panels are not inline (narrow, or hidden by the user), so
    breaker and health states are always on screen.
    """
    panels = want_panels and width >= WIDE and width - PANELS_WIDTH >= MIN_CHAT
    left = width - (PANELS_WIDTH if panels else 0)
    sidebar = want_sidebar and left - SIDEBAR_WIDTH >= MIN_CHAT
    chat = left - (SIDEBAR_WIDTH if sidebar else 0)
    return Plan(sidebar=sidebar, panels=panels, status_bar=not panels, chat_width=chat)


def panels_can_be_inline(width: int) -> bool:
    """True when the panels fit beside the chat at this width (a toggle then changes the saved
    choice; below it, a toggle opens them over the chat for a moment)."""
    return width >= WIDE and width - PANELS_WIDTH >= MIN_CHAT


def sidebar_can_be_inline(width: int, panels_inline: bool) -> bool:
    """True when the sidebar fits beside the chat at this width, given where the panels are."""
    return width - (PANELS_WIDTH if panels_inline else 0) - SIDEBAR_WIDTH >= MIN_CHAT


#: Terminal rows from which the welcome card is shown in full; below, its compact form, which
#: fits the chat column of an 80x24 terminal whole (title, what Holdfast is, the model, the
#: keys and the demo commands, with nothing scrolled out of view).
WELCOME_FULL_HEIGHT = 40


def welcome_compact(height: int) -> bool:
    """True when a terminal ``height`` rows tall gets the compact welcome card."""
    return height < WELCOME_FULL_HEIGHT
