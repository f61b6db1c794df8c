"""Worker apps that the process-level tests run as separate processes."""

from __future__ import annotations

import os
from typing import Any

from sqsw_core import AWSSession, SQSEnv


def app_env(**options: Any) -> SQSEnv:
    """The app's ``SQSEnv``: LocalStack at ``SQSW_TEST_ENDPOINT``, prefix ``APP_PREFIX``."""
    session = AWSSession(
        endpoint_url=os.environ["SQSW_TEST_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    return SQSEnv(session, queue_prefix=os.environ["APP_PREFIX"], **options)
