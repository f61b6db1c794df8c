#!/usr/bin/env python3
"""Install, start and stop a local LocalStack (SQS only) for sqsw's tests.

Standard library only: runnable by any ``python3``, importable by the test suite.

LocalStack lives in its own virtual environment, ``.localstack/venv`` (its pins
must not leak into the product's ``.venv``), installed from
``requirements-localstack.txt``. There is no Docker and no LocalStack CLI here:
the server is ``python -m localstack.runtime.main`` with a fixed environment.

Command line::

    python3 scripts/localstack.py install              # idempotent (stamp file)
    python3 scripts/localstack.py start [--state F]    # prints the endpoint URL
    python3 scripts/localstack.py status [--state F]
    python3 scripts/localstack.py stop [--state F]

``start`` prints only the endpoint URL on stdout (everything else goes to
stderr), so ``endpoint=$(python3 scripts/localstack.py start)`` works. The
state of a started server is a small JSON file (default
``.localstack/server.json``); ``stop`` reads it, terminates the server's process
group (SIGTERM, then SIGKILL after a grace period) and removes its temp dir.

Python API::

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
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
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
    """Create ``.localstack/venv`` and install LocalStack into it.

    Does nothing when the stamp matches (requirements file unchanged). Returns
    True when something was installed.
    """
    stamp = _stamp_value()
    if (
        not force
        and venv_python().exists()
        and STAMP.exists()
        and STAMP.read_text().strip() == stamp
    ):
        return False
    t0 = time.monotonic()
    LS_HOME.mkdir(parents=True, exist_ok=True)
    if venv_python().exists():
        # A venv whose interpreter is gone (python upgraded) is rebuilt.
        ok = (
            subprocess.run([str(venv_python()), "-c", "import sys"], capture_output=True).returncode
            == 0
        )
        if not ok:
            shutil.rmtree(VENV)
    if not venv_python().exists():
        log(f"creating {VENV.relative_to(REPO)}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    log(f"installing {REQUIREMENTS.name} into {VENV.relative_to(REPO)} (first time: ~20 s-2 min)")
    cmd = [str(venv_python()), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)]
    proc = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout)
        raise RuntimeError(
            f"installing LocalStack failed (exit {proc.returncode}): {' '.join(cmd)}"
        )
    _print_pip_noise_free(proc.stdout)
    check = subprocess.run(
        [str(venv_python()), "-c", "import localstack.runtime.main, localstack.services.sqs"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        sys.stderr.write(check.stderr)
        raise RuntimeError("LocalStack installed but cannot be imported")
    STAMP.write_text(stamp + "\n")
    log(f"installed LocalStack in {time.monotonic() - t0:.1f} s")
    return True


def _print_pip_noise_free(output: str) -> None:
    """Print pip's output minus the machine's harmless find-links/index warnings."""
    for line in output.splitlines():
        if line.startswith("WARNING: Location '") and "is ignored" in line:
            continue
        if line.strip():
            sys.stderr.write(line + "\n")


# --------------------------------------------------------------------------- server


@dataclasses.dataclass
class Server:
    endpoint: str
    port: int
    pid: int
    pgid: int
    tmpdir: str
    log_path: str
    proc_start_ticks: int | None = None  # /proc/PID/stat starttime: guards against PID reuse
    started_at: float = 0.0  # time.time() at launch
    ready_seconds: float | None = None  # launch-to-ready time
    owner_pid: int = 0  # the process that launched it
    _popen: subprocess.Popen[bytes] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def to_json(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "_popen"
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Server:
        fields = {f.name for f in dataclasses.fields(cls)} - {"_popen"}
        return cls(**{k: v for k, v in d.items() if k in fields})


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


def _proc_start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name (field 2) may contain spaces.
    rest = stat.rsplit(")", 1)[1].split()
    return int(rest[19])


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: best effort
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[1].split()
        state, group = rest[0], int(rest[2])
        if group == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _set_parent_death_signal() -> None:
    """In the child, before exec: get SIGTERM if the launching thread dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


def _ready(endpoint: str, timeout: float = 2.0) -> bool:
    """True when SQS answers ListQueues (LocalStack does not check signatures)."""
    body = b"Action=ListQueues&Version=2012-11-05"
    req = urllib.request.Request(
        endpoint + "/",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Authorization": (
                "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/sqs/aws4_request, "
                "SignedHeaders=content-type;host, Signature=0"
            ),
        },
    )
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


def _remove_stale_tmpdirs() -> None:
    """Remove temp dirs of servers that died without cleanup (e.g. their owner was SIGKILLed)."""
    for d in Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*"):
        try:
            pid_s, ticks_s = (d / "server.pid").read_text().split()
        except (OSError, ValueError):
            # No pid file: being created right now, or very old. Leave young ones alone.
            with contextlib.suppress(OSError):
                if time.time() - d.stat().st_mtime > 3600:
                    shutil.rmtree(d, ignore_errors=True)
            continue
        if str(_proc_start_ticks(int(pid_s))) != ticks_s:  # that process is gone
            shutil.rmtree(d, ignore_errors=True)


def _prune_logs() -> None:
    logs = sorted(LOG_DIR.glob("localstack-*.log"), key=lambda p: p.stat().st_mtime)
    for p in logs[:-KEEP_LOGS]:
        with contextlib.suppress(OSError):
            p.unlink()


def launch(*, port: int | None = None, venv: Path = VENV, die_with_parent: bool = False) -> Server:
    """Start LocalStack without waiting for it to be ready."""
    py = venv_python(venv)
    if not py.exists():
        raise RuntimeError(
            f"LocalStack is not installed ({py} missing): run `python3 scripts/localstack.py "
            "install` or `bash scripts/test.sh`"
        )
    port = port or free_port()
    _remove_stale_tmpdirs()
    tmpdir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
    (tmpdir / "volume").mkdir()
    (tmpdir / "tmp").mkdir()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    _prune_logs()
    log_path = LOG_DIR / f"localstack-{time.strftime('%Y%m%d-%H%M%S')}-{port}.log"
    # The death signal is tied to the launching *thread*: only use it from the main thread.
    pdeath = die_with_parent and threading.current_thread() is threading.main_thread()
    with open(log_path, "wb") as logf:
        popen = subprocess.Popen(
            [str(py), "-m", "localstack.runtime.main"],
            env=server_env(port, tmpdir),
            cwd=str(tmpdir),
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C in the terminal does not reach it
            preexec_fn=_set_parent_death_signal if pdeath else None,
        )
    (tmpdir / "server.pid").write_text(f"{popen.pid} {_proc_start_ticks(popen.pid)}\n")
    return Server(
        endpoint=f"http://127.0.0.1:{port}",
        port=port,
        pid=popen.pid,
        pgid=popen.pid,
        tmpdir=str(tmpdir),
        log_path=str(log_path),
        proc_start_ticks=_proc_start_ticks(popen.pid),
        started_at=time.time(),
        owner_pid=os.getpid(),
        _popen=popen,
    )


def wait_ready(server: Server, timeout: float = START_TIMEOUT) -> float:
    """Poll until SQS answers; returns the seconds since launch. Raises on failure."""
    deadline = time.monotonic() + timeout
    while True:
        if _ready(server.endpoint):
            server.ready_seconds = time.time() - server.started_at
            return server.ready_seconds
        if not is_running(server):
            raise RuntimeError(
                f"LocalStack exited before it was ready; log {server.log_path}:\n"
                + _log_tail(server.log_path)
            )
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"LocalStack not ready after {timeout:.0f} s; log {server.log_path}:\n"
                + _log_tail(server.log_path)
            )
        time.sleep(0.1)


def start_server(
    *,
    timeout: float = START_TIMEOUT,
    venv: Path = VENV,
    die_with_parent: bool = False,
    attempts: int = 3,
    on_launch: Any = None,
) -> Server:
    """Start LocalStack on a free 127.0.0.1 port and wait until SQS answers.

    ``die_with_parent``: also ask Linux to SIGTERM the server when the calling
    thread dies (belt and braces for test sessions killed without cleanup).
    ``on_launch(server)`` is called right after the process is spawned, before
    readiness (the CLI saves its state file there, so ``stop`` always works).
    """
    last: Exception | None = None
    for _ in range(attempts):
        server = launch(venv=venv, die_with_parent=die_with_parent)
        try:
            if on_launch is not None:
                on_launch(server)
            wait_ready(server, timeout)
            return server
        except RuntimeError as e:  # e.g. the port was taken meanwhile: retry on another
            last = e
            stop_server(server)
        except BaseException:  # timeout, Ctrl-C, SIGTERM: never leave it behind
            stop_server(server)
            raise
    assert last is not None
    raise last


def is_running(server: Server) -> bool:
    if server._popen is not None:
        if server._popen.poll() is None:
            return True
    elif _same_process(server):
        return True
    # The main process is gone; children of its group may linger.
    return bool(_group_members(server.pgid))


def _same_process(server: Server) -> bool:
    ticks = _proc_start_ticks(server.pid)
    if ticks is None:
        return False
    if server.proc_start_ticks is not None and ticks != server.proc_start_ticks:
        return False  # PID reused by something else
    try:
        stat = Path(f"/proc/{server.pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _owns_group(server: Server) -> bool:
    """Is server.pgid still LocalStack's group (and not a recycled id)?"""
    if server._popen is not None:
        return True
    if _proc_start_ticks(server.pid) is not None:
        return _same_process(server)
    # Leader gone: only signal members if they look like ours.
    for pid in _group_members(server.pgid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"localstack" in cmd:
            return True
    return False


def stop_server(server: Server, grace: float = STOP_GRACE) -> None:
    """Terminate the server's process group and remove its temp dir. Idempotent."""
    try:
        if _owns_group(server):
            _signal_group(server.pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if server._popen is not None:
                    server._popen.poll()  # reap, so the leader is not a zombie
                if not _group_members(server.pgid):
                    break
                time.sleep(0.05)
            else:
                log(f"LocalStack (pid {server.pid}) ignored SIGTERM for {grace:.0f} s: SIGKILL")
                _signal_group(server.pgid, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while _group_members(server.pgid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        if server._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server._popen.wait(timeout=5)
    finally:
        if server.tmpdir and Path(server.tmpdir).name.startswith(TMP_PREFIX):
            shutil.rmtree(server.tmpdir, ignore_errors=True)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def rss_kib(server: Server) -> int:
    """Resident memory of the server's process group, in KiB (Linux)."""
    total = 0
    for pid in _group_members(server.pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


# --------------------------------------------------------------------------- state file


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


# --------------------------------------------------------------------------- CLI


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_install(args: argparse.Namespace) -> int:
    install(force=args.force)
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    state = Path(args.state)
    old = load_state(state)
    if old is not None and is_running(old) and _same_process(old):
        if _ready(old.endpoint):
            log(f"already running at {old.endpoint} (pid {old.pid}); state {state}")
            print(old.endpoint, flush=True)
            return 0
        stop_server(old)
    if args.install:
        install()
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    signal.signal(signal.SIGHUP, _raise_on_sigterm)
    try:
        server = start_server(timeout=args.timeout, on_launch=lambda s: save_state(s, state))
    except KeyboardInterrupt:
        state.unlink(missing_ok=True)
        log("interrupted; LocalStack stopped")
        return 130
    except Exception as e:
        state.unlink(missing_ok=True)
        log(f"failed to start: {e}")
        return 1
    save_state(server, state)
    log(
        f"LocalStack ready at {server.endpoint} in {server.ready_seconds:.2f} s "
        f"(pid {server.pid}, RSS {rss_kib(server) / 1024:.0f} MiB, log {server.log_path})"
    )
    print(server.endpoint, flush=True)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    state = Path(args.state)
    server = load_state(state)
    if server is None:
        if not args.quiet:
            log(f"no server recorded in {state}")
        return 0
    t0 = time.monotonic()
    stop_server(server, grace=args.grace)
    state.unlink(missing_ok=True)
    if not args.quiet:
        log(f"stopped LocalStack (pid {server.pid}) in {time.monotonic() - t0:.1f} s")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    server = load_state(Path(args.state))
    if server is None or not is_running(server):
        print("not running")
        return 1
    ready = _ready(server.endpoint)
    print(
        f"{server.endpoint} pid={server.pid} ready={ready} "
        f"rss={rss_kib(server) / 1024:.0f}MiB log={server.log_path}"
    )
    return 0 if ready else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = p.add_subparsers(dest="cmd", required=True)

    sp = sub.add_parser("install", help="create .localstack/venv and install LocalStack")
    sp.add_argument("--force", action="store_true", help="reinstall even if the stamp matches")
    sp.set_defaults(func=cmd_install)

    for name, func, hlp in (
        ("start", cmd_start, "start LocalStack; print its endpoint URL"),
        ("stop", cmd_stop, "stop the LocalStack recorded in the state file"),
        ("status", cmd_status, "show the LocalStack recorded in the state file"),
    ):
        sp = sub.add_parser(name, help=hlp)
        sp.add_argument("--state", default=str(DEFAULT_STATE), help="state file (JSON)")
        sp.set_defaults(func=func)
        if name == "start":
            sp.add_argument("--timeout", type=float, default=START_TIMEOUT)
            sp.add_argument("--install", action="store_true", help="install first if needed")
        if name == "stop":
            sp.add_argument("--grace", type=float, default=STOP_GRACE)
            sp.add_argument("--quiet", action="store_true")

    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
