"""The Textual chat UI and the ``holdfast`` console entry point (:mod:`app.main`).

The UI talks to the runtime only through :class:`runtime.host.facade.RuntimeFacade` (plus config,
core types and the CLI entry); every subcommand is handed to :mod:`runtime.cli`.
"""
