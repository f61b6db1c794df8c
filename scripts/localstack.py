#!/usr/bin/env python3
"""Install, start and stop a local LocalStack (SQS only) for sqsw's tests.

LocalStack lives in its own virtual environment, ``.localstack/venv`` (its pins
must not leak into the product's ``.venv``), installed from
``requirements-localstack.txt``. There is no Docker and no LocalStack CLI here:
the server is ``python -m localstack.runtime.main`` with a fixed environment.

Command line (any ``python3``; ``install`` needs only the standard library, the
other commands re-execute this script under ``.localstack/venv/bin/python``,
whose psutil manages the processes)::

    python3 scripts/localstack.py install              # idempotent (stamp file)
    python3 scripts/localstack.py start [--state F]    # prints the endpoint URL
    python3 scripts/localstack.py status [--state F]
    python3 scripts/localstack.py stop [--state F]

``start`` prints only the endpoint URL on stdout (everything else goes to
stderr), so ``endpoint=$(python3 scripts/localstack.py start)`` works. The
state of a started server is a small JSON file (default
``.localstack/server.json``); ``stop`` reads it, terminates the server's process
tree (SIGTERM, then SIGKILL after a grace period) and removes its temp dir.

Python API (importable by any python3, e.g. the test suite's)::

    server = start_server()          # Server(endpoint=..., pid=..., ...)
    ...
    stop_server(server)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

try:
    import psutil  # in LocalStack's venv (LocalStack depends on it), not in the caller's
except ImportError:
    psutil = None

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve()
LS_HOME = REPO / ".localstack"
VENV = LS_HOME / "venv"
REQUIREMENTS = REPO / "requirements-localstack.txt"
STAMP = VENV / ".sqsw-stamp"
DEFAULT_STATE = LS_HOME / "server.json"
LOG_DIR = LS_HOME / "logs"
CACHE_DIR = LS_HOME / "cache"  # plux's entry-point cache, instead of ~/.cache

START_TIMEOUT = 90.0  # seconds; a warm start takes about 1-5 s
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
KEEP_LOGS = 10
TMP_PREFIX = "sqsw-localstack-"

# Passed through from the caller's environment; everything else is dropped so
# that stray variables (DEBUG, PERSISTENCE, AWS_*, GATEWAY_LISTEN, ...) cannot
# change how LocalStack behaves.
PASSTHROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE")


def log(msg: str) -> None:
    print(f"[localstack] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- install


def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def _stamp_value() -> str:
    h = hashlib.sha256()
    h.update(sys.version.encode())
    h.update(REQUIREMENTS.read_bytes())
    return h.hexdigest()


def is_installed(venv: Path = VENV) -> bool:
    return venv_python(venv).exists()


def install(force: bool = False) -> bool:
    """Create ``.localstack/venv`` and install LocalStack (with psutil) into it.

    Does nothing when the stamp matches (same python, requirements file
    unchanged). Returns True when something was installed.
    """
    py, stamp = str(venv_python()), _stamp_value()
    if not force and is_installed() and STAMP.exists() and STAMP.read_text().strip() == stamp:
        return False
    t0 = time.monotonic()
    LS_HOME.mkdir(parents=True, exist_ok=True)
    # A venv whose interpreter is gone (python upgraded) is rebuilt.
    if is_installed() and subprocess.run([py, "-c", ""], capture_output=True).returncode != 0:
        shutil.rmtree(VENV)
    if not is_installed():
        log(f"creating {VENV.relative_to(REPO)}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    log(f"installing {REQUIREMENTS.name} into {VENV.relative_to(REPO)} (first time: ~20 s-2 min)")
    cmd = [py, "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)]
    pip = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    for line in (pip.stdout + pip.stderr).splitlines():  # minus the machine's harmless warnings
        if line.strip() and not (line.startswith("WARNING: Location '") and "is ignored" in line):
            print(line, file=sys.stderr)
    if pip.returncode != 0:
        raise RuntimeError(f"installing LocalStack failed (exit {pip.returncode}): {' '.join(cmd)}")
    imports = "import localstack.runtime.main, localstack.services.sqs, psutil"
    check = subprocess.run([py, "-c", imports], capture_output=True, text=True)
    if check.returncode != 0:
        sys.stderr.write(check.stderr)
        raise RuntimeError("LocalStack installed but cannot be imported")
    STAMP.write_text(stamp + "\n")
    log(f"installed LocalStack in {time.monotonic() - t0:.1f} s")
    return True


# --------------------------------------------------------------------------- server


@dataclasses.dataclass
class Server:
    endpoint: str
    port: int
    pid: int
    tmpdir: str
    log_path: str
    create_time: float | None = None  # psutil's: tells the server from a process reusing its PID
    started_at: float = 0.0  # time.time() at launch
    ready_seconds: float | None = None  # launch-to-ready time
    owner_pid: int = 0  # the process that launched it
    _popen: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False)
    _watcher: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Server:
        fields = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        return cls(**{k: v for k, v in d.items() if k in fields})


def save_state(server: Server, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(server.to_json(), indent=2) + "\n")
    tmp.replace(path)


def load_state(path: Path) -> Server | None:
    try:
        return Server.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(port: int, tmpdir: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(
        {
            "SERVICES": "sqs",
            "EAGER_SERVICE_LOADING": "1",
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "LOCALSTACK_HOST": f"127.0.0.1:{port}",
            "SQS_ENDPOINT_STRATEGY": "off",
            "DNS_ADDRESS": "0",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
            "LOCALSTACK_VOLUME_DIR": str(tmpdir / "volume"),
            "TMPDIR": str(tmpdir / "tmp"),
            "XDG_CACHE_HOME": str(CACHE_DIR),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _ready(endpoint: str, timeout: float = 2.0) -> bool:
    """True when SQS answers ListQueues (LocalStack does not check signatures)."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/sqs/aws4_request, "
        "SignedHeaders=content-type;host, Signature=0",
    }
    body = b"Action=ListQueues&Version=2012-11-05"
    req = urllib.request.Request(endpoint + "/", data=body, method="POST", headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status == 200 and b"ListQueuesResponse" in resp.read()
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _log_tail(path: str, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(server: Server, timeout: float = START_TIMEOUT) -> float:
    """Poll until SQS answers; returns the seconds since launch. Raises on failure."""
    deadline = time.monotonic() + timeout
    while not _ready(server.endpoint):
        exited = server._popen is not None and server._popen.poll() is not None
        if exited or time.monotonic() > deadline:
            why = "exited before it was ready" if exited else f"not ready after {timeout:.0f} s"
            error = RuntimeError if exited else TimeoutError
            raise error(f"LocalStack {why}; log {server.log_path}:\n{_log_tail(server.log_path)}")
        time.sleep(0.1)
    if server.ready_seconds is None:
        server.ready_seconds = time.time() - server.started_at
    return server.ready_seconds


# --------------------------------------------------------------------------- Python API


def start_server(
    *, timeout: float = START_TIMEOUT, port: int | None = None, die_with_parent: bool = True
) -> Server:
    """Start LocalStack on 127.0.0.1 (a free port by default) and wait until SQS answers.

    The server is managed by ``start --watch`` (under LocalStack's python), which
    stops it on :func:`stop_server` or when this process exits, even by SIGKILL:
    its stdin, a pipe from here, closes. ``die_with_parent`` is accepted for old
    callers; it is always the case now.
    """
    LS_HOME.mkdir(parents=True, exist_ok=True)
    fd, state = tempfile.mkstemp(prefix="api-", suffix=".json", dir=LS_HOME)
    os.close(fd)
    args = [str(SCRIPT), "start", "--watch", "--state", state, "--port", str(port or 0)]
    args += ["--timeout", str(timeout)]
    with tempfile.TemporaryFile() as err:
        watcher = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,  # Ctrl-C here reaches us, not it
        )
        assert watcher.stdout is not None
        try:
            ready = watcher.stdout.readline()  # the endpoint, once SQS answers
        except BaseException:  # Ctrl-C while it starts: never leave it behind
            watcher.terminate()
            watcher.communicate()
            raise
        server = load_state(Path(state)) if ready else None
        if server is None:
            watcher.communicate()
            err.seek(0)
            raise RuntimeError(
                f"LocalStack failed to start:\n{err.read().decode(errors='replace')}"
            )
    server._watcher = watcher
    return server


def launch(*, port: int | None = None) -> Server:
    """Start LocalStack on ``port`` (for callers that then call :func:`wait_ready`)."""
    return start_server(port=port)


def stop_server(server: Server, grace: float = STOP_GRACE) -> None:
    """Stop the server (its whole process tree) and remove its temp dir. Idempotent."""
    if server._watcher is None:
        _terminate(server, grace)
    else:
        server._watcher.terminate()  # it stops the server, then exits
        server._watcher.communicate()


# ------------------------------------------------ process management (LocalStack's venv)


def _processes(server: Server) -> list[psutil.Process]:
    """The server's live processes (its process tree), [] if its PID now names another."""
    try:
        leader = psutil.Process(server.pid)
        if server.create_time is not None:
            ours = leader.create_time() == server.create_time
        else:  # a state file written before create_time was recorded
            ours = "localstack" in " ".join(leader.cmdline())
        procs = [leader, *leader.children(recursive=True)] if ours else []
        return [p for p in procs if p.status() != psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return []


def _terminate(server: Server, grace: float = STOP_GRACE) -> None:
    """SIGTERM the server's processes, SIGKILL them after ``grace`` s; remove its temp dir."""
    try:
        procs = _processes(server)
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.terminate()  # psutil makes sure the PID still names this process
        _, alive = psutil.wait_procs(procs, timeout=grace)
        if alive:
            log(f"LocalStack (pid {server.pid}) ignored SIGTERM for {grace:.0f} s: SIGKILL")
            for p in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            psutil.wait_procs(alive, timeout=5)
    finally:
        if server.tmpdir and Path(server.tmpdir).name.startswith(TMP_PREFIX):
            shutil.rmtree(server.tmpdir, ignore_errors=True)


def _rss_mib(server: Server) -> float:
    rss = 0
    for p in _processes(server):
        with contextlib.suppress(psutil.Error):
            rss += p.memory_info().rss
    return rss / 2**20


def _remove_leftovers() -> None:
    """Remove temp dirs of servers that died without cleanup (a server's cwd is its temp
    dir; young ones may be being set up right now) and all but the newest logs."""
    in_use = {p.info["cwd"] for p in psutil.process_iter(["cwd"])}
    for d in Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if os.path.realpath(d) not in in_use and time.time() - d.stat().st_mtime > 60:
                shutil.rmtree(d, ignore_errors=True)
    logs = sorted(LOG_DIR.glob("localstack-*.log"), key=lambda p: p.stat().st_mtime)
    for p in logs[:-KEEP_LOGS]:
        p.unlink(missing_ok=True)


def _launch(port: int) -> Server:
    """Start LocalStack (a child of this process) without waiting for it to be ready."""
    port = port or free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    _remove_leftovers()
    tmpdir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
    (tmpdir / "volume").mkdir()
    (tmpdir / "tmp").mkdir()
    log_path = LOG_DIR / f"localstack-{time.strftime('%Y%m%d-%H%M%S')}-{port}.log"
    with open(log_path, "wb") as logf:
        popen = subprocess.Popen(
            [str(venv_python()), "-m", "localstack.runtime.main"],
            env=server_env(port, tmpdir),
            cwd=str(tmpdir),
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C in the terminal does not reach it
        )
    return Server(
        endpoint=f"http://127.0.0.1:{port}",
        port=port,
        pid=popen.pid,
        tmpdir=str(tmpdir),
        log_path=str(log_path),
        create_time=psutil.Process(popen.pid).create_time(),
        started_at=time.time(),
        owner_pid=os.getpid(),
        _popen=popen,
    )


def _start(state: Path, port: int, timeout: float) -> Server:
    """Launch LocalStack and wait until it is ready, retrying on another port if it dies."""
    for attempt in range(1 if port else 3):
        server = _launch(port)
        try:
            save_state(server, state)  # before readiness, so that `stop` always works
            wait_ready(server, timeout)
            save_state(server, state)
            log(
                f"LocalStack ready at {server.endpoint} in {server.ready_seconds:.2f} s "
                f"(pid {server.pid}, RSS {_rss_mib(server):.0f} MiB, log {server.log_path})"
            )
            return server
        except BaseException as e:  # failure, timeout, Ctrl-C, SIGTERM: never leave it behind
            _terminate(server)
            if not isinstance(e, RuntimeError) or port or attempt == 2:
                raise
    raise AssertionError("not reached")


# --------------------------------------------------------------------------- CLI


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_start(args: argparse.Namespace) -> int:
    state = Path(args.state)
    old = load_state(state)
    if old is not None:
        if _processes(old) and _ready(old.endpoint):
            log(f"already running at {old.endpoint} (pid {old.pid}); state {state}")
            print(old.endpoint, flush=True)
            return 0
        _terminate(old)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    signal.signal(signal.SIGHUP, _raise_on_sigterm)
    try:
        server = _start(state, args.port, args.timeout)
    except (KeyboardInterrupt, Exception) as e:
        state.unlink(missing_ok=True)
        interrupted = isinstance(e, KeyboardInterrupt)
        log("interrupted; LocalStack stopped" if interrupted else f"failed to start: {e}")
        return 130 if interrupted else 1
    if not args.watch:
        print(server.endpoint, flush=True)
        return 0
    with contextlib.suppress(KeyboardInterrupt, OSError):  # SIGTERM, or our caller is gone
        print(server.endpoint, flush=True)
        sys.stdin.buffer.read()  # until EOF: our caller closed the pipe or exited
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _terminate(server)
    state.unlink(missing_ok=True)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    state = Path(args.state)
    server = load_state(state)
    if server is None:
        if not args.quiet:
            log(f"no server recorded in {state}")
        return 0
    t0 = time.monotonic()
    _terminate(server, grace=args.grace)
    state.unlink(missing_ok=True)
    if not args.quiet:
        log(f"stopped LocalStack (pid {server.pid}) in {time.monotonic() - t0:.1f} s")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    server = load_state(Path(args.state))
    if server is None or not _processes(server):
        print("not running")
        return 1
    ready = _ready(server.endpoint)
    print(
        f"{server.endpoint} pid={server.pid} ready={ready} "
        f"rss={_rss_mib(server):.0f}MiB log={server.log_path}"
    )
    return 0 if ready else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = p.add_subparsers(dest="cmd", required=True)
    inst = sub.add_parser("install", help="create .localstack/venv and install LocalStack")
    inst.add_argument("--force", action="store_true", help="reinstall even if the stamp matches")
    start = sub.add_parser("start", help="start LocalStack; print its endpoint URL")
    start.add_argument("--timeout", type=float, default=START_TIMEOUT)
    start.add_argument("--install", action="store_true", help="install first if needed")
    start.add_argument("--port", type=int, default=0, help="default: a free port")
    start.add_argument("--watch", action="store_true", help="then stop it when stdin closes")
    stop = sub.add_parser("stop", help="stop the LocalStack recorded in the state file")
    stop.add_argument("--grace", type=float, default=STOP_GRACE)
    stop.add_argument("--quiet", action="store_true")
    status = sub.add_parser("status", help="show the LocalStack recorded in the state file")
    for sp in (start, stop, status):
        sp.add_argument("--state", default=str(DEFAULT_STATE), help="state file (JSON)")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)

    if args.cmd == "install" or (args.cmd == "start" and args.install):
        install(force=getattr(args, "force", False))
        if args.cmd == "install":
            return 0
    if psutil is not None or (args.cmd != "start" and load_state(Path(args.state)) is None):
        return {"start": cmd_start, "stop": cmd_stop, "status": cmd_status}[args.cmd](args)
    # Process management needs psutil: run again under LocalStack's python, which has
    # it. A re-exec keeps the command's PID, stdio and exit status.
    py = venv_python()
    if not py.exists() or Path(sys.prefix).resolve() == VENV.resolve():  # never loop
        log(f"LocalStack (with psutil) is not installed: run `python3 {SCRIPT} install --force`")
        return 1
    os.execv(py, [str(py), str(SCRIPT), *argv])


if __name__ == "__main__":
    sys.exit(main())
