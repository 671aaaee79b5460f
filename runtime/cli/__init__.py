"""The headless command line: ``holdfast <command>``. Never imports ``app``.

- ``main``: the command tree and exit codes.
- ``commands``: chat, conversations, memory, health, tools.
- ``doctor``: ``holdfast doctor``, a table of checks and a verdict.
"""
