"""CodePipeline manual approvals: single-use tokens, expiry, notifications and PutApprovalResult.

When an ``Approval``/``Manual`` action starts, ``on_action_started`` gives its
run a fresh token and an expiry (7 days, as AWS; the admin API can shorten it
for tests) and, when the action has a ``NotificationArn``, publishes
CodePipeline's documented notification JSON to that SNS topic in moto, as the
real service does.  GetPipelineState shows the token while the action waits - except in a
PARALLEL pipeline, where (as the PutApprovalResult reference says) it shows
none: there ListActionExecutions gives the approval's ``externalExecutionId``,
which is what the notification carries and PutApprovalResult takes.

``PutApprovalResult`` (validated against botocore's model before it gets here)
finds the approval by token and completes the action: ``Approved`` succeeds it,
``Rejected`` fails it, and the summary is recorded.  Its errors are the real
ones: ``PipelineNotFoundException``, ``StageNotFoundException``,
``ActionNotFoundException``, ``InvalidApprovalTokenException`` (a token this
action never had) and ``ApprovalAlreadyCompletedException`` (decided, expired
or abandoned).

Expiry is applied lazily: every CodePipeline read or write first fails the
approvals whose time is up, so tests never wait on a timer thread.
"""

from __future__ import annotations

import datetime
import json
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.sns.models import sns_backends

from .codepipeline import ActionRun, CodePipelineExtension, Execution
from .context import RequestContext
from .model import ApiError

DEFAULT_TTL = datetime.timedelta(days=7)
EXPIRED_MESSAGE = "The approval request expired before anyone approved or rejected it."
# Operations that look at executions: each first expires what is due.
_EXPIRING_READS = ("GetPipelineState", "GetPipelineExecution", "ListPipelineExecutions", "ListActionExecutions")

Handler = Callable[[RequestContext, dict[str, Any]], dict[str, Any]]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass
class PendingApproval:
    """One approval action run and what happened to it."""

    token: str
    account_id: str
    region: str
    pipeline_name: str
    execution_id: str
    stage_name: str
    action_name: str
    run: ActionRun
    expires: datetime.datetime
    notification_arn: str | None = None
    notification_error: str | None = None
    status: str = "Waiting"  # Waiting, Approved, Rejected, Expired, Abandoned
    summary: str | None = None
    approved_at: datetime.datetime | None = None
    decided_by: str | None = None

    def view(self) -> dict[str, Any]:
        """The admin API's read-back of this approval."""
        self.refresh()
        return {
            "pipelineName": self.pipeline_name,
            "pipelineExecutionId": self.execution_id,
            "stageName": self.stage_name,
            "actionName": self.action_name,
            "token": self.token,
            "status": self.status,
            "summary": self.summary,
            "expires": self.expires.isoformat(),
            "approvedAt": self.approved_at.isoformat() if self.approved_at else None,
            "decidedBy": self.decided_by,
            "notificationArn": self.notification_arn,
            "notificationError": self.notification_error,
        }

    def refresh(self) -> None:
        """A waiting approval whose run ended some other way (execution stopped) is abandoned."""
        if self.status == "Waiting" and self.run.status != "InProgress":
            self.status = "Abandoned"
        if self.status != "Waiting":
            # GetPipelineState shows a token only while the approval waits for it.
            self.run.token = None


class ManualApprovals:
    """The approval engine hooked into ``CodePipelineExtension``."""

    def __init__(self, lock: threading.RLock, codepipeline: CodePipelineExtension):
        self._lock = lock
        self._codepipeline = codepipeline
        self._approvals: dict[str, PendingApproval] = {}
        self.ttl = DEFAULT_TTL
        self.install()

    def install(self) -> None:
        """(Re)register the hook; ``reset`` of the tests' harness may have cleared it."""
        self._codepipeline.on_action_started[("Approval", "Manual")] = self._start

    def reset(self) -> None:
        with self._lock:
            self._approvals.clear()
            self.ttl = DEFAULT_TTL
            self.install()

    def operations(self, reads: dict[str, Handler]) -> dict[str, Handler]:
        """PutApprovalResult, and the execution reads wrapped so expiry is applied first."""

        def expiring(handler: Handler) -> Handler:
            def run(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
                self.expire_due()
                return handler(ctx, params)

            return run

        wrapped = {name: expiring(reads[name]) for name in _EXPIRING_READS if name in reads}
        return {**wrapped, "PutApprovalResult": self.put_approval_result}

    # --- the hook ----------------------------------------------------------------------

    def _start(self, execution: Execution, run: ActionRun) -> None:
        now = _now()
        run.token = str(uuid.uuid4())
        if execution.execution_mode == "PARALLEL":
            run.request_id = run.token
        account_id = self._account_of(execution)
        approval = PendingApproval(
            token=run.token,
            account_id=account_id,
            region=execution.region,
            pipeline_name=execution.pipeline_name,
            execution_id=execution.pipeline_execution_id,
            stage_name=run.stage_name,
            action_name=run.name,
            run=run,
            expires=now + self.ttl,
            notification_arn=run.configuration.get("NotificationArn"),
        )
        self._approvals[run.token] = approval
        if approval.notification_arn:
            self._notify(approval, run.configuration)

    def _account_of(self, execution: Execution) -> str:
        for arn in (execution.trigger_detail, execution.definition.get("roleArn", "")):
            parts = (arn or "").split(":")
            if len(parts) > 4 and parts[4].isdigit():
                return parts[4]
        return "123456789012"

    def _notify(self, approval: PendingApproval, configuration: dict[str, str]) -> None:
        """Publish CodePipeline's approval notification to the action's topic, in moto."""
        region = approval.region
        console = f"https://console.aws.amazon.com/codepipeline/home?region={region}#/view/{approval.pipeline_name}"
        details: dict[str, Any] = {
            "pipelineName": approval.pipeline_name,
            "stageName": approval.stage_name,
            "actionName": approval.action_name,
            "token": approval.token,
            "expires": approval.expires.strftime("%Y-%m-%dT%H:%MZ"),
        }
        if configuration.get("ExternalEntityLink"):
            details["externalEntityLink"] = configuration["ExternalEntityLink"]
        details["approvalReviewLink"] = (
            f"{console}/{approval.stage_name}/{approval.action_name}/approve/{approval.token}"
        )
        if configuration.get("CustomData"):
            details["customData"] = configuration["CustomData"]
        message = {"region": region, "consoleLink": console, "approval": details}
        subject = f"APPROVAL NEEDED: AWS CodePipeline {approval.pipeline_name} for action {approval.action_name}"
        arn = approval.notification_arn or ""
        parts = arn.split(":")
        try:
            if len(parts) != 6 or parts[2] != "sns":
                raise ValueError(f"{arn!r} is not an SNS topic ARN")
            sns_backends[parts[4]][parts[3]].publish(json.dumps(message), arn=arn, subject=subject[:100])
        except Exception as exc:  # the approval still waits, as it would if SNS were down
            approval.notification_error = repr(exc)
            print(f"emulator: approval notification to {arn} failed: {exc!r}", file=sys.stderr)

    # --- expiry ------------------------------------------------------------------------

    def expire_due(self) -> None:
        """Fail every waiting approval whose expiry has passed."""
        with self._lock:
            now = _now()
            for approval in list(self._approvals.values()):
                approval.refresh()
                if approval.status == "Waiting" and approval.expires <= now:
                    approval.status = "Expired"
                    approval.refresh()
                    self._codepipeline.complete_action(
                        approval.execution_id,
                        approval.stage_name,
                        approval.action_name,
                        "Failed",
                        error=EXPIRED_MESSAGE,
                        error_code="JobFailed",
                    )

    def set_ttl(self, seconds: float) -> None:
        with self._lock:
            self.ttl = datetime.timedelta(seconds=seconds)

    def views(self) -> list[dict[str, Any]]:
        self.expire_due()
        with self._lock:
            return [approval.view() for approval in self._approvals.values()]

    # --- PutApprovalResult -------------------------------------------------------------

    def put_approval_result(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self.expire_due()
        name, stage_name, action_name = params["pipelineName"], params["stageName"], params["actionName"]
        pipeline, _ = self._codepipeline._pipeline(ctx, name)
        stage = next((s for s in pipeline.pipeline["stages"] if s["name"] == stage_name), None)
        if stage is None:
            raise ApiError("StageNotFoundException", f"Stage {stage_name} not found in pipeline {name}")
        action = next((a for a in stage["actions"] if a["name"] == action_name), None)
        if action is None or action["actionTypeId"]["category"] != "Approval":
            raise ApiError(
                "ActionNotFoundException",
                f"Approval action {action_name} not found in stage {stage_name} of pipeline {name}",
            )
        approval = self._approvals.get(params["token"])
        if approval is None or (approval.account_id, approval.pipeline_name, approval.stage_name, approval.action_name) != (
            ctx.account_id,
            name,
            stage_name,
            action_name,
        ):
            raise ApiError(
                "InvalidApprovalTokenException",
                f"The token for action {action_name} in stage {stage_name} of pipeline {name} is not valid",
            )
        approval.refresh()
        if approval.status != "Waiting":
            raise ApiError(
                "ApprovalAlreadyCompletedException",
                f"The approval action {action_name} in stage {stage_name} of pipeline {name} is already "
                f"{approval.status.lower()}",
            )
        decision = params["result"]["status"]
        summary = params["result"]["summary"]
        approval.status, approval.summary = decision, summary or None
        approval.refresh()
        approval.approved_at = _now()
        approval.decided_by = ctx.caller_arn()
        if decision == "Approved":
            self._codepipeline.complete_action(
                approval.execution_id, stage_name, action_name, "Succeeded", summary=summary, updated_by=approval.decided_by
            )
        else:
            self._codepipeline.complete_action(
                approval.execution_id,
                stage_name,
                action_name,
                "Failed",
                summary=summary,
                error=summary or "Rejected",
                error_code="JobFailed",
                updated_by=approval.decided_by,
            )
        return {"approvedAt": approval.approved_at}
