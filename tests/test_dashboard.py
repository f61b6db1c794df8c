"""sqsw-dashboard over HTTP (no browser): what its pages show, what its actions do to
the queues (checked through SQS), and what it refuses.

Each test drives the dashboard's ASGI app with starlette's TestClient, on the
in-memory SQS and on LocalStack (``make_env``). The browser tests are in
tests/test_dashboard_browser.py.
"""

from __future__ import annotations

import base64
import html
import json
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from sqsw_core import RedrivePolicy, SQSEnv, create_standard_queue
from sqsw_dashboard import Credentials, Dashboard, DashboardOptions, create_app
from sqsw_dashboard.redrive_runs import RedriveRuns
from sqsw_dashboard.sampling import Sample, rates, sparkline
from sqsw_deadletter import DeadLetterQueue
from sqsw_signing import SigningCodec
from tests.helpers import (
    cli_environ,
    expect_counts,
    on_memory,
    one_error_line,
    queue_counts,
    queue_with_dead_letters,
    receive_all,
    run_sqsw,
    wait_until,
)

KEY = "k" * 32


def client_for(env: SQSEnv, **options: Any) -> TestClient:
    board = Dashboard(env, DashboardOptions(**options))
    return TestClient(create_app(board, sample=False), raise_server_exceptions=False)


def csrf_token(client: TestClient) -> str:
    page = client.get("/").text
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found, page
    return found.group(1)


def post(client: TestClient, path: str, data: Any = None) -> Any:
    """POST a form with the page's CSRF token; ``data``: a dict or (name, value) pairs."""
    pairs = list(data.items()) if isinstance(data, dict) else list(data or [])
    fields: dict[str, list[str]] = {"csrf_token": [csrf_token(client)]}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return client.post(path, data=fields)


def fail_into_dead_letters(work: Any, dead: Any, count: int) -> None:
    """Receive ``work``'s messages without deleting them until SQS moved ``count`` of them
    to ``dead`` (its redrive policy allows one receive)."""

    def moved() -> bool:
        work.env.sqs_client.receive_message(
            QueueUrl=work.url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        return queue_counts(dead).visible >= count

    wait_until(moved, 15, f"{count} dead letters")
    expect_counts(dead, (count, 0, 0))
    expect_counts(work, (0, 0, 0))


def seed_dead_letters(env: SQSEnv) -> tuple[Any, Any]:
    """``work`` redriving to ``work_dead``, which holds 2 send_email and 2 resize jobs
    that failed on ``work``."""
    work, dead = queue_with_dead_letters(env, "work", 1)
    for i in range(2):
        work.add_job("send_email", to=f"u{i}@example.com")
        work.add_job("resize", image=f"i{i}.png")
    fail_into_dead_letters(work, dead, 4)
    return work, dead


def message_ids(page: str) -> dict[str, str]:
    """Message id -> job name of the browser's rows."""
    return dict(re.findall(r'data-message-id="([^"]+)" data-job="([^"]*)"', page))


def one_line_error(page: str) -> str:
    found = re.search(r'<p class="error" role="alert"[^>]*>([^<]+)</p>', page)
    assert found, page
    assert "Traceback" not in page
    return html.unescape(found.group(1))


def test_overview_shows_counts_dead_letter_queues_and_their_depth(
    make_env: Callable[..., SQSEnv],
) -> None:
    env = make_env()
    seed_dead_letters(env)
    create_standard_queue(env, "busy")
    busy = env.queue("busy")
    for i in range(3):
        busy.add_job("noop", n=i)
    busy.add_job("later", _delay_seconds=600)
    assert len(busy.get_raw_messages(max_messages=1)) == 1  # one in flight
    expect_counts(busy, (2, 1, 1))

    page = client_for(env).get("/").text
    rows = dict(re.findall(r'<tr data-queue="([^"]+)">(.*?)</tr>', page, re.S))
    assert set(rows) == {"busy", "work", "work_dead"}

    def cell(queue: str, css: str) -> str:
        found = re.search(rf'class="[^"]*\b{css}\b[^"]*"[^>]*>(.*?)</td>', rows[queue], re.S)
        assert found, rows[queue]
        return re.sub(r"<[^>]+>", "", found.group(1)).strip()

    assert [cell("busy", c) for c in ("visible", "in-flight", "delayed")] == ["2", "1", "1"]
    assert cell("work", "dead-letter") == "work_dead 4"
    assert cell("work_dead", "visible") == "4"
    assert "Dead-letter queue of work" in rows["work_dead"]
    # The oldest waiting message's age comes from CloudWatch: the memory session
    # answers it; this LocalStack runs SQS only, so the page says why it is missing.
    if on_memory(env):
        assert re.fullmatch(r"\d+ s", cell("busy", "oldest")), cell("busy", "oldest")
        assert cell("work", "oldest") == "-"  # nothing waiting
    else:
        assert cell("busy", "oldest") == "n/a"
        assert "Oldest age n/a for 3 queue(s): CloudWatch: " in page
    # The search box and the prefix filter narrow the list.
    narrowed = client_for(env).get("/?q=DEAD").text
    assert re.findall(r'<tr data-queue="([^"]+)"', narrowed) == ["work_dead"]
    by_prefix = client_for(env).get("/?prefix=b").text
    assert re.findall(r'<tr data-queue="([^"]+)"', by_prefix) == ["busy"]


def test_rates_come_from_successive_samples() -> None:
    samples = [Sample(100.0, 50, 0, 0), Sample(110.0, 30, 10, 0), Sample(120.0, 10, 10, 0)]
    # 40 left the waiting state and 30 left the queue in 20 s.
    assert rates(samples) == rates(samples, window=60)
    got = rates(samples)
    assert (got.received, got.completed) == (2.0, 1.5)
    # Only the last minute counts; one sample gives no rate.
    old = [Sample(0.0, 1000, 0, 0), *samples]
    assert rates(old).received == 2.0
    assert rates(samples[:1]).received is None
    points = sparkline(samples).split()
    assert len(points) == 3 and points[0].startswith("0.0,") and points[-1].startswith("120.0,")


def test_browser_decodes_jobs_and_releases_them(make_env: Callable[..., SQSEnv]) -> None:
    env = make_env()
    _, dead = seed_dead_letters(env)
    client = client_for(env)
    page = post(client, "/queues/work_dead/browse").text
    assert sorted(message_ids(page).values()) == ["resize", "resize", "send_email", "send_email"]
    assert "u0@example.com" in page and "i1.png" in page
    assert "Browsing receives the messages" in page
    # Released at once: all visible again, each received once more.
    expect_counts(dead, (4, 0, 0))
    shown = dict(
        re.findall(r'data-message-id="([^"]+)" data-job="[^"]*" data-receives="(\d+)"', page)
    )
    after = {
        m["MessageId"]: int(m["Attributes"]["ApproximateReceiveCount"]) for m in receive_all(dead)
    }
    assert after == {i: int(n) + 1 for i, n in shown.items()}


def test_pickle_is_shown_only_when_accepted_and_signatures_are_checked(
    make_env: Callable[..., SQSEnv],
) -> None:
    producer = make_env(codec="pickle")
    _, dead = queue_with_dead_letters(producer, "work", 1)
    dead.add_job("pickled", secret="p-value")
    signer = make_env(codec=SigningCodec(key=KEY, key_id="k1"))
    signer.queue("work_dead").add_job("signed_ok", n=1)
    body, context = SigningCodec(key=KEY, key_id="k1").encode_job("signed_bad", {"n": 1}, {})
    signer.queue("work_dead").add_raw_job(
        "signed_bad", body.replace('\\"n\\": 1', '\\"n\\": 2'), context, "signed"
    )
    expect_counts(dead, (3, 0, 0))

    plain = post(client_for(make_env()), "/queues/work_dead/browse").text
    assert "p-value" not in plain
    assert "does not accept content type &#39;pickle&#39;" in plain
    assert "no signing keys configured" in plain

    trusting = make_env(codec=SigningCodec(key=KEY, key_id="k1"), accept=["pickle"])
    page = post(client_for(trusting), "/queues/work_dead/browse").text
    assert "p-value" in page
    rows = dict(re.findall(r'data-job="([^"]+)"[^>]*>(.*?)</tr>', page, re.S))
    assert "signature verified" in rows["signed_ok"]
    assert "signature invalid" in rows["signed_bad"]
    expect_counts(dead, (3, 0, 0))


def test_redrive_of_selected_messages_moves_exactly_those(
    make_env: Callable[..., SQSEnv],
) -> None:
    env = make_env()
    work, dead = seed_dead_letters(env)
    client = client_for(env)
    ids = message_ids(post(client, "/queues/work_dead/browse").text)
    chosen = (
        sorted(i for i, job in ids.items() if job == "send_email")[:1]
        + sorted(i for i, job in ids.items() if job == "resize")[:1]
    )

    fields = [("target", "work"), *(("id", i) for i in chosen)]
    preview = post(client, "/queues/work_dead/preview", fields).text
    assert "2 message(s) would move" in preview
    expect_counts(dead, (4, 0, 0))  # a dry run moves nothing

    response = post(client, "/queues/work_dead/redrive", fields)
    assert response.status_code == 200 and "/redrives/" in str(response.url)
    run_url = str(response.url) + ".json"
    wait_until(lambda: client.get(run_url).json()["state"] != "running", 30, "the redrive")
    run = client.get(run_url).json()
    assert (run["state"], run["moved"], run["failed"]) == ("done", 2, 0)
    moved = receive_all(work, expected=2)
    assert sorted(m["MessageAttributes"]["JobName"]["StringValue"] for m in moved) == [
        "resize",
        "send_email",
    ]
    left = {m["MessageId"] for m in receive_all(dead, expected=2)}
    assert left == set(ids) - set(chosen)
    assert "redrove work_dead (2 message(s))" in client.get("/").text


def test_filtered_redrive_preview_and_bad_filters(make_env: Callable[..., SQSEnv]) -> None:
    env = make_env()
    work, dead = seed_dead_letters(env)
    client = client_for(env)
    preview = post(client, "/queues/work_dead/preview", {"job": "resize", "target": "work"}).text
    assert "2 message(s) would move" in preview
    assert preview.count("<td>resize</td>") == 2 and "<td>send_email</td>" not in preview

    bad = post(client, "/queues/work_dead/preview", {"min_age": "soon", "target": "work"})
    assert bad.status_code == 400
    assert one_line_error(bad.text) == "Bad filter: 'min-age=soon': not a number"
    negative = post(client, "/queues/work_dead/redrive", {"max_receives": "-1", "target": "work"})
    assert one_line_error(negative.text) == (
        "Bad filter: 'max-receives=-1': max-receives must be a number >= 0, got -1"
    )
    expect_counts(dead, (4, 0, 0))
    expect_counts(work, (0, 0, 0))


def test_delete_selected_deletes_only_those(make_env: Callable[..., SQSEnv]) -> None:
    env = make_env()
    _, dead = seed_dead_letters(env)
    client = client_for(env)
    ids = message_ids(post(client, "/queues/work_dead/browse").text)
    doomed = sorted(i for i, job in ids.items() if job == "resize")
    page = post(client, "/queues/work_dead/delete", [("id", i) for i in doomed]).text
    assert "Deleted 2 message(s)." in page
    left = receive_all(dead, expected=2)
    assert {m["MessageId"] for m in left} == set(ids) - set(doomed)


def test_purge_needs_the_typed_name_and_a_csrf_token(make_env: Callable[..., SQSEnv]) -> None:
    env = make_env()
    _, dead = seed_dead_letters(env)
    client = client_for(env)
    refused = post(client, "/queues/work_dead/purge", {"confirm": "work"})
    assert refused.status_code == 400
    assert one_line_error(refused.text).startswith(
        "Purge refused: type the queue name 'work_dead' in the confirmation box"
    )
    no_token = client.post("/queues/work_dead/purge", data={"confirm": "work_dead"})
    assert no_token.status_code == 403
    assert one_line_error(no_token.text).startswith("Refused: the request has no valid CSRF token")
    wrong_token = client.post(
        "/queues/work_dead/purge",
        data={"confirm": "work_dead"},
        headers={"X-CSRF-Token": "guess"},
    )
    assert wrong_token.status_code == 403
    expect_counts(dead, (4, 0, 0))
    done = post(client, "/queues/work_dead/purge", {"confirm": "work_dead"})
    assert done.status_code == 200 and "Purged work_dead" in done.text
    wait_until(lambda: queue_counts(dead) == (0, 0, 0), 10, "the purge")
    assert "purged work_dead" in client.get("/").text


def test_read_only_refuses_changes_but_shows_and_browses(make_env: Callable[..., SQSEnv]) -> None:
    env = make_env()
    _, dead = seed_dead_letters(env)
    client = client_for(env, read_only=True)
    page = client.get("/queues/work_dead").text
    assert "read-only" in page and 'id="purge-button"' not in page
    assert len(message_ids(post(client, "/queues/work_dead/browse").text)) == 4
    for path, fields in [
        ("purge", {"confirm": "work_dead"}),
        ("redrive", {"target": "work"}),
        ("enqueue", {"job": "x"}),
    ]:
        response = post(client, f"/queues/work_dead/{path}", fields)
        assert response.status_code == 403, path
        assert one_line_error(response.text).startswith("Refused: this dashboard runs with")
    expect_counts(dead, (4, 0, 0))


def test_unknown_queues_and_pages_say_so(make_env: Callable[..., SQSEnv]) -> None:
    client = client_for(make_env())
    missing = client.get("/queues/no_such_queue")
    assert missing.status_code == 404
    assert one_line_error(missing.text).startswith("No queue named 'no_such_queue' here")
    bad_name = client.get("/queues/bad%20name!")
    assert bad_name.status_code == 404
    assert "SQS queue names are 1 to 80 letters" in one_line_error(bad_name.text)
    assert client.get("/redrives/nope").status_code == 404
    assert client.get("/nothing/here").status_code == 404


def test_enqueue_checks_json_and_the_apps_signature(make_env: Callable[..., SQSEnv]) -> None:
    env = make_env()
    create_standard_queue(env, "emails")
    emails = env.queue("emails")

    @emails.processor("send")
    def send(to: str, cc: list[str] | None = None) -> None:
        pass

    client = client_for(env, app="shop.app:sqs")
    for fields, expected in [
        ({"job": "send", "arguments": "{to: 1}"}, "Arguments are not JSON: "),
        ({"job": "send", "arguments": "[1]"}, "Arguments must be a JSON object"),
        ({"job": "sned", "arguments": "{}"}, "The app has no job 'sned' on queue 'emails'"),
        ({"job": "send", "arguments": '{"bcc": "x"}'}, "The arguments do not fit job 'send'"),
        ({"job": "send", "arguments": '{"to": "a"}', "delay": "soon"}, "Bad delay 'soon'"),
    ]:
        response = post(client, "/queues/emails/enqueue", fields)
        assert response.status_code == 400, fields
        assert one_line_error(response.text).startswith(expected), fields
    expect_counts(emails, (0, 0, 0))
    sent = post(client, "/queues/emails/enqueue", {"job": "send", "arguments": '{"to": "a@b"}'})
    assert "Sent job 'send'" in html.unescape(sent.text)
    (message,) = receive_all(emails, expected=1)
    assert json.loads(message["Body"]) == {"to": "a@b"}


def test_move_task_sends_dead_letters_back_to_their_source(
    make_env: Callable[..., SQSEnv],
) -> None:
    env = make_env()
    work, dead = seed_dead_letters(env)
    client = client_for(env)
    bad_rate = post(client, "/queues/work_dead/move-task", {"rate": "9999"})
    assert "Bad rate '9999'" in one_line_error(bad_rate.text)
    started = post(client, "/queues/work_dead/move-task", {"rate": ""})
    assert "SQS is moving the messages back" in started.text
    wait_until(
        lambda: client.get("/queues/work_dead/move-tasks.json").json()[0]["status"] == "COMPLETED",
        30,
        "the move task",
    )
    assert len(receive_all(work, expected=4)) == 4
    expect_counts(dead, (0, 0, 0))


def test_auth_refuses_requests_without_credentials(make_env: Callable[..., SQSEnv]) -> None:
    token = "t" * 24
    credentials = Credentials({"ops": "s3cret"}, (token,))
    client = client_for(make_env(), credentials=credentials)
    refused = client.get("/")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")
    basic = base64.b64encode(b"ops:s3cret").decode()
    assert client.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    assert client.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    wrong = base64.b64encode(b"ops:guess").decode()
    assert client.get("/", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    assert client.get("/static/dashboard.css").status_code == 401


def test_each_overview_is_a_sample_and_rates_follow(make_env: Callable[..., SQSEnv]) -> None:
    """Each overview is a sample: rates appear once two samples are apart."""
    env = make_env()
    _, dead = seed_dead_letters(env)
    board = Dashboard(env)
    client = TestClient(create_app(board, sample=False))
    client.get("/")
    time.sleep(1.1)  # pages within a second share one round of SQS calls
    dead.get_raw_messages(max_messages=2)  # two received: waiting drops by 2
    expect_counts(dead, (2, 2, 0))
    client.get("/")
    samples = board.sampler.samples("work_dead")
    assert [(s.visible, s.in_flight) for s in samples] == [(4, 0), (2, 2)]
    got = rates(samples)
    assert got.received is not None and got.received > 0 and got.completed == 0


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("token", "use env:VARIABLE or file:PATH"),
        ("env:SQSW_TEST_NO_SUCH_VARIABLE", "variable SQSW_TEST_NO_SUCH_VARIABLE is not set"),
        ("file:/nonexistent/creds", "cannot read /nonexistent/creds"),
    ],
)
def test_bad_auth_specs_say_what_to_give(spec: str, expected: str) -> None:
    from sqsw_dashboard.auth import load_credentials

    with pytest.raises(ValueError, match=re.escape(expected)):
        load_credentials(spec)
    with pytest.raises(ValueError, match="at least 16 characters"):
        load_credentials("env:V", {"V": "short"})
    assert load_credentials("env:V", {"V": "ops:pw\n" + "x" * 16}).users == {"ops": "pw"}


def test_the_command_refuses_bad_options_in_one_line(tmp_path: Path) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    environ = cli_environ(
        {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "SQSW_REGION": "us-east-1",
            "SQSW_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens there
        }
    )
    for args, code, expected in [
        (
            ["--host", "0.0.0.0"],
            2,
            "Error: --host 0.0.0.0: listening beyond this machine needs --auth env:VARIABLE",
        ),
        (["--auth", "env:SQSW_TEST_NO_SUCH_VAR"], 2, "variable SQSW_TEST_NO_SUCH_VAR is not set"),
        (["--port", "70000"], 4, "Error: option --port: must be an integer from 0 to 65535"),
        (["--app", "no_such_module:sqs"], 3, "Error: cannot import app 'no_such_module:sqs'"),
        (["--port", "0"], 5, "Error: SQS list_queues at http://127.0.0.1:9 failed"),
        (["--port", str(taken.getsockname()[1])], 2, "choose another --port"),
    ]:
        line = one_error_line(run_sqsw("dashboard", *args, cwd=tmp_path, env=environ), code)
        assert expected in line, (args, line)
    taken.close()


def test_a_dead_letter_queue_outside_the_prefix_is_named_not_linked(
    make_env: Callable[..., SQSEnv], queue_prefix: str
) -> None:
    env = make_env()
    other = make_env(queue_prefix=f"o{queue_prefix}")  # another team's prefix
    create_standard_queue(other, "shared_dead")
    try:
        redrive = RedrivePolicy(other, "shared_dead", 2)
        create_standard_queue(env, "work", redrive_policy=redrive)
        page = client_for(env).get("/").text
        cell = re.search(r'<td class="dead-letter">(.*?)</td>', page, re.S)
        assert cell is not None
        assert f"o{queue_prefix}shared_dead (outside the prefix)" in cell.group(1)
        assert "<a " not in cell.group(1)
        assert re.findall(r'<tr data-queue="([^"]+)"', page) == ["work"]
    finally:
        other.sqs_client.delete_queue(QueueUrl=other.get_queue_url("shared_dead"))


def test_a_stopping_dashboard_moves_nothing_more(make_env: Callable[..., SQSEnv]) -> None:
    env = make_env()
    _, dead = seed_dead_letters(env)
    runs = RedriveRuns()
    runs.stop()  # the dashboard is stopping: a redrive still starting moves nothing
    run = runs.start(
        DeadLetterQueue(env, "work_dead", upstream="work"),
        None,
        total=4,
        limit=None,
        wait_seconds=0,
        description="every message",
        who="test",
    )
    wait_until(lambda: run.state != "running", 5, "the redrive to stop")
    assert (run.state, run.moved) == ("stopped", 0)
    expect_counts(dead, (4, 0, 0))


def test_queue_page_says_the_settings_in_words(make_env: Callable[..., SQSEnv]) -> None:
    env = make_env()
    create_standard_queue(env, "slow_dead")
    create_standard_queue(
        env,
        "slow",
        visibility_timeout=45,
        message_retention_period=3600,
        delay_seconds=5,
        receive_wait_time_seconds=20,
        redrive_policy=env.redrive_policy("slow_dead", 3),
    )
    page = html.unescape(client_for(env).get("/queues/slow").text)
    settings = re.search(r'<ul class="settings">(.*?)</ul>', page, re.S)
    assert settings is not None
    lines = re.findall(r"<li>(.*?)</li>", settings.group(1))
    for expected in [
        "Standard queue.",
        "A received message stays hidden 45 s (visibility timeout) before it is delivered again.",
        "Messages are kept 60 min (retention period).",
        "New messages are delayed 5 s (delivery delay).",
        "A receive waits up to 20 s for messages (long polling).",
        "A message received 3 times without being deleted moves to the dead-letter queue "
        "slow_dead.",
    ]:
        assert expected in lines, (expected, lines)
    dead = html.unescape(client_for(env).get("/queues/slow_dead").text)
    assert "This is the dead-letter queue of: slow." in dead
    assert "No dead-letter queue: a failing message is retried until it expires." in dead


def test_a_move_task_can_be_cancelled(make_env: Callable[..., SQSEnv]) -> None:
    env = make_env()
    work, dead = seed_dead_letters(env)
    client = client_for(env)
    nothing = post(client, "/queues/work_dead/move-task/cancel")
    assert one_line_error(nothing.text).startswith("Nothing to cancel: no server-side redrive")
    post(client, "/queues/work_dead/move-task", {"rate": "1"})
    cancelled = html.unescape(post(client, "/queues/work_dead/move-task/cancel").text)
    moved = int(re.search(r"Move task cancelled after (\d+) message\(s\)", cancelled).group(1))
    assert moved < 4
    tasks = client.get("/queues/work_dead/move-tasks.json").json()
    assert tasks[0]["status"] == "CANCELLED"
    # Nothing lost: what moved is on work, the rest is still dead.
    on_work = len(receive_all(work, timeout=5))
    assert on_work + len(receive_all(dead, expected=4 - on_work)) == 4
