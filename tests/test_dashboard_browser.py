"""``sqsw dashboard`` in a real browser: headless Chromium (Debian's ``chromium``, which
scripts/test.sh installs where missing) driven by Playwright, against the command
running as a user runs it, on LocalStack with seeded queues.

The overview's numbers, a filtered redrive from the queue page (checked through
SQS), a purge refused without its typed confirmation, an action refused without
the CSRF token, and 401 for a request without ``--auth`` credentials. The run saves
the screenshots the README shows (docs/images/dashboard-*.png).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sqsw_core import SQSEnv, create_standard_queue
from tests.helpers import (
    REPO,
    cli_environ,
    expect_counts,
    queue_counts,
    receive_all,
    wait_until,
)
from tests.localstack_server import REGION, localstack_endpoint
from tests.test_dashboard import fail_into_dead_letters

IMAGES = REPO / "docs" / "images"
#: Chromium flags for a machine without network: no first-run, sync or update traffic
#: (Playwright adds --headless; the profile is a fresh temporary directory).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, (
        "the dashboard's browser tests need Chromium: apt-get install chromium "
        "(scripts/test.sh installs it when run as root)"
    )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``sqsw dashboard`` running in a subprocess on a free port."""

    def __init__(
        self, endpoint: str, prefix: str, log_path: Path, *flags: str, **variables: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = cli_environ(
            {
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "SQSW_REGION": REGION,
                "SQSW_ENDPOINT_URL": endpoint,
                **variables,
            }
        )
        # Its log (the audit lines) goes to a file the tests read while it runs.
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = self._start(prefix, flags, environ, log)
        self._wait_ready()

    def _start(
        self, prefix: str, flags: tuple[str, ...], environ: dict[str, str], log: Any
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "sqsw_core.cli", "dashboard", "--queue-prefix", prefix),
                *("--port", str(self.port), "--sample-interval", "1", "--refresh", "1", *flags),
            ],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("sqsw dashboard did not start listening within 30 s")

    def log(self) -> str:
        """What the server logged so far."""
        return self.log_path.read_text()

    def stop(self) -> str:
        """Stop the server; returns its whole log."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.log()


def http(url: str, data: dict[str, str] | None = None, **headers: str) -> tuple[int, str]:
    """Status and body of a GET (or a form POST with ``data``), errors included."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def endpoint() -> str:
    """The LocalStack endpoint (these tests run against LocalStack only)."""
    found = localstack_endpoint()
    assert found, "the dashboard's browser tests need LocalStack: run scripts/test.sh"
    return found


@pytest.fixture(scope="module")
def seeded(endpoint: str) -> Iterator[tuple[SQSEnv, dict[str, Any]]]:
    """``orders`` (3 waiting, 1 in flight, 1 delayed) redriving to ``orders_dead`` (3
    send_receipt and 2 charge_card jobs that failed there), and ``audit`` (empty)."""
    from tests.conftest import make_session

    env = SQSEnv(make_session("localstack"), queue_prefix=f"b{uuid.uuid4().hex[:8]}_")
    create_standard_queue(env, "orders_dead")
    create_standard_queue(env, "orders", redrive_policy=env.redrive_policy("orders_dead", 1))
    create_standard_queue(env, "audit")
    orders, dead = env.queue("orders"), env.queue("orders_dead")
    for n in range(3):
        orders.add_job("send_receipt", order=1000 + n, email=f"buyer{n}@example.com")
    for n in range(2):
        orders.add_job("charge_card", order=2000 + n, amount_cents=1999 + n)
    fail_into_dead_letters(orders, dead, 5)
    for n in range(4):
        orders.add_job("ship", order=3000 + n)
    orders.add_job("ship", order=3999, _delay_seconds=600)
    # One in flight for the whole module (10 minutes).
    orders.env.sqs_client.receive_message(QueueUrl=orders.url, VisibilityTimeout=600)
    expect_counts(orders, (3, 1, 1))
    yield env, {"orders": orders, "dead": dead}
    for name in env.get_all_known_queues():
        env.sqs_client.delete_queue(QueueUrl=env.get_queue_url(name))


@pytest.fixture(scope="module")
def server(
    seeded: tuple[SQSEnv, dict[str, Any]], endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env, _ = seeded
    running = Server(endpoint, env.queue_prefix, tmp_path_factory.mktemp("dashboard") / "log")
    yield running
    stderr = running.stop()
    assert "Traceback" not in stderr, stderr


@pytest.fixture(scope="module")
def page(server: Server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 800},
        )
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()


def cells(page: Any, queue: str) -> dict[str, str]:
    row = page.locator(f'tr[data-queue="{queue}"]')
    return {
        name: row.locator(f"td.{name}").inner_text().strip()
        for name in ("visible", "in-flight", "delayed", "oldest", "dead-letter")
    }


def test_overview_shows_the_queues_numbers(page: Any, server: Server) -> None:
    page.goto(server.url + "/")
    assert page.locator("tr[data-queue]").count() == 3
    orders = cells(page, "orders")
    assert (orders["visible"], orders["in-flight"], orders["delayed"]) == ("3", "1", "1")
    assert orders["dead-letter"] == "orders_dead 5"
    assert cells(page, "orders_dead")["visible"] == "5"
    assert page.locator('tr[data-queue="orders_dead"] .tag.dlq').inner_text() == "DLQ"
    # LocalStack runs without CloudWatch: the age is n/a and the page says why.
    assert orders["oldest"] == "n/a"
    assert "Oldest age n/a for 3 queue(s): CloudWatch" in page.locator("tr.note").inner_text()
    # The search box hides the other rows as you type.
    page.fill("#search", "dead")
    assert page.locator("tr[data-queue]:visible").count() == 1
    page.fill("#search", "")
    # Samples every second: the table refreshes itself and the charts get points.
    chart = 'tr[data-queue="orders"] polyline'
    wait_until(lambda: len(page.get_attribute(chart, "points").split()) >= 3, 15, "3 samples")


def test_filtered_redrive_moves_exactly_the_selected_jobs(
    page: Any, server: Server, seeded: tuple[SQSEnv, dict[str, Any]]
) -> None:
    _, queues = seeded
    orders, dead = queues["orders"], queues["dead"]
    page.goto(server.url + "/queues/orders_dead")
    assert "This is the dead-letter queue of: orders." in page.inner_text("ul.settings")
    page.click("#browse")
    rows = page.locator("#browser tbody tr[data-message-id]")
    assert rows.count() == 5
    assert "Browsing receives the messages" in page.inner_text("#dead-letters")
    assert "buyer0@example.com" in page.inner_text("#browser")
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / "dashboard-queue.png"), full_page=True)

    page.fill("#filter-form input[name=job]", "charge_card")
    page.click("#preview")
    assert page.inner_text("#preview-result h3") == "2 message(s) would move"
    page.click("#redrive-previewed")
    page.wait_for_selector("#run-status.status-done")
    assert page.inner_text("#run-status") == "done: 2 moved, 0 failed of about 2"
    assert page.get_attribute("#run-progress", "value") == "100"
    # The audit log says who moved what, where, and how many.
    redrove = (
        "anonymous@127.0.0.1 redrove orders_dead (2 message(s)): to orders, "
        "filter job=charge_card, 0 failed"
    )
    wait_until(lambda: redrove in server.log(), 5, "the redrive's audit line")

    # The overview follows: the dead-letter queue's depth drops in its chart, and its
    # completed/s (from the samples of the last minute) shows the messages that left.
    page.goto(server.url + "/")
    dead_row = 'tr[data-queue="orders_dead"]'
    wait_until(lambda: page.inner_text(f"{dead_row} td.visible") == "3", 10, "the new depth")
    assert page.inner_text(f"{dead_row} td.completed-rate") not in ("-", "0.0")
    page.screenshot(path=str(IMAGES / "dashboard-overview.png"), full_page=True)

    # Through SQS: the two charge_card jobs are back on orders, the rest stayed.
    back = receive_all(orders, expected=5)
    jobs = sorted(m["MessageAttributes"]["JobName"]["StringValue"] for m in back)
    assert jobs == ["charge_card", "charge_card", "ship", "ship", "ship"]
    left = receive_all(dead, expected=3)
    assert {m["MessageAttributes"]["JobName"]["StringValue"] for m in left} == {"send_receipt"}


def test_purge_is_refused_without_the_typed_confirmation(
    page: Any, server: Server, seeded: tuple[SQSEnv, dict[str, Any]]
) -> None:
    _, queues = seeded
    page.goto(server.url + "/queues/orders_dead")
    page.fill("#purge-confirm", "orders")
    before = queue_counts(queues["dead"])
    page.click("#purge-button")
    assert page.inner_text("#error").startswith(
        "Purge refused: type the queue name 'orders_dead' in the confirmation box"
    )
    assert queue_counts(queues["dead"]) == before


def test_an_action_without_the_csrf_token_is_refused(
    server: Server, seeded: tuple[SQSEnv, dict[str, Any]]
) -> None:
    _, queues = seeded
    before = queue_counts(queues["dead"])
    status, body = http(server.url + "/queues/orders_dead/purge", {"confirm": "orders_dead"})
    assert status == 403
    assert "Refused: the request has no valid CSRF token" in body
    assert "Traceback" not in body
    assert queue_counts(queues["dead"]) == before
    refused = "was refused (purge) on orders_dead: Refused: the request has no valid CSRF"
    assert refused in server.log()


def test_without_auth_only_this_machines_host_names_are_served(server: Server) -> None:
    """A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) gets nothing."""
    assert http(server.url + "/", Host="evil.example")[0] == 400
    assert http(server.url + "/", Host=f"localhost:{server.port}")[0] == 200


def test_with_auth_a_request_without_credentials_gets_401(
    endpoint: str, seeded: tuple[SQSEnv, dict[str, Any]], tmp_path: Path
) -> None:
    env, _ = seeded
    token = "dashboard-test-token-0123456789"
    guarded = Server(
        endpoint,
        env.queue_prefix,
        tmp_path / "log",
        "--auth",
        "env:DASH_AUTH",
        DASH_AUTH=f"ops:pw\n{token}",
    )
    try:
        status, body = http(guarded.url + "/")
        assert status == 401 and "needs its --auth credentials" in body
        status, body = http(guarded.url + "/", Authorization="Bearer wrong-token-0123456789")
        assert status == 401
        status, body = http(guarded.url + "/", Authorization=f"Bearer {token}")
        assert status == 200 and 'data-queue="orders"' in body
    finally:
        guarded.stop()
