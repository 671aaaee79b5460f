"""What tests share besides fixtures: helpers imported by test modules (no test imports a conftest).

``clock`` (the one FakeClock and RecordingSleep), ``polling`` (the one ``wait_for``/``wait_until``),
``app`` (Pilot helpers and the app test config), ``state``, ``resilience``, ``host`` and ``context``
(per-layer builders and fakes), ``cli`` (the real console script in a subprocess), and two plugins
registered in ``tests/conftest.py``: ``llm_fixtures`` (demo LLM server fixtures) and ``orphans``
(the end-of-session check that fails a run leaving a redis-server or demo LLM server running).
"""
