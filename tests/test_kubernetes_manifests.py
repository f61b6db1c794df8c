"""The Kubernetes kit in deploy/kubernetes/: valid manifests that agree with each other.

Built-in kinds are validated by kubernetes-validate (the API's OpenAPI schemas
ship in the package: no cluster, no network) in strict mode, so a misspelt
field fails. KEDA's ``ScaledObject`` and ``TriggerAuthentication`` are checked
against the fields of KEDA's CRDs (keda.sh/v1alpha1, config/crd/bases in
kedacore/keda) that the kit uses, written out below, with unknown fields refused.
Then the parts must agree: probes on the health port ``sqsw run --health-port``
serves, the scrape port, a grace period that covers the warm stop, KEDA's
target, the IAM actions sqsw calls.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from sqsw_core import SQSEnv, create_standard_queue
from sqsw_core.shutdown_policies import IdleShutdown
from sqsw_memory import MemorySession
from tests.helpers import InterceptedClient

KIT = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    "required": ["name"],
    "additionalProperties": False,
}
_INT32_MIN0 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}

#: keda.sh/v1alpha1 ScaledObject: the CRD's fields this kit uses (unknown fields refused).
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string", "minLength": 1},
                        "envSourceContainerName": {"type": "string"},
                    },
                    "required": ["name"],
                    "additionalProperties": False,
                },
                "pollingInterval": {**_INT32_MIN0, "minimum": 1},
                "cooldownPeriod": _INT32_MIN0,
                "initialCooldownPeriod": _INT32_MIN0,
                "idleReplicaCount": _INT32_MIN0,
                "minReplicaCount": _INT32_MIN0,
                "maxReplicaCount": {**_INT32_MIN0, "minimum": 1},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string", "minLength": 1},
                            "name": {"type": "string"},
                            "metadata": _STRING_MAP,
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                                "required": ["name"],
                                "additionalProperties": False,
                            },
                        },
                        "required": ["metadata", "type"],
                        "additionalProperties": False,
                    },
                },
            },
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
        },
    },
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
}

#: keda.sh/v1alpha1 TriggerAuthentication with a pod identity (the fields used).
TRIGGER_AUTHENTICATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "properties": {
                "podIdentity": {
                    "type": "object",
                    "properties": {
                        "provider": {"enum": ["azure-workload", "gcp", "aws", "aws-eks", "none"]},
                        "identityOwner": {"enum": ["keda", "workload"]},
                        "roleArn": {"type": "string"},
                    },
                    "required": ["provider"],
                    "additionalProperties": False,
                }
            },
            "additionalProperties": False,
        },
    },
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
}

#: aws-sqs-queue trigger metadata KEDA reads (pkg/scalers/aws_sqs_queue_scaler.go).
SQS_TRIGGER_KEYS = {
    "queueURL",
    "queueURLFromEnv",
    "queueLength",
    "activationQueueLength",
    "awsRegion",
    "awsEndpoint",
    "identityOwner",
    "scaleOnInFlight",
    "scaleOnDelayed",
}

#: The SQS actions a worker needs, by the API calls sqsw makes while running jobs.
WORKER_ACTIONS = {
    "sqs:GetQueueUrl": "GetQueueUrl: each queue's URL, once per process",
    "sqs:GetQueueAttributes": "GetQueueAttributes: visibility timeout, FIFO settings",
    "sqs:ReceiveMessage": "ReceiveMessage",
    "sqs:DeleteMessage": "DeleteMessageBatch: acks",
    "sqs:ChangeMessageVisibility": "ChangeMessageVisibilityBatch: backoff, heartbeat, release",
    "sqs:SendMessage": "SendMessage(Batch): long-delay hops, jobs that send jobs",
}


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((KIT / name).read_text()) if d]


def _by_kind() -> dict[str, dict[str, Any]]:
    kustomization = _documents("kustomization.yaml")[0]
    found: dict[str, dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for document in _documents(resource):
            found[document["kind"]] = document
    return found


def _worker() -> dict[str, Any]:
    return _by_kind()["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def _flag(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return value


def test_the_kustomization_lists_every_manifest_of_the_kit() -> None:
    manifests = {p.name for p in KIT.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(_documents("kustomization.yaml")[0]["resources"]) == manifests
    assert set(_by_kind()) == {
        "ServiceAccount",
        "Deployment",
        "TriggerAuthentication",
        "ScaledObject",
    }


@pytest.mark.parametrize("kind", ["ServiceAccount", "Deployment"])
def test_built_in_kinds_are_valid_for_the_kubernetes_api(kind: str) -> None:
    kubernetes_validate.validate(_by_kind()[kind], KUBERNETES_VERSION, strict=True)


def test_the_validation_would_catch_a_misspelt_field() -> None:
    deployment = _by_kind()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_keda_objects_match_the_crd_fields_and_the_sqs_trigger() -> None:
    kinds = _by_kind()
    jsonschema.validate(kinds["ScaledObject"], SCALED_OBJECT_SCHEMA)
    jsonschema.validate(kinds["TriggerAuthentication"], TRIGGER_AUTHENTICATION_SCHEMA)
    spec = kinds["ScaledObject"]["spec"]
    assert spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert set(trigger["metadata"]) <= SQS_TRIGGER_KEYS
    assert int(trigger["metadata"]["queueLength"]) >= 1
    assert re.fullmatch(r"https://sqs\.[a-z0-9-]+\.amazonaws\.com/\d{12}/[\w-]+(\.fifo)?",
                        trigger["metadata"]["queueURL"])  # fmt: skip
    assert (
        trigger["authenticationRef"]["name"] == kinds["TriggerAuthentication"]["metadata"]["name"]
    )
    assert spec["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"]


def test_the_structural_check_would_catch_a_misspelt_keda_field() -> None:
    scaled = _by_kind()["ScaledObject"]
    scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)


def test_probes_and_scraping_use_the_ports_sqsw_run_serves() -> None:
    kinds = _by_kind()
    worker = _worker()
    args = worker["args"]
    assert args[0] == "run"
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert ports["health"] == int(_flag(args, "health-port"))
    assert ports["metrics"] == int(_flag(args, "metrics-port"))
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    annotations = kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert annotations["prometheus.io/path"] == "/metrics"
    exposed = re.findall(r"^EXPOSE (.+)$", (KIT / "Dockerfile").read_text(), re.MULTILINE)
    assert set(exposed[0].split()) == {str(p) for p in ports.values()}


def test_the_termination_grace_period_covers_the_warm_stop() -> None:
    pod = _by_kind()["Deployment"]["spec"]["template"]["spec"]
    args = _worker()["args"]
    needed = float(_flag(args, "grace-period")) + float(_flag(args, "wait-seconds"))
    assert pod["terminationGracePeriodSeconds"] >= needed + 10
    assert pod["serviceAccountName"] == _by_kind()["ServiceAccount"]["metadata"]["name"]


def test_the_iam_policy_grants_exactly_the_sqs_actions_a_worker_calls() -> None:
    policy = json.loads((KIT / "iam-policy.json").read_text())
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == set(WORKER_ACTIONS)
    assert all("*" not in resource for resource in statement["Resource"])
    queue_url = _by_kind()["ScaledObject"]["spec"]["triggers"][0]["metadata"]["queueURL"]
    region, account, name = re.findall(r"sqs\.([^.]+)\.amazonaws\.com/(\d+)/(.+)$", queue_url)[0]
    assert f"arn:aws:sqs:{region}:{account}:{name}" in statement["Resource"]


def test_the_image_installs_the_wheels_build_dists_makes() -> None:
    dockerfile = (KIT / "Dockerfile").read_text()
    assert "COPY dist/*.whl" in dockerfile and "scripts/build-dists.sh" in dockerfile
    assert re.search(r"^USER \d+$", dockerfile, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["sqsw"\]$', dockerfile, re.MULTILINE)


class _Recorder(InterceptedClient):
    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.operations: set[str] = set()

    def intercept(self, operation: str, target: Any, params: dict[str, Any]) -> Any:
        self.operations.add(operation)
        return target(**params)


def test_a_worker_needs_exactly_the_actions_of_the_iam_policy() -> None:
    """A worker (sqsw run's engine) whose jobs succeed, fail, send jobs and wait past a
    delay hop needs every action of the policy, and no other."""
    session = MemorySession()
    producer = SQSEnv(session, max_delay_hop=1)
    create_standard_queue(producer, "work")
    recorder = _Recorder(producer.sqs_client)
    worker = SQSEnv(session, sqs_client=recorder, backoff_policy="immediate", max_delay_hop=1)
    queue = worker.queue("work")
    runs: list[str] = []

    @queue.processor("step")
    def step(name: str) -> None:
        runs.append(name)
        if name == "flaky" and runs.count(name) == 1:
            raise RuntimeError("fails once")
        if name == "first":
            step.delay(name="sent by a job")

    for name in ("first", "flaky"):
        producer.queue("work").add_job("step", name=name)
    producer.queue("work").add_job("step", name="later", _delay_seconds=2)
    queue.process_queue(IdleShutdown(2.5), wait_seconds=1, handle_signals=False)
    assert sorted(runs) == ["first", "flaky", "flaky", "later", "sent by a job"]
    action_of = {
        "DeleteMessageBatch": "DeleteMessage",
        "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
        "SendMessageBatch": "SendMessage",
    }
    # interrupt_receives is the in-memory SQS's own way to end a long poll, not an SQS API.
    called = {f"sqs:{action_of.get(op, op)}" for op in recorder.operations - {"InterruptReceives"}}
    policy = json.loads((KIT / "iam-policy.json").read_text())
    assert called == set(policy["Statement"][0]["Action"])
