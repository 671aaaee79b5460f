"""``python -m app``: the ``holdfast`` console entry point."""

from __future__ import annotations

from app.main import main

raise SystemExit(main())
