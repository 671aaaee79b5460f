"""The host: the typed :class:`Runtime` wired from a Config, and the chaos actions on it.

- ``runtime``: :class:`Runtime` builds and starts every part (Redis, LLM, memory, tools, agent)
  and stops them in order.
- ``chaos``: kill/start/fault the demo LLM server and other backends for the degradation demo.
- ``alerts``: the alerts of every face (a breaker opening, the journal backlog, recoveries, and
  what a face adds): ``AlertRaised`` events, and webhooks sent once per key across processes.
"""
