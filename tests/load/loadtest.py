"""Load and fault test (issue 19, part 5): 3 ``holdfast serve`` replicas on one Redis Cluster.

Starts a 3-primary + 3-replica Redis Cluster (:mod:`tests.support.cluster`), the demo LLM server,
and ``replicas`` real ``holdfast serve`` console scripts (each with its own data dir, so its own
journal), all on loopback. Then :func:`tests.load.generator.run_load` runs ``users`` simulated
users for ``duration`` seconds, each in its own conversation. During the run one serve replica is
killed by pid (SIGKILL: a crash, not a drain) and restarted on the same data dir a little later,
as an orchestrator would, and one Redis primary is killed by pid (SIGKILL; its replica is promoted).

Afterwards every replica's journal is drained, and every conversation is read straight from the
cluster: an acknowledged message missing there is *lost*; a user message stored twice, or a
second answer to one user message, is *duplicated*. Printed: turns/s, p50/p95 latency of the
requests that succeeded, failed requests inside the kill windows (``window`` seconds after each
kill) and outside them, lost, duplicated, and per kill the time until the users it hit succeed
again. Exit status 1 when anything was lost or duplicated, 0 otherwise.

Run: ``make loadtest`` (100 users, 60 s) or ``python -m tests.load.loadtest --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from runtime.config import RedisConfig
from runtime.core.messages import ChatMessage
from runtime.demo.launcher import DemoLLMServer
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.conversations import HIDDEN, ConversationStore
from tests.load.generator import LoadResult, Turn, run_load
from tests.support.cluster import RedisClusterFixture, cluster_unavailable_reason
from tests.support.serve import ServeProcess, serve_env

#: Key prefix the serve replicas write under (config.toml's default).
KEY_PREFIX = "holdfast"


@dataclass
class LoadPlan:
    """What one run does. Times are seconds from the start of the timed part; a kill at None is
    skipped. ``window``: seconds after each kill whose failures count as "during a kill"."""

    users: int = 100
    duration: float = 60.0
    replicas: int = 3
    replica_kill_at: float | None = 15.0
    primary_kill_at: float | None = 35.0
    restart_after: float = 2.0
    window: float = 10.0
    think: float = 0.0
    tokens_per_second: float = 0.0
    request_timeout: float = 30.0
    drain: float = 60.0
    workdir: Path | None = None


@dataclass
class Kill:
    """One fault: what was killed (``what``), when (``at``, seconds from t0) and its pid."""

    what: str
    at: float
    pid: int
    restarted_at: float | None = None


@dataclass
class Recovery:
    """How the users hit by one kill came back: ``affected`` users had a request fail within its
    window; ``first``/``last`` are seconds from the kill to the first and the last of their
    next successes; ``never`` did not succeed again before the run ended."""

    kill: Kill
    affected: int = 0
    first: float | None = None
    last: float | None = None
    never: int = 0


@dataclass
class LoadReport:
    """The run's figures (latencies in milliseconds, rates per second)."""

    plan: LoadPlan
    users: int
    duration: float
    turns: int
    turns_per_second: float
    p50_ms: float
    p95_ms: float
    turn_p95_ms: float
    requests: int
    failed_in_windows: int
    failed_outside: int
    unacknowledged: int
    failed_turns: int
    replayed: int
    lost: int
    duplicated: int
    reruns: int
    out_of_order: int
    recoveries: list[Recovery] = field(default_factory=list)
    lost_examples: list[str] = field(default_factory=list)
    duplicate_examples: list[str] = field(default_factory=list)
    error_kinds: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        """Nothing acknowledged was lost and nothing was stored twice."""
        return self.lost == 0 and self.duplicated == 0


def _serve_env(data_dir: Path, redis_url: str, llm_url: str, workdir: Path) -> dict[str, str]:
    return serve_env(
        data_dir,
        redis_url,
        llm_url,
        "loadtest",
        # A crashed replica's turn lock frees after this many seconds (it is also the wait).
        HOLDFAST_AGENT__TURN_LOCK_TIMEOUT="10",
        # Stopping a replica at the end waits this long for requests still running.
        HOLDFAST_SERVER__GRACE_PERIOD="5",
        XDG_CONFIG_HOME=str(workdir / "xdg-config"),
    )


def _percentile(samples: Sequence[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Fleet:
    """The cluster, the demo LLM and the serve replicas of one run; :meth:`stop` ends them all."""

    def __init__(self, plan: LoadPlan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.cluster = RedisClusterFixture(workdir / "cluster")
        self.llm = DemoLLMServer(tokens_per_second=plan.tokens_per_second, log_path=workdir / "demo-llm.log")
        self.replicas: list[ServeProcess] = []
        self.urls: list[str] = []
        self.retired: list[ServeProcess] = []
        self.redis_url = ""

    def start(self) -> None:
        """Start everything; the serve replicas boot in parallel threads."""
        self.cluster.start()
        self.redis_url = self.cluster.url  # the first node: never the primary this run kills
        self.llm.start()
        self.replicas = [self._replica(i) for i in range(self.plan.replicas)]
        self.urls = [r.base_url for r in self.replicas]
        errors: list[BaseException] = []

        def boot(proc: ServeProcess) -> None:
            try:
                proc.start()
            except BaseException as exc:  # reported below, after every thread ended
                errors.append(exc)

        threads = [threading.Thread(target=boot, args=(r,)) for r in self.replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError(f"a serve replica did not start: {errors[0]}")

    def _replica(self, i: int) -> ServeProcess:
        data = self.workdir / f"replica{i}"
        env = _serve_env(data, self.redis_url, self.llm.url, self.workdir)
        log = self.workdir / f"serve-{i}-{len(self.retired)}.log"
        return ServeProcess([], env, log=log)

    def kill_replica(self, index: int) -> int:
        """SIGKILL serve replica ``index`` by pid; returns the pid."""
        proc = self.replicas[index]
        os.kill(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait(10)
        return proc.proc.pid

    def restart_replica(self, index: int) -> None:
        """Start a new serve process on replica ``index``'s data dir (its journal replays on
        start) and put its URL in rotation; blocks until it answers."""
        self.retired.append(self.replicas[index])
        proc = self._replica(index)
        self.replicas[index] = proc
        proc.start()
        self.urls[index] = proc.base_url

    def kill_primary(self) -> int:
        """SIGKILL a primary that is not the node every replica was pointed at; returns its pid."""
        seed_port = int(self.redis_url.rsplit(":", 1)[1])
        for node in self.cluster.live_nodes():
            if node.port == seed_port or node.pid is None:
                continue
            c = self.cluster.client(node)
            try:
                role = c.info("replication").get("role")
            finally:
                c.close()
            if role == "master":
                pid = node.pid
                os.kill(pid, signal.SIGKILL)
                return pid
        raise RuntimeError("no primary to kill")

    async def drain(self, timeout: float = 60.0) -> None:
        """Wait until every live replica's journal is empty and its store writes to Redis."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                pending = []
                for url in self.urls:
                    try:
                        store = (await client.get(f"{url}/health")).json()["conversation_store"]
                        if store["pending_writes"] or store["degraded"]:
                            pending.append(f"{url}: {store}")
                    except (httpx.HTTPError, KeyError, ValueError) as exc:
                        pending.append(f"{url}: {exc}")
                if not pending:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"journals did not drain in {timeout:g} s: {pending}")
                await asyncio.sleep(0.2)  # a poll interval between checks

    def stop(self) -> None:
        """Stop the replicas (SIGTERM, then SIGKILL), the demo LLM and every cluster node."""
        for proc in [*self.replicas, *self.retired]:
            try:
                proc.stop()
            except OSError:
                pass
        self.llm.stop()
        self.cluster.stop()


async def _stored_messages(redis_url: str, conversations: Sequence[str], workdir: Path) -> dict[str, list[ChatMessage]]:
    """Every message of each conversation, archived (summarised) ones included, read straight
    from the cluster."""
    client = make_redis_client(redis_url, socket_timeout=10)
    store = ConversationStore(
        RedisRunner(client, Resilience().guard("redis")),
        RedisConfig(key_prefix=KEY_PREFIX),
        journal_dir=workdir / "verify-journal",
    )
    try:
        found: dict[str, list[ChatMessage]] = {}
        for conv in conversations:
            # The archive too: a long conversation is summarised and its older messages move there.
            dump = await store.dump(conv)
            found[conv] = [*dump.archived, *dump.messages]
        if store.degraded:
            raise RuntimeError(f"could not read the conversations back from Redis: {store.degraded_reason}")
        return found
    finally:
        await store.close()
        await client.aclose()


@dataclass
class StoredCheck:
    """What the stored conversations say about the acknowledged turns.

    ``lost``: acknowledged message ids missing from Redis. ``duplicated``: a user message stored
    twice (two ids, one request), an id stored twice, or one turn answered twice. ``reruns``:
    answers of a turn run again after its replica crashed (its user message kept the first id:
    the earlier answer, if any, stays as a variant, as after /retry). ``out_of_order``: user
    messages stored after a later one of the same user (a replica's journal replayed after the
    user's next turns went to another replica).
    """

    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    reruns: int = 0
    out_of_order: int = 0


def _message_index(content: str) -> int:
    """The N of ``load user U message N (...)``; -1 for anything else."""
    parts = content.split()
    return int(parts[4]) if len(parts) > 4 and parts[3] == "message" and parts[4].isdigit() else -1


def _check(turns: Sequence[Turn], stored: dict[str, list[ChatMessage]]) -> StoredCheck:
    """Check every acknowledged turn against what is stored (see :class:`StoredCheck`)."""
    check = StoredCheck()
    for turn in turns:
        if not turn.acknowledged:
            continue
        ids = {m.id for m in stored.get(turn.conversation_id, [])}
        for wanted in (turn.user_message_id, turn.assistant_message_id):
            if wanted and wanted not in ids:
                check.lost.append(f"{turn.conversation_id} {wanted} ({turn.content!r})")
    for conv, messages in stored.items():
        users = [m for m in messages if m.role == "user"]
        contents = Counter(m.content for m in users)
        check.duplicated += [f"{conv}: user message {c!r} stored {n} times" for c, n in contents.items() if n > 1]
        ids = Counter(m.id for m in messages)
        check.duplicated += [f"{conv}: message id {i} stored {n} times" for i, n in ids.items() if n > 1]
        user_turns = {str(m.metadata.get("turn_id")) for m in users}
        answers = Counter(
            str(m.metadata.get("turn_id"))
            for m in messages
            if m.role == "assistant" and not m.metadata.get(HIDDEN) and not m.tool_calls
        )
        check.duplicated += [f"{conv}: turn {t} answered {n} times" for t, n in answers.items() if n > 1]
        check.reruns += sum(n for t, n in answers.items() if t not in user_turns)
        latest = -1
        for m in users:
            index = _message_index(m.content)
            if index < latest:
                check.out_of_order += 1
            latest = max(latest, index)
    return check


def _error_kind(error: str) -> str:
    """A failure's kind without its ids: ``HTTP 503 service_unavailable``, ``ReadTimeout``..."""
    if error.startswith("ValueError: HTTP "):
        status = error.split()[2].rstrip(":")
        kind = error.split('"type":"', 1)[1].split('"', 1)[0] if '"type":"' in error else ""
        return f"HTTP {status} {kind}".strip()
    if error.startswith("ValueError: the stream ended"):
        return "stream cut before TurnFinished"
    return error.split(":", 1)[0]


def _recoveries(result: LoadResult, kills: Sequence[Kill], window: float) -> list[Recovery]:
    """Per kill: the users with a request failing within its window, and for each the time from
    the kill to their first success after that failure."""
    out = []
    for kill in kills:
        rec = Recovery(kill)
        first_failure: dict[int, float] = {}
        for a in result.attempts:
            if not a.ok and kill.at <= a.ended < kill.at + window:
                first_failure[a.user] = min(a.ended, first_failure.get(a.user, a.ended))
        rec.affected = len(first_failure)
        backs = []
        for user, failed_at in first_failure.items():
            later = [a.ended for a in result.attempts if a.user == user and a.ok and a.ended > failed_at]
            if later:
                backs.append(min(later) - kill.at)
            else:
                rec.never += 1
        if backs:
            rec.first, rec.last = min(backs), max(backs)
        out.append(rec)
    return out


def _report(plan: LoadPlan, result: LoadResult, kills: list[Kill], stored: dict[str, list[ChatMessage]]) -> LoadReport:
    ok = [a for a in result.attempts if a.ok]
    in_window = [a for a in result.attempts if not a.ok and any(k.at <= a.ended < k.at + plan.window for k in kills)]
    outside = [a for a in result.attempts if not a.ok and a not in in_window]
    acked = [t for t in result.turns if t.acknowledged]
    timed = [t for t in acked if t.finished <= plan.duration]
    check = _check(result.turns, stored)
    kinds: Counter[str] = Counter(_error_kind(a.error) for a in result.attempts if not a.ok)
    return LoadReport(
        plan=plan,
        users=len(result.conversations),
        duration=plan.duration,
        turns=len(acked),
        turns_per_second=len(timed) / plan.duration,
        p50_ms=_percentile([a.latency for a in ok], 0.50) * 1000,
        p95_ms=_percentile([a.latency for a in ok], 0.95) * 1000,
        turn_p95_ms=_percentile([t.finished - t.started for t in acked], 0.95) * 1000,
        requests=len(result.attempts),
        failed_in_windows=len(in_window),
        failed_outside=len(outside),
        unacknowledged=sum(1 for t in result.turns if not t.acknowledged),
        failed_turns=sum(1 for t in acked if t.failed_turn),
        replayed=sum(1 for t in acked if t.replayed),
        lost=len(check.lost),
        duplicated=len(check.duplicated),
        reruns=check.reruns,
        out_of_order=check.out_of_order,
        recoveries=_recoveries(result, kills, plan.window),
        lost_examples=check.lost[:5],
        duplicate_examples=check.duplicated[:5],
        error_kinds=kinds,
    )


async def _faults(fleet: Fleet, plan: LoadPlan, started: asyncio.Future[float], kills: list[Kill]) -> None:
    """Kill (and restart) a serve replica and kill a Redis primary at the plan's times."""
    t0 = await started
    schedule: list[tuple[float, str]] = []
    if plan.replica_kill_at is not None:
        schedule.append((plan.replica_kill_at, "replica"))
    if plan.primary_kill_at is not None:
        schedule.append((plan.primary_kill_at, "primary"))
    restarts: list[asyncio.Task[None]] = []

    async def restart(victim: int, kill: Kill) -> None:
        await asyncio.sleep(plan.restart_after)  # the orchestrator's restart delay
        await asyncio.to_thread(fleet.restart_replica, victim)
        kill.restarted_at = time.monotonic() - t0

    for at, what in sorted(schedule):
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))  # the plan's clock, not a condition
        now = time.monotonic() - t0
        if what == "replica":
            victim = min(1, len(fleet.replicas) - 1)
            kill = Kill(f"serve replica {victim} (SIGKILL)", now, fleet.kill_replica(victim))
            kills.append(kill)
            restarts.append(asyncio.create_task(restart(victim, kill)))
        else:
            kills.append(Kill("Redis primary (SIGKILL)", now, fleet.kill_primary()))
    for task in restarts:
        await task


async def run(plan: LoadPlan) -> LoadReport:
    """Start the fleet, run the users and the faults, check what is stored; stop everything."""
    reason = cluster_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"Redis Cluster unavailable: {reason}")
    with tempfile.TemporaryDirectory(prefix="holdfast-load-") as tmp:
        workdir = plan.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        fleet = Fleet(plan, workdir)
        try:
            await asyncio.to_thread(fleet.start)
            loop = asyncio.get_running_loop()
            started: asyncio.Future[float] = loop.create_future()
            kills: list[Kill] = []
            faults = asyncio.create_task(_faults(fleet, plan, started, kills))
            result = await run_load(
                lambda: fleet.urls,
                users=plan.users,
                duration=plan.duration,
                think=plan.think,
                request_timeout=plan.request_timeout,
                drain=plan.drain,
                on_start=started.set_result,
            )
            await faults
            await fleet.drain()
            stored = await _stored_messages(fleet.redis_url, list(result.conversations.values()), workdir)
            _dump(workdir, result, kills, stored)
            return _report(plan, result, kills, stored)
        finally:
            await asyncio.to_thread(fleet.stop)


def _dump(workdir: Path, result: LoadResult, kills: Sequence[Kill], stored: dict[str, list[ChatMessage]]) -> None:
    """Every attempt, turn, kill and stored message as JSON lines in ``workdir`` (for a look
    afterwards with ``--workdir``)."""
    with (workdir / "results.jsonl").open("w") as out:
        for kill in kills:
            out.write(json.dumps({"kill": dataclasses.asdict(kill)}) + "\n")
        for attempt in result.attempts:
            out.write(json.dumps({"attempt": dataclasses.asdict(attempt)}) + "\n")
        for turn in result.turns:
            out.write(json.dumps({"turn": dataclasses.asdict(turn)}) + "\n")
        for conv, messages in stored.items():
            out.write(json.dumps({"stored": conv, "messages": [m.to_dict() for m in messages]}, default=str) + "\n")


def format_report(report: LoadReport) -> str:
    """The report as a plain-text table."""
    plan = report.plan
    rows = [
        ("users x seconds", f"{report.users} x {plan.duration:g} s on {plan.replicas} serve replicas, 3+3 cluster"),
        ("turns acknowledged", f"{report.turns} ({report.replayed} by an idempotent replay)"),
        ("turns/s", f"{report.turns_per_second:.1f}"),
        ("request latency p50 / p95", f"{report.p50_ms:.0f} ms / {report.p95_ms:.0f} ms (successful requests)"),
        ("turn latency p95", f"{report.turn_p95_ms:.0f} ms (first send to acknowledged, retries included)"),
        ("requests", f"{report.requests}"),
        ("failed, in kill windows", f"{report.failed_in_windows} (within {plan.window:g} s after a kill)"),
        ("failed, outside them", f"{report.failed_outside}"),
        ("turns never acknowledged", f"{report.unacknowledged}"),
        ("turns answered as failed", f"{report.failed_turns}"),
        ("messages lost", f"{report.lost}"),
        ("messages duplicated", f"{report.duplicated}"),
        ("turns run again after a crash", f"{report.reruns} (same user message id; an earlier answer stays a variant)"),
        ("user messages out of order", f"{report.out_of_order} (a journal replayed after later turns elsewhere)"),
    ]
    for rec in report.recoveries:
        restarted = f", restarted at {rec.kill.restarted_at:.1f} s" if rec.kill.restarted_at is not None else ""
        if rec.affected == 0:
            text = "no request failed"
        else:
            first = f"{rec.first:.2f} s" if rec.first is not None else "-"
            last = f"{rec.last:.2f} s" if rec.last is not None else "-"
            text = f"{rec.affected} users hit; first back after {first}, last after {last}"
            if rec.never:
                text += f"; {rec.never} never succeeded again"
        rows.append((f"kill at {rec.kill.at:.1f} s: {rec.kill.what}{restarted}", text))
    if report.error_kinds:
        rows.append(("failures by kind", ", ".join(f"{k} x{n}" for k, n in report.error_kinds.most_common())))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines += [f"  lost: {x}" for x in report.lost_examples]
    lines += [f"  duplicated: {x}" for x in report.duplicate_examples]
    lines.append("RESULT: " + ("ok (nothing lost, nothing duplicated)" if report.ok else "FAILED"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.load.loadtest``: run, print the table; 1 if anything was lost or doubled,
    2 when the fleet could not start."""
    parser = argparse.ArgumentParser(prog="loadtest", description=__doc__.split("\n\n")[0])
    defaults = LoadPlan()
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--duration", type=float, default=defaults.duration, help="seconds")
    parser.add_argument("--replicas", type=int, default=defaults.replicas)
    parser.add_argument("--replica-kill-at", type=float, default=defaults.replica_kill_at, help="seconds; <0: none")
    parser.add_argument("--primary-kill-at", type=float, default=defaults.primary_kill_at, help="seconds; <0: none")
    parser.add_argument("--window", type=float, default=defaults.window, help="seconds after a kill")
    parser.add_argument("--think", type=float, default=defaults.think, help="seconds between a user's turns")
    parser.add_argument("--tokens-per-second", type=float, default=defaults.tokens_per_second, help="demo model pace")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and data here")
    args = parser.parse_args(argv)
    plan = LoadPlan(
        users=args.users,
        duration=args.duration,
        replicas=args.replicas,
        replica_kill_at=args.replica_kill_at if args.replica_kill_at >= 0 else None,
        primary_kill_at=args.primary_kill_at if args.primary_kill_at >= 0 else None,
        window=args.window,
        think=args.think,
        tokens_per_second=args.tokens_per_second,
        workdir=args.workdir,
    )
    try:
        report = asyncio.run(run(plan))
    except RuntimeError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
