"""``sqsw lambda``: run an app's jobs through the Lambda handler, polling as Lambda would.

Tries a function before deploying it: the handler ``sqsw_lambda.handler(sqs)``
runs on the app's ``SQSEnv`` and a local event source mapping feeds it
(receive, invoke with the event AWS documents, delete the records not
reported as failed), against the app's session: LocalStack, the real
queue, or any SQS-compatible endpoint.
"""

from __future__ import annotations

import time
from typing import Any

import click

from sqsw_core.cli.common import (
    EXIT_CODES_HELP,
    bounded,
    console,
    env_options,
    load_app,
    settings_for,
)
from sqsw_lambda.handler import LambdaHandler
from sqsw_lambda.testing import EventSourceMapping

__all__ = ["lambda_local"]


@click.command("lambda", epilog=EXIT_CODES_HELP)
@click.argument("queue")
@click.option("--app", default=None, help="The app's SQSEnv (module:attr), as for sqsw run.")
@click.option(
    "--batch-size",
    type=int,
    default=10,
    show_default=True,
    callback=bounded(1, 10, reason="SQS returns 1 to 10 messages per receive"),
    help="Records per invocation.",
)
@click.option(
    "--idle",
    type=float,
    default=None,
    callback=bounded(0.1, integer=False, reason="seconds without a message before stopping"),
    help="Stop once the queue has been empty this many seconds (default: run until Ctrl-C).",
)
@click.option(
    "--no-change-visibility",
    is_flag=True,
    help="Leave failed records to the queue's visibility timeout (no backoff).",
)
@env_options
@click.pass_context
def lambda_local(
    ctx: click.Context,
    /,
    queue: str,
    app: str | None,
    batch_size: int,
    idle: float | None,
    no_change_visibility: bool,
    **flags: Any,
) -> None:
    """Run QUEUE's jobs through the app's Lambda handler, as an event source mapping would."""
    env = load_app(settings_for(ctx, app=app, **flags))
    function = LambdaHandler(env, change_visibility=not no_change_visibility)
    out = console(stderr=True)
    failed = 0

    def invoke(event: dict[str, Any], context: Any) -> Any:
        nonlocal failed
        answer = function(event, context)
        count = len(answer["batchItemFailures"])
        failed += count
        out.print(
            f"{context.aws_request_id}: {len(event['Records'])} record(s), "
            f"{count} reported as failed"
        )
        return answer

    mapping = EventSourceMapping(
        env.sqs_client, env.get_queue_url(queue), invoke, batch_size=batch_size
    )
    out.print(f"Polling {env.get_sqs_queue_name(queue)} (Ctrl-C stops)")
    last_message = time.monotonic()
    try:
        while idle is None or time.monotonic() - last_message < idle:
            wait = 1 if idle is None else max(0, min(20, int(idle)))
            if mapping.poll(wait_seconds=wait):
                last_message = time.monotonic()
    except KeyboardInterrupt:
        pass
    out.print(f"{mapping.invocations} invocation(s), {failed} record(s) reported as failed")
