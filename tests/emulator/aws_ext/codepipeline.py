"""CodePipeline executions that actually run, on top of moto's pipeline definitions.

moto keeps Create/Get/Update/List/DeletePipeline; its StartPipelineExecution
marks executions Succeeded at once and ignores ``sourceRevisions``.  Here an
execution walks the pipeline like the real service:

* the first stage's Source actions succeed immediately with their revision
  (for CodeCommit: the commit from ``sourceRevisions`` or the tip of the
  configured branch in the emulated repository, see ``codecommit.py``);
* stages run in order, actions of a stage in ``runOrder`` groups;
* every other action goes ``InProgress`` and stays there until something calls
  ``complete_action`` - a test through the admin API, or a hook.

Hook points:

* ``on_action_started[(category, provider)] = callback(execution, action_run)``
  runs when an action of that type goes ``InProgress``; the callback may set
  ``action_run.token`` (manual approvals), ``external_execution_id``/``_url``
  (jobs) and call ``complete_action`` now or later from any thread.
  ``action_run.configuration`` has ``#{namespace.variable}`` references
  resolved, as a Lambda job's ``UserParameters`` would arrive.  Callbacks run
  under the extension lock: anything slow or calling back into the emulator
  over HTTP belongs in a thread of its own.
  ``approvals.py`` (manual approvals: PutApprovalResult) and ``jobs.py``
  (Lambda invoke actions: PutJobSuccessResult/PutJobFailureResult,
  GetJobDetails) register here and find the ``ActionRun`` by token or job id.
* ``source_resolvers[provider]`` turns a Source action (and an optional
  ``sourceRevisions`` override) into a ``SourceRevision``.

Concurrency: executions never wait for each other - every execution runs as
if ``executionMode`` were PARALLEL.  The pipeline's declared mode (V2
``executionMode``, default SUPERSEDED) is stored with each execution and
reported, but nothing is superseded or queued.  What a mode changes in what
the API shows and takes is modelled: in PARALLEL mode GetPipelineState shows
no approval token, and a manual approval is found with ListActionExecutions,
whose ``externalExecutionId`` PutApprovalResult takes as its token.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
import sys
import threading
import traceback
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from moto.codepipeline.models import CodePipeline, codepipeline_backends

from .codecommit import CodeCommitExtension
from .context import RequestContext
from .model import ApiError
from .pipeline_events import PipelineEvents

ACTIVE = ("InProgress", "Stopping")
# Which sourceRevisions revisionType each source provider accepts.
REVISION_TYPES = {
    "CodeCommit": {"COMMIT_ID"},
    "CodeStarSourceConnection": {"COMMIT_ID"},
    "GitHub": {"COMMIT_ID"},
    "ECR": {"IMAGE_DIGEST"},
    "S3": {"S3_OBJECT_VERSION_ID", "S3_OBJECT_KEY"},
}
_VARIABLE_REFERENCE = re.compile(r"#\{([A-Za-z0-9@\-_]+)\.([A-Za-z0-9@\-_]+)\}")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _non_empty(text: str | None) -> str | None:
    """Summaries have a model minimum length of 1: leave empty ones out."""
    return text or None


def _console(region: str, path: str, fragment: str = "") -> str:
    url = f"https://{region}.console.aws.amazon.com/{path}?region={region}"
    return f"{url}#{fragment}" if fragment else url


# --- execution model -----------------------------------------------------------------


@dataclass
class SourceRevision:
    """What a Source action produced: the revision and its output variables."""

    revision_id: str
    created: datetime.datetime
    summary: str | None = None
    url: str | None = None
    output_variables: dict[str, str] = field(default_factory=dict)


class SourceFailure(Exception):
    """The Source action cannot fetch its revision; the action fails with this message."""


@dataclass
class ActionRun:
    """One action's run inside one pipeline execution (GetPipelineState's ActionExecution)."""

    stage_name: str
    declaration: dict[str, Any]
    configuration: dict[str, str]
    status: str = "InProgress"
    action_execution_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    last_status_change: datetime.datetime = field(default_factory=_now)
    summary: str | None = None
    external_execution_id: str | None = None
    external_execution_url: str | None = None
    percent_complete: int | None = None  # reported by a job that continues (jobs.py)
    error_code: str | None = None
    error_message: str | None = None
    token: str | None = None
    # A manual approval of a PARALLEL pipeline: the id ListActionExecutions shows as the run's
    # externalExecutionId, which PutApprovalResult takes as its token (GetPipelineState shows none).
    request_id: str | None = None
    output_variables: dict[str, str] = field(default_factory=dict)
    # Who decided a manual approval (ListActionExecutions' updatedBy).
    updated_by: str | None = None
    revision: SourceRevision | None = None
    start_time: datetime.datetime = field(default_factory=_now)

    @property
    def name(self) -> str:
        return self.declaration["name"]

    @property
    def category(self) -> str:
        return self.declaration["actionTypeId"]["category"]

    @property
    def provider(self) -> str:
        return self.declaration["actionTypeId"]["provider"]


@dataclass
class StageRun:
    declaration: dict[str, Any]
    status: str = "InProgress"
    actions: list[ActionRun] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.declaration["name"]

    def action(self, name: str) -> ActionRun | None:
        return next((run for run in self.actions if run.name == name), None)


@dataclass
class Execution:
    pipeline_execution_id: str
    pipeline_name: str
    pipeline_version: int
    definition: dict[str, Any]  # snapshot: an execution keeps the version it started with
    region: str
    account_id: str
    trigger_detail: str
    execution_mode: str
    variables: list[tuple[str, str]]
    sources: dict[str, SourceRevision | SourceFailure]  # by Source action name
    status: str = "InProgress"
    status_summary: str | None = None
    start_time: datetime.datetime = field(default_factory=_now)
    last_update_time: datetime.datetime = field(default_factory=_now)
    stages: list[StageRun] = field(default_factory=list)
    stop_requested: bool = False
    stop_reason: str | None = None
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)

    def stage(self, name: str) -> StageRun | None:
        return next((stage for stage in self.stages if stage.name == name), None)

    def source_runs(self) -> list[ActionRun]:
        return [run for run in (self.stages[0].actions if self.stages else []) if run.revision is not None]


@dataclass
class PipelineState:
    executions: dict[str, Execution] = field(default_factory=dict)  # oldest first
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (fingerprint, execution id)


class ExecutionNotFound(LookupError):
    pass


class ActionNotInProgress(LookupError):
    pass


ActionHook = Callable[[Execution, ActionRun], None]
# (request context, Source action declaration, sourceRevisions value or None) -> revision;
# raises SourceFailure when the source cannot be fetched, ApiError for a bad override.
SourceResolver = Callable[[RequestContext, dict[str, Any], str | None], SourceRevision]


class CodePipelineExtension:
    """Handlers for the execution operations plus the engine that advances executions."""

    def __init__(self, lock: threading.RLock, codecommit: CodeCommitExtension):
        self._lock = lock
        self._codecommit = codecommit
        self._pipelines: weakref.WeakKeyDictionary[CodePipeline, PipelineState] = weakref.WeakKeyDictionary()
        self.on_action_started: dict[tuple[str, str], ActionHook] = {}
        self.source_resolvers: dict[str, SourceResolver] = {"CodeCommit": self._codecommit_source}
        # The EventBridge events of every state change (pipeline_events.py).
        self.events = PipelineEvents(lock)

    def operations(self) -> dict[str, Callable[[RequestContext, dict[str, Any]], dict[str, Any]]]:
        return {
            "StartPipelineExecution": self.start_pipeline_execution,
            "StopPipelineExecution": self.stop_pipeline_execution,
            "GetPipelineExecution": self.get_pipeline_execution,
            "ListPipelineExecutions": self.list_pipeline_executions,
            "GetPipelineState": self.get_pipeline_state,
            "ListActionExecutions": self.list_action_executions,
        }

    def reset(self) -> None:
        with self._lock:
            self._pipelines.clear()
            self.events.reset()

    # --- lookups -----------------------------------------------------------------------

    def _pipeline(self, ctx: RequestContext, name: str) -> tuple[CodePipeline, PipelineState]:
        pipeline = codepipeline_backends[ctx.account_id][ctx.region].pipelines.get(name)
        if pipeline is None:
            raise ApiError(
                "PipelineNotFoundException",
                f"Account '{ctx.account_id}' does not have a pipeline with name '{name}'",
            )
        return pipeline, self._pipelines.setdefault(pipeline, PipelineState())

    def _execution(self, ctx: RequestContext, pipeline_name: str, execution_id: str) -> Execution:
        _, state = self._pipeline(ctx, pipeline_name)
        execution = state.executions.get(execution_id)
        if execution is None:
            raise ApiError(
                "PipelineExecutionNotFoundException",
                f"Account '{ctx.account_id}' does not have an execution with id "
                f"'{execution_id}' for pipeline '{pipeline_name}'",
            )
        return execution

    def find_execution(self, execution_id: str) -> Execution:
        """Any pipeline's execution by id (the admin API names executions by id only)."""
        with self._lock:
            for state in list(self._pipelines.values()):
                if execution_id in state.executions:
                    return state.executions[execution_id]
        raise ExecutionNotFound(f"no pipeline execution {execution_id}")

    # --- StartPipelineExecution --------------------------------------------------------

    def start_pipeline_execution(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        pipeline, state = self._pipeline(ctx, params["name"])
        overrides = params.get("sourceRevisions", [])
        fingerprint = json.dumps(
            {
                "variables": sorted((v["name"], v["value"]) for v in params.get("variables", [])),
                "sourceRevisions": sorted(
                    (o["actionName"], o["revisionType"], o["revisionValue"]) for o in overrides
                ),
            }
        )
        token = params.get("clientRequestToken")
        if token is not None and token in state.tokens:
            known_fingerprint, execution_id = state.tokens[token]
            if known_fingerprint != fingerprint:
                raise ApiError(
                    "ConflictException",
                    f"The clientRequestToken {token} was already used for pipeline "
                    f"'{params['name']}' with different parameters",
                )
            return {"pipelineExecutionId": execution_id}

        definition = copy.deepcopy(pipeline.pipeline)
        execution = Execution(
            pipeline_execution_id=str(uuid.uuid4()),
            pipeline_name=definition["name"],
            pipeline_version=definition["version"],
            definition=definition,
            region=ctx.region,
            account_id=ctx.account_id,
            trigger_detail=ctx.caller_arn(),
            execution_mode=definition.get("executionMode", "SUPERSEDED"),
            variables=self._resolve_variables(definition, params.get("variables", [])),
            sources={},
        )
        execution.sources = self._resolve_sources(ctx, execution, overrides)
        state.executions[execution.pipeline_execution_id] = execution
        if token is not None:
            state.tokens[token] = (fingerprint, execution.pipeline_execution_id)
        self._advance(execution)
        return {"pipelineExecutionId": execution.pipeline_execution_id}

    @staticmethod
    def _resolve_variables(definition: dict[str, Any], given: list[dict[str, str]]) -> list[tuple[str, str]]:
        """Pipeline-level variables (V2): declared ones only, defaults filled in."""
        values: dict[str, str] = {}
        for variable in given:
            if variable["name"] in values:
                raise ApiError("ValidationException", f"Variable '{variable['name']}' is given more than once")
            values[variable["name"]] = variable["value"]
        declared = definition.get("variables") or []
        undeclared = sorted(set(values) - {d["name"] for d in declared})
        if undeclared:
            raise ApiError(
                "ValidationException",
                f"Pipeline '{definition['name']}' does not declare the variable(s) {', '.join(undeclared)}",
            )
        resolved = []
        for declaration in declared:
            name = declaration["name"]
            if name in values:
                resolved.append((name, values[name]))
            elif "defaultValue" in declaration:
                resolved.append((name, declaration["defaultValue"]))
            else:
                raise ApiError("ValidationException", f"Variable '{name}' has no default value and none was given")
        return resolved

    def _resolve_sources(
        self, ctx: RequestContext, execution: Execution, overrides: list[dict[str, str]]
    ) -> dict[str, SourceRevision | SourceFailure]:
        """Resolve every Source action of the first stage, honouring ``sourceRevisions``.

        Bad overrides are the caller's error (ValidationException, nothing
        starts); a source that cannot be fetched without an override fails its
        action at run time, as a missing branch does in AWS.
        """
        first_stage = execution.definition["stages"][0]
        sources = {a["name"]: a for a in first_stage["actions"] if a["actionTypeId"]["category"] == "Source"}
        chosen: dict[str, str] = {}
        for override in overrides:
            name, revision_type = override["actionName"], override["revisionType"]
            if name in chosen:
                raise ApiError("ValidationException", f"sourceRevisions names action '{name}' more than once")
            if name not in sources:
                raise ApiError(
                    "ValidationException",
                    f"sourceRevisions: '{name}' is not a Source action in the first stage "
                    f"'{first_stage['name']}' of pipeline '{execution.pipeline_name}'",
                )
            provider = sources[name]["actionTypeId"]["provider"]
            if revision_type not in REVISION_TYPES.get(provider, set()):
                allowed = ", ".join(sorted(REVISION_TYPES.get(provider, set()))) or "none"
                raise ApiError(
                    "ValidationException",
                    f"sourceRevisions: revisionType {revision_type} does not fit source action '{name}' "
                    f"with provider {provider} (allowed: {allowed})",
                )
            chosen[name] = override["revisionValue"]

        resolved: dict[str, SourceRevision | SourceFailure] = {}
        for name, declaration in sources.items():
            provider = declaration["actionTypeId"]["provider"]
            resolver = self.source_resolvers.get(provider)
            if resolver is not None:
                try:
                    resolved[name] = resolver(ctx, declaration, chosen.get(name))
                except SourceFailure as failure:
                    resolved[name] = failure
            elif name in chosen:
                resolved[name] = SourceRevision(revision_id=chosen[name], created=_now())
            else:
                resolved[name] = SourceFailure(
                    f"The emulator cannot fetch sources from provider {provider}; "
                    f"start the execution with sourceRevisions for action '{name}'"
                )
        return resolved

    def _codecommit_source(
        self, ctx: RequestContext, declaration: dict[str, Any], commit_id: str | None
    ) -> SourceRevision:
        """The commit to build: the override if given, else the tip of ``BranchName``."""
        configuration = declaration.get("configuration", {})
        repository_name = configuration.get("RepositoryName", "")
        branch = configuration.get("BranchName", "")
        region = declaration.get("region") or ctx.region
        repository = self._codecommit.repository(ctx.account_id, region, repository_name)
        if commit_id is not None:
            if repository is None:
                raise ApiError(
                    "ValidationException",
                    f"sourceRevisions: repository '{repository_name}' of source action "
                    f"'{declaration['name']}' does not exist",
                )
            commit = repository.commits.get(commit_id.lower())
            if commit is None:
                raise ApiError(
                    "ValidationException",
                    f"sourceRevisions: commit '{commit_id}' does not exist in repository '{repository_name}'",
                )
        else:
            if repository is None:
                raise SourceFailure(f"The repository {repository_name} does not exist.")
            tip = repository.branches.get(branch)
            if tip is None:
                raise SourceFailure(
                    f"The action failed because no branch named {branch} was found in the selected "
                    f"AWS CodeCommit repository {repository_name}."
                )
            commit = repository.commits[tip]
        return SourceRevision(
            revision_id=commit.commit_id,
            created=commit.committer.datetime,
            summary=_non_empty(commit.message),
            url=_console(region, f"codesuite/codecommit/repositories/{quote(repository_name)}/commit/{commit.commit_id}"),
            output_variables={
                "CommitId": commit.commit_id,
                "CommitMessage": commit.message,
                "AuthorDate": commit.author.datetime.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "CommitterDate": commit.committer.datetime.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "BranchName": branch,
                "RepositoryName": repository_name,
            },
        )

    # --- the engine --------------------------------------------------------------------

    def _advance(self, execution: Execution) -> None:
        """Move an execution forward as far as it can go without outside help, then record the
        state change events of what changed.

        Safe to re-enter (hooks may complete actions synchronously): every
        step re-reads the current state, so a nested call leaves nothing for
        the outer one to repeat.
        """
        try:
            self._advance_steps(execution)
        finally:
            self.events.observe(execution)

    def _advance_steps(self, execution: Execution) -> None:
        while execution.status in ACTIVE:
            if not execution.stages:
                execution.stages.append(StageRun(execution.definition["stages"][0]))
            stage = execution.stages[-1]
            failed = [run for run in stage.actions if run.status == "Failed"]
            if failed:
                self._abandon_running(stage)
                stage.status = "Failed"
                self._finish(execution, "Failed", failed[0].error_message)
                return
            if any(run.status == "InProgress" for run in stage.actions):
                return
            if execution.stop_requested:
                stage.status = "Stopped"
                self._finish(execution, "Stopped", execution.stop_reason)
                return
            started = self._start_next_group(execution, stage)
            if started:
                self._run_hooks(execution, started)
                continue
            stage.status = "Succeeded"
            stage_count = len(execution.definition["stages"])
            if len(execution.stages) == stage_count:
                self._finish(execution, "Succeeded", None)
                return
            execution.stages.append(StageRun(execution.definition["stages"][len(execution.stages)]))

    def _start_next_group(self, execution: Execution, stage: StageRun) -> list[ActionRun]:
        """Start the stage's actions with the lowest ``runOrder`` not run yet."""
        done = {run.name for run in stage.actions}
        pending = [a for a in stage.declaration["actions"] if a["name"] not in done]
        if not pending:
            return []
        run_order = min(a.get("runOrder", 1) for a in pending)
        started = [self._start_action(execution, stage, a) for a in pending if a.get("runOrder", 1) == run_order]
        stage.actions.extend(started)
        execution.last_update_time = _now()
        return started

    def _start_action(self, execution: Execution, stage: StageRun, declaration: dict[str, Any]) -> ActionRun:
        run = ActionRun(stage_name=stage.name, declaration=declaration, configuration={})
        source = execution.sources.get(declaration["name"])
        if isinstance(source, SourceFailure):
            run.status, run.error_code, run.error_message = "Failed", "JobFailed", str(source)
        elif isinstance(source, SourceRevision):
            run.status, run.revision, run.summary = "Succeeded", source, source.summary
            run.external_execution_id, run.external_execution_url = source.revision_id, source.url
            self._record_outputs(execution, run, source.output_variables)
        else:
            try:
                run.configuration = {
                    key: self._substitute(execution, value)
                    for key, value in declaration.get("configuration", {}).items()
                }
            except KeyError as missing:
                run.status, run.error_code = "Failed", "JobFailed"
                run.error_message = f"An action in this pipeline failed because the variable {missing.args[0]} could not be resolved."
        return run

    def _substitute(self, execution: Execution, text: str) -> str:
        """Resolve ``#{namespace.name}`` references; KeyError names an unresolvable one."""

        def value(match: re.Match[str]) -> str:
            namespace, name = match.groups()
            if namespace == "variables":
                table = dict(execution.variables)
            elif namespace == "codepipeline":
                table = {"PipelineExecutionId": execution.pipeline_execution_id}
            else:
                table = execution.namespaces.get(namespace, {})
            if name not in table:
                raise KeyError(match.group(0))
            return table[name]

        return _VARIABLE_REFERENCE.sub(value, text)

    def _run_hooks(self, execution: Execution, runs: list[ActionRun]) -> None:
        for run in runs:
            hook = self.on_action_started.get((run.category, run.provider))
            if hook is None or run.status != "InProgress" or execution.status not in ACTIVE:
                continue
            try:
                hook(execution, run)
            except Exception as exc:  # a broken hook fails its action visibly instead of wedging the execution
                traceback.print_exc(file=sys.stderr)
                if run.status == "InProgress":
                    self._set_result(run, "Failed", None, f"emulator hook failed: {exc!r}", "JobFailed")

    def _record_outputs(self, execution: Execution, run: ActionRun, variables: dict[str, str]) -> None:
        run.output_variables = dict(variables)
        namespace = run.declaration.get("namespace")
        if namespace:
            execution.namespaces[namespace] = run.output_variables

    @staticmethod
    def _set_result(run: ActionRun, status: str, summary: str | None, error: str | None, code: str) -> None:
        run.status = status
        run.summary = _non_empty(summary)
        run.last_status_change = _now()
        if status == "Failed":
            run.error_code, run.error_message = code, error or "Action failed"

    @staticmethod
    def _abandon_running(stage: StageRun) -> None:
        for run in stage.actions:
            if run.status == "InProgress":
                run.status, run.last_status_change = "Abandoned", _now()

    @staticmethod
    def _finish(execution: Execution, status: str, summary: str | None) -> None:
        execution.status = status
        execution.status_summary = _non_empty(summary)
        execution.last_update_time = _now()

    def complete_action(
        self,
        execution_id: str,
        stage: str,
        action: str,
        status: str,
        summary: str | None = None,
        output_variables: dict[str, str] | None = None,
        error: str | None = None,
        error_code: str = "JobFailed",
        updated_by: str | None = None,
    ) -> Execution:
        """Finish an InProgress action and advance its execution.

        ``status`` is ``Succeeded`` or ``Failed``; a failed action fails its
        stage and the execution.  Raises ``ExecutionNotFound`` or
        ``ActionNotInProgress``.
        """
        if status not in ("Succeeded", "Failed"):
            raise ValueError(f"status must be Succeeded or Failed, not {status!r}")
        with self._lock:
            execution = self.find_execution(execution_id)
            stage_run = execution.stage(stage)
            run = stage_run.action(action) if stage_run else None
            if run is None or run.status != "InProgress":
                current = run.status if run else "not started"
                raise ActionNotInProgress(f"action {stage}/{action} of execution {execution_id} is {current}")
            self._set_result(run, status, summary, error, error_code)
            run.updated_by = updated_by
            if status == "Succeeded":
                self._record_outputs(execution, run, output_variables or {})
            execution.last_update_time = _now()
            self._advance(execution)
            return execution

    # --- StopPipelineExecution ---------------------------------------------------------

    def stop_pipeline_execution(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Stop and wait (``Stopping`` until running actions finish) or stop and abandon."""
        execution = self._execution(ctx, params["pipelineName"], params["pipelineExecutionId"])
        abandon = params.get("abandon", False)
        if execution.status == "Stopping" and not abandon:
            raise ApiError(
                "DuplicatedStopRequestException",
                f"Execution {execution.pipeline_execution_id} is already being stopped",
            )
        if execution.status not in ACTIVE:
            raise ApiError(
                "PipelineExecutionNotStoppableException",
                f"Unable to stop pipeline execution {execution.pipeline_execution_id}: it is {execution.status}",
            )
        execution.stop_requested = True
        execution.stop_reason = params.get("reason", execution.stop_reason)
        stage = execution.stages[-1]
        if abandon:
            self._abandon_running(stage)
        else:
            execution.status = stage.status = "Stopping"
            execution.last_update_time = _now()
        self._advance(execution)
        return {"pipelineExecutionId": execution.pipeline_execution_id}

    # --- read operations ---------------------------------------------------------------

    def get_pipeline_execution(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(ctx, params["pipelineName"], params["pipelineExecutionId"])
        artifacts = []
        for run in execution.source_runs():
            outputs = run.declaration.get("outputArtifacts") or []
            if outputs:
                artifacts.append(
                    {
                        "name": outputs[0]["name"],
                        "revisionId": run.revision.revision_id,
                        "revisionSummary": run.revision.summary,
                        "revisionUrl": run.revision.url,
                        "created": run.revision.created,
                    }
                )
        return {
            "pipelineExecution": {
                "pipelineName": execution.pipeline_name,
                "pipelineVersion": execution.pipeline_version,
                "pipelineExecutionId": execution.pipeline_execution_id,
                "status": execution.status,
                "statusSummary": execution.status_summary,
                "artifactRevisions": artifacts,
                "variables": [{"name": n, "resolvedValue": v} for n, v in execution.variables],
                "trigger": self._trigger(execution),
                "executionMode": execution.execution_mode,
                "executionType": "STANDARD",
            }
        }

    @staticmethod
    def _trigger(execution: Execution) -> dict[str, str]:
        return {"triggerType": "StartPipelineExecution", "triggerDetail": execution.trigger_detail}

    def list_pipeline_executions(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Newest first; the page token is the id of the page's last execution."""
        _, state = self._pipeline(ctx, params["pipelineName"])
        executions = list(reversed(state.executions.values()))
        stage_filter = params.get("filter", {}).get("succeededInStage", {}).get("stageName")
        if stage_filter is not None:
            executions = [
                e for e in executions if (s := e.stage(stage_filter)) is not None and s.status == "Succeeded"
            ]
        page, next_token = _page(executions, [e.pipeline_execution_id for e in executions], params)
        return {"pipelineExecutionSummaries": [self._summary(e) for e in page], "nextToken": next_token}

    def _summary(self, execution: Execution) -> dict[str, Any]:
        return {
            "pipelineExecutionId": execution.pipeline_execution_id,
            "status": execution.status,
            "statusSummary": execution.status_summary,
            "startTime": execution.start_time,
            "lastUpdateTime": execution.last_update_time,
            "sourceRevisions": [
                {
                    "actionName": run.name,
                    "revisionId": run.revision.revision_id,
                    "revisionSummary": run.revision.summary,
                    "revisionUrl": run.revision.url,
                }
                for run in execution.source_runs()
            ],
            "trigger": self._trigger(execution),
            "stopTrigger": {"reason": execution.stop_reason} if execution.stop_requested else None,
            "executionMode": execution.execution_mode,
            "executionType": "STANDARD",
        }

    def list_action_executions(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Every action run of the pipeline (or of one execution), newest first; the page token
        is the id of the page's last run."""
        _, state = self._pipeline(ctx, params["pipelineName"])
        action_filter = params.get("filter", {})
        if "latestInPipelineExecution" in action_filter:
            raise ApiError("ValidationException", "The emulator does not filter on latestInPipelineExecution")
        wanted = action_filter.get("pipelineExecutionId")
        if wanted is not None and wanted not in state.executions:
            raise ApiError(
                "PipelineExecutionNotFoundException",
                f"Account '{ctx.account_id}' does not have an execution with id '{wanted}' "
                f"for pipeline '{params['pipelineName']}'",
            )
        started = [
            (execution, run)
            for execution in state.executions.values()
            if wanted is None or execution.pipeline_execution_id == wanted
            for stage in execution.stages
            for run in stage.actions
        ]
        # Newest first; runs started at the same instant, the later started first.
        order = sorted(range(len(started)), key=lambda i: (started[i][1].start_time, i), reverse=True)
        runs = [started[i] for i in order]
        page, next_token = _page(runs, [run.action_execution_id for _, run in runs], params)
        return {"actionExecutionDetails": [self._action_detail(ctx, e, r) for e, r in page], "nextToken": next_token}

    @staticmethod
    def _action_detail(ctx: RequestContext, execution: Execution, run: ActionRun) -> dict[str, Any]:
        result = {
            "externalExecutionId": run.external_execution_id or run.request_id,
            "externalExecutionSummary": run.summary,
            "externalExecutionUrl": run.external_execution_url,
            "errorDetails": {"code": run.error_code, "message": run.error_message} if run.error_message else None,
        }
        return {
            "pipelineExecutionId": execution.pipeline_execution_id,
            "actionExecutionId": run.action_execution_id,
            "pipelineVersion": execution.pipeline_version,
            "stageName": run.stage_name,
            "actionName": run.name,
            "startTime": run.start_time,
            "lastUpdateTime": run.last_status_change,
            "updatedBy": run.updated_by,
            "status": run.status,
            "input": {
                "actionTypeId": run.declaration["actionTypeId"],
                "configuration": run.declaration.get("configuration") or None,
                "resolvedConfiguration": run.configuration or None,
                "region": run.declaration.get("region") or ctx.region,
                "namespace": run.declaration.get("namespace"),
            },
            "output": {
                "executionResult": {k: v for k, v in result.items() if v is not None} or None,
                "outputVariables": run.output_variables or None,
            },
        }

    def get_pipeline_state(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """The console view: per stage its newest execution, per action its newest run."""
        pipeline, state = self._pipeline(ctx, params["name"])
        newest_first = list(reversed(state.executions.values()))
        stage_states = []
        for index, stage in enumerate(pipeline.pipeline["stages"]):
            entered = [(e, s) for e in newest_first if (s := e.stage(stage["name"])) is not None]
            stage_state: dict[str, Any] = {
                "stageName": stage["name"],
                "actionStates": [self._action_state(ctx, stage["name"], a, newest_first) for a in stage["actions"]],
            }
            if index > 0:
                stage_state["inboundTransitionState"] = {"enabled": True}
            if entered:
                execution, stage_run = entered[0]
                stage_state["latestExecution"] = {
                    "pipelineExecutionId": execution.pipeline_execution_id,
                    "status": stage_run.status,
                }
            stage_states.append(stage_state)
        return {
            "pipelineName": pipeline.pipeline["name"],
            "pipelineVersion": pipeline.pipeline["version"],
            "stageStates": stage_states,
            # moto keeps naive UTC datetimes privately; its metadata renders them as strings
            "created": pipeline._created.replace(tzinfo=datetime.timezone.utc),
            "updated": pipeline._updated.replace(tzinfo=datetime.timezone.utc),
        }

    def _action_state(
        self, ctx: RequestContext, stage_name: str, declaration: dict[str, Any], newest_first: list[Execution]
    ) -> dict[str, Any]:
        state: dict[str, Any] = {"actionName": declaration["name"], "entityUrl": _entity_url(ctx.region, declaration)}
        latest = next(
            ((e, r) for e in newest_first if (s := e.stage(stage_name)) and (r := s.action(declaration["name"]))),
            None,
        )
        if latest is None:
            return state
        execution, run = latest
        state["latestExecution"] = {
            "actionExecutionId": run.action_execution_id,
            "status": run.status,
            "summary": run.summary,
            "lastStatusChange": run.last_status_change,
            # PutApprovalResult: "For a pipeline where the execution mode is set to PARALLEL, the
            # token ... is not available" here; ListActionExecutions has it.
            "token": None if execution.execution_mode == "PARALLEL" else run.token,
            "externalExecutionId": run.external_execution_id,
            "externalExecutionUrl": run.external_execution_url,
            "percentComplete": run.percent_complete,
            "errorDetails": {"code": run.error_code, "message": run.error_message} if run.error_message else None,
        }
        if run.revision is not None:
            state["currentRevision"] = {
                "revisionId": run.revision.revision_id,
                "revisionChangeId": run.revision.revision_id,
                "created": run.revision.created,
            }
            state["revisionUrl"] = run.revision.url
        return state


def _page(items: list[Any], ids: list[str], params: dict[str, Any]) -> tuple[list[Any], str | None]:
    """The page ``maxResults`` (default 100) and ``nextToken`` ask for, and the next page's
    token: the id (of ``ids``, one per item) of the page's last item."""
    start = 0
    token = params.get("nextToken")
    if token is not None:
        if token not in ids:
            raise ApiError("InvalidNextTokenException", "The next token was specified in an invalid format.")
        start = ids.index(token) + 1
    limit = params.get("maxResults", 100)
    more = start + limit < len(items)
    return items[start : start + limit], ids[start + limit - 1] if more else None


def _entity_url(region: str, declaration: dict[str, Any]) -> str | None:
    """Console link of the action's target, for the providers the project uses."""
    configuration = declaration.get("configuration", {})
    region = declaration.get("region") or region
    provider = declaration["actionTypeId"]["provider"]
    if provider == "CodeCommit":
        repository = quote(configuration.get("RepositoryName", ""))
        branch = quote(configuration.get("BranchName", ""), safe="")
        return _console(region, f"codesuite/codecommit/repositories/{repository}/browse/refs/heads/{branch}")
    if provider == "Lambda":
        return _console(region, "lambda/home", f"/functions/{quote(configuration.get('FunctionName', ''))}")
    return None
