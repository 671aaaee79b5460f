"""Per-key rate limits shared by every replica: one Lua script, one round trip per check.

Each limit is a sliding window of one minute, kept as two fixed-window counters (this minute and
the previous one) and counted as ``previous * (1 - elapsed / window) + current`` (the sliding
window counter of Cloudflare's and nginx's limiters): two small keys per bucket instead of a log of
every request, exact at window edges to within the previous window's weighting. Check and
increment happen in one script, so two replicas can never both take the last slot.

``requests_per_minute`` counts every authenticated API request; ``tokens_per_minute`` counts a
turn's prompt + completion tokens, checked before the turn (refused while the last minute's
tokens reach the limit) and added when it ends (a turn's size is only known then). Over a limit:
:class:`runtime.core.errors.RateLimitError` (429) with ``retry_after`` seconds. 0 disables a limit.
Keys are ``<prefix>:{rl:<bucket>}:<kind>:<window index>`` (one hash tag per bucket: Cluster-safe).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from runtime.core.errors import RateLimitError
from runtime.state.client import RedisRunner

#: Seconds of one window.
WINDOW = 60.0

# KEYS: current window, previous window. ARGV: elapsed ms in the current window, window ms,
# limit, cost, mode (take: check then add; check: refuse when at the limit; add: add always).
# Returns {allowed 0/1, ms until a retry may pass}.
_SCRIPT = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local elapsed = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local mode = ARGV[5]
local count = prev * (1 - elapsed / window) + cur
if mode ~= 'add' then
  local over
  if mode == 'check' then over = count >= limit else over = count + cost > limit end
  if over then
    local need = cur + cost - limit
    local wait
    if need > 0 or prev == 0 then
      wait = window - elapsed
    else
      wait = window * (1 - (limit - cur - cost) / prev) - elapsed
      if wait < 1 then wait = 1 end
    end
    return {0, math.ceil(wait)}
  end
  if mode == 'check' then return {1, 0} end
end
redis.call('INCRBY', KEYS[1], cost)
redis.call('PEXPIRE', KEYS[1], math.floor(window * 2))
return {1, 0}
"""


class RateLimiter:
    """Requests and tokens per minute per bucket (an API key), in Redis through ``runner``.

    ``clock`` is epoch seconds (replicas must roughly agree on it: the window index comes from it).
    Raises RateLimitError over a limit, and the Redis AppErrors of ``runner`` when Redis is out.
    """

    def __init__(
        self,
        runner: RedisRunner,
        *,
        requests_per_minute: int,
        tokens_per_minute: int,
        key_prefix: str = "holdfast",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._runner = runner
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._prefix = key_prefix
        self._clock = clock
        self._script = runner.client.register_script(_SCRIPT)

    async def _call(self, bucket: str, kind: str, limit: int, cost: int, mode: str) -> tuple[bool, float]:
        now = self._clock()
        index = math.floor(now / WINDOW)
        elapsed_ms = int((now - index * WINDOW) * 1000)
        base = f"{self._prefix}:{{rl:{bucket}}}:{kind}"
        keys = [f"{base}:{index}", f"{base}:{index - 1}"]
        args: list[int | str] = [elapsed_ms, int(WINDOW * 1000), limit, cost, mode]
        allowed, wait_ms = await self._runner.run(lambda r: self._script(keys=keys, args=args, client=r), "rate limit")
        return bool(allowed), int(wait_ms) / 1000.0

    async def take_request(self, bucket: str) -> None:
        """Count one request of ``bucket``; RateLimitError when the last minute is full."""
        if self.requests_per_minute <= 0:
            return
        allowed, wait = await self._call(bucket, "req", self.requests_per_minute, 1, "take")
        if not allowed:
            raise RateLimitError(
                f"rate limit: more than {self.requests_per_minute} requests per minute for this key",
                retry_after=max(1.0, wait),
                details={"limit": self.requests_per_minute, "unit": "requests per minute"},
            )

    async def check_tokens(self, bucket: str) -> None:
        """RateLimitError when ``bucket`` already used its tokens of the last minute."""
        if self.tokens_per_minute <= 0:
            return
        allowed, wait = await self._call(bucket, "tok", self.tokens_per_minute, 0, "check")
        if not allowed:
            raise RateLimitError(
                f"rate limit: more than {self.tokens_per_minute} tokens per minute for this key",
                retry_after=max(1.0, wait),
                details={"limit": self.tokens_per_minute, "unit": "tokens per minute"},
            )

    async def add_tokens(self, bucket: str, tokens: int) -> None:
        """Count ``tokens`` a finished turn used (never refused: the turn already ran)."""
        if self.tokens_per_minute <= 0 or tokens <= 0:
            return
        await self._call(bucket, "tok", self.tokens_per_minute, tokens, "add")
