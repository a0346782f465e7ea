"""The EventBridge events CodePipeline emits when an execution, a stage or an action changes state.

CodePipeline sends ``CodePipeline Pipeline Execution State Change``, ``CodePipeline Stage
Execution State Change`` and ``CodePipeline Action Execution State Change`` to the account's
default event bus ("Monitoring CodePipeline events" in the user guide).  Here the engine
(``codepipeline.py``) calls ``observe(execution)`` after every change; the states seen are
compared with the ones already told, and an event is recorded for each transition, in the order
CodePipeline makes them: the execution's STARTED first, then stage by stage its STARTED, its
actions' STARTED and end, its own end, and the execution's end last.  A run that is created
already finished (a Source action succeeds at once) gets its STARTED before its end.

The shapes follow the user guide's emitted events and aws-lambda-rust-runtime's public
fixtures (``lambda-events/src/fixtures/example-codepipeline-*.json``): ``account`` and
``region`` as strings, ``time`` as ``2017-04-22T03:31:47Z``, ``resources`` the pipeline's ARN,
``detail.version`` the pipeline's version (a number), ``pipeline-execution-attempt`` a float
(``1.0``); stage events add ``stage``; action events add ``stage``, ``action``, ``region``,
``type`` ({owner, provider, category, version}) and, once the action ended, ``execution-result``
({external-execution-url, external-execution-summary, external-execution-id, error-code}).

Nothing invokes anything: the test harness reads the events (admin API) and delivers the ones
its rule routes to the function, as EventBridge would.
"""

from __future__ import annotations

import datetime
import threading
import uuid
from typing import Any

SOURCE = "aws.codepipeline"
PIPELINE = "CodePipeline Pipeline Execution State Change"
STAGE = "CodePipeline Stage Execution State Change"
ACTION = "CodePipeline Action Execution State Change"

# The API's statuses as the events spell them.
EXECUTION_STATES = {
    "InProgress": "STARTED",
    "Stopping": "STOPPING",
    "Stopped": "STOPPED",
    "Succeeded": "SUCCEEDED",
    "Failed": "FAILED",
    "Superseded": "SUPERSEDED",
    "Cancelled": "CANCELED",
}
STAGE_STATES = EXECUTION_STATES
ACTION_STATES = {
    "InProgress": "STARTED",
    "Succeeded": "SUCCEEDED",
    "Failed": "FAILED",
    "Abandoned": "ABANDONED",
}


def _time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PipelineEvents:
    """Every state change event of every execution, in the order emitted."""

    def __init__(self, lock: threading.RLock):
        self._lock = lock
        self._events: list[dict[str, Any]] = []
        # What was told already: (execution id, kind, name...) -> state.
        self._told: dict[tuple[str, ...], str] = {}

    def reset(self) -> None:
        with self._lock:
            self._events.clear()
            self._told.clear()

    def list(self, pipeline: str | None = None, after: int = 0) -> dict[str, Any]:
        """The events after sequence number ``after`` (of one pipeline, or all), oldest first."""
        with self._lock:
            found = [
                {"sequence": index + 1, "event": event}
                for index, event in enumerate(self._events)
                if index + 1 > after and (pipeline is None or event["detail"]["pipeline"] == pipeline)
            ]
            return {"events": found, "last": len(self._events)}

    # --- recording ---------------------------------------------------------------------

    def observe(self, execution: Any) -> None:
        """Record an event for every state of ``execution`` that changed since it was last told."""
        with self._lock:
            eid = execution.pipeline_execution_id
            self._transition(
                execution, (eid, "pipeline"), "InProgress", EXECUTION_STATES, PIPELINE, {}, start_only=True
            )
            for index, stage in enumerate(execution.stages):
                stage_key = (eid, "stage", str(index))
                self._transition(execution, stage_key, "InProgress", STAGE_STATES, STAGE, {"stage": stage.name}, start_only=True)
                for run in stage.actions:
                    self._action(execution, stage.name, run)
                if stage.status != "InProgress":
                    self._transition(execution, stage_key, stage.status, STAGE_STATES, STAGE, {"stage": stage.name})
            if execution.status != "InProgress":
                self._transition(execution, (eid, "pipeline"), execution.status, EXECUTION_STATES, PIPELINE, {})

    def _action(self, execution: Any, stage_name: str, run: Any) -> None:
        key = (execution.pipeline_execution_id, "action", run.action_execution_id)
        declaration = run.declaration
        kind = declaration["actionTypeId"]
        extra: dict[str, Any] = {
            "stage": stage_name,
            "action": run.name,
            "region": declaration.get("region") or execution.region,
            "type": {
                "owner": kind.get("owner", "AWS"),
                "provider": kind["provider"],
                "category": kind["category"],
                "version": kind.get("version", "1"),
            },
        }
        self._transition(execution, key, "InProgress", ACTION_STATES, ACTION, extra, start_only=True)
        if run.status == "InProgress":
            return
        result = {
            "external-execution-url": run.external_execution_url,
            "external-execution-summary": run.summary,
            "external-execution-id": run.external_execution_id or getattr(run, "request_id", None),
            "error-code": run.error_code if run.status == "Failed" else None,
        }
        result = {k: v for k, v in result.items() if v}
        if result:
            extra = {**extra, "execution-result": result}
        self._transition(execution, key, run.status, ACTION_STATES, ACTION, extra)

    def _transition(
        self,
        execution: Any,
        key: tuple[str, ...],
        status: str,
        states: dict[str, str],
        detail_type: str,
        extra: dict[str, Any],
        start_only: bool = False,
    ) -> None:
        state = states.get(status)
        if state is None:
            return
        told = self._told.get(key)
        if start_only:
            if told is not None:
                return
        elif told == state:
            return
        self._told[key] = state
        detail: dict[str, Any] = {
            "pipeline": execution.pipeline_name,
            "execution-id": execution.pipeline_execution_id,
            "state": state,
            "version": execution.pipeline_version,
            "pipeline-execution-attempt": 1.0,
        }
        if detail_type == PIPELINE:
            detail["execution-trigger"] = {
                "trigger-type": "StartPipelineExecution",
                "trigger-detail": execution.trigger_detail,
            }
            if state == "STOPPING" and execution.stop_reason:
                detail["stop-execution-comments"] = execution.stop_reason
        detail.update(extra)
        self._events.append(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": detail_type,
                "source": SOURCE,
                "account": execution.account_id,
                "time": _time(datetime.datetime.now(datetime.timezone.utc)),
                "region": execution.region,
                "resources": [f"arn:aws:codepipeline:{execution.region}:{execution.account_id}:{execution.pipeline_name}"],
                "detail": detail,
            }
        )
