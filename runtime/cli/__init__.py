"""The headless command line: ``holdfast <command>``, on Typer. Never imports ``app``.

- ``main``: the root command, the global options, :func:`~runtime.cli.main.run` (exit codes,
  one-line usage errors). ``app.main`` calls ``run(argv, open_ui=...)`` so that ``holdfast``
  with no command opens the chat; ``runtime.cli.main.main`` is the same without the chat.
- ``base``: what every command shares: exit codes, :class:`~runtime.cli.base.GlobalOptions`,
  ``load(ctx)`` (the configuration with the flags applied), ``with_runtime(ctx, body)``,
  ``usage_error``, ``write_json``.
- One module per command or group: ``chat``, ``conversations``, ``memory``, ``health``,
  ``tools``, ``show_config`` (``holdfast config``), ``doctor``, ``demo`` (``holdfast demo-llm``).

Adding a command, e.g. ``holdfast sessions``:

1. Write ``runtime/cli/sessions.py``. A single command is a function plus ``register``::

       def sessions(ctx: typer.Context) -> int:
           \"\"\"List the user's live sessions.\"\"\"          # the --help text

           async def body(rt: Runtime) -> int:
               for s in await rt.sessions.list(rt.user_id):
                   write_json(s.to_dict())
               return EXIT_OK

           return with_runtime(ctx, body)

       def register(root: typer.Typer) -> None:
           root.command("sessions")(sessions)

   A group is a module-level ``app = typer.Typer(name="sessions", help=...)`` with
   ``@app.command("list")`` functions, and ``register`` calls ``root.add_typer(app)``.
   Arguments and options are ``Annotated[..., typer.Argument(...)]`` / ``typer.Option(...)``
   parameters. Return an exit code from ``runtime.cli.base`` (or call ``usage_error``).
2. Add the module to ``COMMANDS`` in ``runtime/cli/main.py`` (that is the one registration line).

The global options (``--user``, ``--config``, ...) then work on the new command before and
after its arguments, ``--help`` and shell completion cover it, and Ctrl-C exits 130: none of it
is written per command. ``tests/cli/test_console_script.py`` runs ``--help`` on every command
of the tree, so the new one is covered at once.
"""
