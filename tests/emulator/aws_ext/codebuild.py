"""CodeBuild builds kept as the real service keeps them, on top of moto's projects.

moto 5.2.5 keeps Create/BatchGet/List/DeleteProject (they stay moto's), but
its builds are a toy: BatchGetBuilds marks every build SUCCEEDED, build
numbers are random, ListBuildsForProject is oldest first and ignores
``sortOrder``, StartBuild ignores overrides and idempotency tokens.  Here a
build is stored state that only changes when something changes it:

* StartBuild resolves the project's settings with the request's overrides
  (environment variables merged by name, source, timeouts, image...), numbers
  the build within its project from 1 and leaves it ``IN_PROGRESS`` in
  ``QUEUED``, as a just-started build is;
* the build advances only through StopBuild or the admin API
  (``advance``/``complete``), so BatchGetBuilds always answers what was
  stored, never an invented outcome;
* ``event_document`` renders the build as the EventBridge
  ``CodeBuild Build State Change`` event CodeBuild would emit for its current
  state, with CodeBuild's own quirks (kebab-case keys, ``build-number`` as a
  float, ``Sep 1, 2017 4:12:29 PM`` times, phase contexts as strings, and a
  timed-out or faulted build's ``build-status`` ``FAILED``: the documented
  values are IN_PROGRESS, SUCCEEDED, FAILED and STOPPED).

Builds outlive their project, as in AWS ("when you delete a project, its
builds are not deleted"): BatchGetBuilds and ListBuilds still find them.
Numbering and ListBuildsForProject hang off moto's project object (weak
keys), so a deleted and re-created project starts again at build 1.

Extension point: ``start_build`` takes an ``initiator``, so a CodePipeline
hook for CodeBuild actions can start builds as ``codepipeline/<pipeline>``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import json
import math
import re
import threading
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.codebuild.models import CodeBuild, codebuild_backends
from moto.utilities.utils import get_partition

from .codecommit import CodeCommitExtension
from .context import RequestContext
from . import model
from .model import ApiError

PHASE_ORDER = (
    "SUBMITTED",
    "QUEUED",
    "PROVISIONING",
    "DOWNLOAD_SOURCE",
    "INSTALL",
    "PRE_BUILD",
    "BUILD",
    "POST_BUILD",
    "UPLOAD_ARTIFACTS",
    "FINALIZING",
    "COMPLETED",
)
FINAL_STATUSES = ("SUCCEEDED", "FAILED", "FAULT", "STOPPED", "TIMED_OUT")
# Phases CodeBuild still runs after a command fails in a phase: POST_BUILD runs
# whenever BUILD ran, UPLOAD_ARTIFACTS "is always attempted, even if the BUILD
# phase fails"; failures before BUILD go straight to FINALIZING.
_AFTER_FAILURE = {
    "PROVISIONING": ("FINALIZING",),
    "DOWNLOAD_SOURCE": ("FINALIZING",),
    "INSTALL": ("FINALIZING",),
    "PRE_BUILD": ("FINALIZING",),
    "BUILD": ("POST_BUILD", "UPLOAD_ARTIFACTS", "FINALIZING"),
    "POST_BUILD": ("UPLOAD_ARTIFACTS", "FINALIZING"),
    "UPLOAD_ARTIFACTS": ("FINALIZING",),
    "FINALIZING": (),
}
# How a completed build's duration is spread over its phases (BUILD takes the rest).
_PHASE_WEIGHTS = {
    "QUEUED": 1,
    "PROVISIONING": 15,
    "DOWNLOAD_SOURCE": 3,
    "INSTALL": 10,
    "PRE_BUILD": 5,
    "BUILD": 60,
    "POST_BUILD": 3,
    "UPLOAD_ARTIFACTS": 1,
    "FINALIZING": 2,
}
# The failed phase's context when the admin API gives none.
DEFAULT_CONTEXTS = {
    "FAILED": ("COMMAND_EXECUTION_ERROR", "Error while executing command: exit 1. Reason: exit status 1"),
    "TIMED_OUT": ("BUILD_TIMED_OUT", "Build has timed out. "),
}
_CONTEXT = re.compile(r"([A-Z][A-Z0-9_]*): (.*)", re.DOTALL)
_COMMIT_ID = re.compile(r"[0-9a-fA-F]{40}")
_CODECOMMIT_URL = re.compile(r"https://git-codecommit\.([a-z0-9-]+)\.amazonaws\.com/v1/repos/([^/]+)/?")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# The build-status values a Build State Change event carries are IN_PROGRESS, SUCCEEDED, FAILED
# and STOPPED (the CodeBuild user guide's build notifications sample: "To trigger an event only
# when a build completes, remove IN_PROGRESS"). A build BatchGetBuilds calls TIMED_OUT or FAULT
# arrives as FAILED; only its phases tell (the phase that timed out or faulted has that status).
EVENT_BUILD_STATUS = {"TIMED_OUT": "FAILED", "FAULT": "FAILED"}
IDEMPOTENCY_WINDOW = datetime.timedelta(minutes=5)
DEFAULT_TIMEOUT_MINUTES = 60
DEFAULT_QUEUED_TIMEOUT_MINUTES = 480
_PAGE = 100


def _now() -> datetime.datetime:
    """Millisecond precision, as CodeBuild's timestamps have (tests patch this clock)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def event_time(moment: datetime.datetime) -> str:
    """CodeBuild's event time format, ``Sep 1, 2017 4:12:29 PM`` (UTC, unpadded, English)."""
    moment = moment.astimezone(datetime.timezone.utc)
    hour = moment.hour % 12 or 12
    meridiem = "AM" if moment.hour < 12 else "PM"
    return f"{_MONTHS[moment.month - 1]} {moment.day}, {moment.year} {hour}:{moment:%M:%S} {meridiem}"


def initiator_from_arn(arn: str) -> str:
    """What CodeBuild reports as ``initiator`` for a caller.

    An IAM user is reported by name, an assumed role as ``role-name/session``
    (the ARN's ``assumed-role/`` path), the root user as ``root``.
    """
    resource = arn.split(":", 5)[-1]
    if resource == "root":
        return "root"
    kind, _, rest = resource.partition("/")
    if kind == "assumed-role":
        return rest
    return rest.rsplit("/", 1)[-1] if rest else resource


@dataclass
class Phase:
    phase_type: str
    start: datetime.datetime
    end: datetime.datetime | None = None
    status: str | None = None  # None while the phase runs (and for COMPLETED)
    # (statusCode, message) pairs; None: the phase has no ``contexts`` member at all
    contexts: list[tuple[str, str]] | None = None

    @property
    def duration(self) -> int | None:
        if self.end is None:
            return None
        return int((self.end - self.start).total_seconds())

    def to_output(self) -> dict[str, Any]:
        return {
            "phaseType": self.phase_type,
            "phaseStatus": self.status,
            "startTime": self.start,
            "endTime": self.end,
            "durationInSeconds": self.duration,
            "contexts": (
                [{"statusCode": code, "message": message} for code, message in self.contexts]
                if self.contexts is not None
                else None
            ),
        }

    def context_strings(self) -> list[str]:
        """Contexts as events spell them: ``"STATUS_CODE: message"`` (``": "`` when both are empty)."""
        return [f"{code}: {message}" for code, message in self.contexts or []]

    def to_event(self) -> dict[str, Any]:
        if self.end is None:
            return {"start-time": event_time(self.start), "phase-type": self.phase_type}
        return {
            "phase-context": self.context_strings(),
            "start-time": event_time(self.start),
            "end-time": event_time(self.end),
            "duration-in-seconds": self.duration,
            "phase-type": self.phase_type,
            "phase-status": self.status,
        }


@dataclass
class Build:
    """One build: its resolved settings (project plus overrides) and its phases so far."""

    id: str
    arn: str
    number: int
    sequence: int  # start order within the region, for ListBuilds and page tokens
    project_name: str
    project_arn: str
    account_id: str
    region: str
    initiator: str
    start_time: datetime.datetime
    source: dict[str, Any]
    environment: dict[str, Any]
    artifacts: dict[str, Any]
    cache: dict[str, Any]
    logs_config: dict[str, Any]
    service_role: str | None
    timeout: int
    queued_timeout: int
    source_version: str | None = None
    resolved_source_version: str | None = None
    secondary_sources: list[dict[str, Any]] | None = None
    secondary_source_versions: list[dict[str, Any]] | None = None
    encryption_key: str | None = None
    vpc_config: dict[str, Any] | None = None
    debug_session: bool = False
    status: str = "IN_PROGRESS"
    end_time: datetime.datetime | None = None
    phases: list[Phase] = field(default_factory=list)
    # The test reports it filed (reports.py), in filing order.
    report_arns: list[str] = field(default_factory=list)

    @property
    def uuid(self) -> str:
        return self.id.split(":", 1)[1]

    @property
    def complete(self) -> bool:
        return self.status != "IN_PROGRESS"

    @property
    def current_phase(self) -> str:
        return self.phases[-1].phase_type

    def logs(self) -> dict[str, Any]:
        """LogsLocation: CloudWatch Logs as the project's ``logsConfig`` configures them.

        The group defaults to ``/aws/codebuild/<project>`` and the stream is the
        build's UUID (after the configured stream-name prefix, if any).
        """
        partition = get_partition(self.region)
        cloudwatch = {"status": "ENABLED", **self.logs_config.get("cloudWatchLogs", {})}
        s3 = {"status": "DISABLED", "encryptionDisabled": False, **self.logs_config.get("s3Logs", {})}
        logs: dict[str, Any] = {"cloudWatchLogs": cloudwatch, "s3Logs": s3}
        if cloudwatch["status"] == "ENABLED":
            group = cloudwatch.get("groupName") or f"/aws/codebuild/{self.project_name}"
            stream = f"{cloudwatch['streamName']}/{self.uuid}" if cloudwatch.get("streamName") else self.uuid
            logs.update(
                groupName=group,
                streamName=stream,
                deepLink=(
                    f"https://console.aws.amazon.com/cloudwatch/home?region={self.region}"
                    f"#logEvent:group={group};stream={stream}"
                ),
                cloudWatchLogsArn=f"arn:{partition}:logs:{self.region}:{self.account_id}:log-group:{group}:log-stream:{stream}",
            )
        if s3["status"] == "ENABLED" and s3.get("location"):
            logs["s3LogsArn"] = f"arn:{partition}:s3:::{s3['location']}/{self.uuid}.gz"
        return logs

    def to_output(self) -> dict[str, Any]:
        """The ``Build`` shape of BatchGetBuilds, StartBuild and StopBuild."""
        return {
            "id": self.id,
            "arn": self.arn,
            "buildNumber": self.number,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "currentPhase": self.current_phase,
            "buildStatus": self.status,
            "sourceVersion": self.source_version,
            "resolvedSourceVersion": self.resolved_source_version,
            "projectName": self.project_name,
            "phases": [phase.to_output() for phase in self.phases],
            "source": self.source,
            "secondarySources": self.secondary_sources,
            "secondarySourceVersions": self.secondary_source_versions,
            "artifacts": self.artifacts,
            "cache": self.cache,
            "environment": self.environment,
            "serviceRole": self.service_role,
            "logs": self.logs(),
            "timeoutInMinutes": self.timeout,
            "queuedTimeoutInMinutes": self.queued_timeout,
            "buildComplete": self.complete,
            "initiator": self.initiator,
            "vpcConfig": self.vpc_config,
            "encryptionKey": self.encryption_key,
            "debugSession": {"sessionEnabled": True} if self.debug_session else None,
            "reportArns": list(self.report_arns) or None,
        }


@dataclass
class ProjectBuilds:
    """Per moto project object: the last build number and the project's builds in start order."""

    last_number: int = 0
    build_ids: list[str] = field(default_factory=list)


@dataclass
class RegionBuilds:
    builds: dict[str, Build] = field(default_factory=dict)  # by id, in start order
    sequence: int = 0
    # idempotencyToken -> (fingerprint, build id, first use)
    tokens: dict[str, tuple[str, str, datetime.datetime]] = field(default_factory=dict)


class BuildNotFound(LookupError):
    pass


class BuildNotInProgress(LookupError):
    pass


class EventLost(LookupError):
    """EventBridge did not deliver the build's event (``lose_events``)."""


class CodeBuildExtension:
    """Handlers for the build operations plus the admin API's ways to move builds on."""

    def __init__(self, lock: threading.RLock, codecommit: CodeCommitExtension | None = None):
        self._lock = lock
        self._codecommit = codecommit
        self._regions: dict[tuple[str, str], RegionBuilds] = {}
        self._projects: weakref.WeakKeyDictionary[CodeBuild, ProjectBuilds] = weakref.WeakKeyDictionary()
        # build id -> how many of its next events are lost on the way
        self._lost_events: dict[str, int] = {}

    def operations(self) -> dict[str, Callable[[RequestContext, dict[str, Any]], dict[str, Any]]]:
        return {
            "StartBuild": self.start_build_operation,
            "BatchGetBuilds": self.batch_get_builds,
            "ListBuildsForProject": self.list_builds_for_project,
            "ListBuilds": self.list_builds,
            "StopBuild": self.stop_build,
            "BatchDeleteBuilds": self.batch_delete_builds,
        }

    def reset(self) -> None:
        with self._lock:
            self._regions.clear()
            self._projects.clear()
            self._lost_events.clear()

    # --- lookups -----------------------------------------------------------------------

    def _region(self, account_id: str, region: str) -> RegionBuilds:
        return self._regions.setdefault((account_id, region), RegionBuilds())

    @staticmethod
    def _project(ctx: RequestContext, name_or_arn: str) -> CodeBuild | None:
        projects = codebuild_backends[ctx.account_id][ctx.region].codebuild_projects
        if name_or_arn.startswith("arn:"):
            return next((p for p in projects.values() if p.arn == name_or_arn), None)
        return projects.get(name_or_arn)

    @staticmethod
    def _project_arn(ctx: RequestContext, name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        return f"arn:{ctx.partition}:codebuild:{ctx.region}:{ctx.account_id}:project/{name_or_arn}"

    @staticmethod
    def _build_id(value: str) -> str:
        """A build id from an id or a build ARN; ``InvalidInputException`` for anything else."""
        if value.startswith("arn:") and ":build/" in value:
            value = value.split(":build/", 1)[1]
        if ":" not in value:
            raise ApiError("InvalidInputException", "Invalid build ID provided")
        return value

    def _stored(self, ctx: RequestContext, value: str) -> Build | None:
        return self._region(ctx.account_id, ctx.region).builds.get(self._build_id(value))

    def find_build(self, value: str) -> Build:
        """Any region's build by id or ARN (the admin API names builds without a region)."""
        build_id = value.split(":build/", 1)[1] if value.startswith("arn:") and ":build/" in value else value
        with self._lock:
            for region in list(self._regions.values()):
                if build_id in region.builds:
                    return region.builds[build_id]
        raise BuildNotFound(f"no CodeBuild build {value}")

    # --- StartBuild --------------------------------------------------------------------

    def start_build_operation(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        initiator = initiator_from_arn(ctx.caller_arn())
        return {"build": self.start_build(ctx, params, initiator).to_output()}

    def start_build(self, ctx: RequestContext, params: dict[str, Any], initiator: str) -> Build:
        """Start a build of ``params['projectName']`` (a name or an ARN) with StartBuild's overrides.

        ``idempotencyToken`` makes a repeat within five minutes return the
        first build; a repeat that changes any parameter (the project included)
        is refused.  StartBuild lists no IdempotentParameterMismatchException,
        so the refusal is the service's ``InvalidInputException``.
        """
        with self._lock:
            project = self._project(ctx, params["projectName"])
            if project is None:
                raise ApiError(
                    "ResourceNotFoundException",
                    f"Project cannot be found: {self._project_arn(ctx, params['projectName'])}",
                )
            region = self._region(ctx.account_id, ctx.region)
            token = params.get("idempotencyToken")
            now = _now()
            fingerprint = json.dumps(
                {**{k: v for k, v in params.items() if k != "idempotencyToken"}, "projectName": project.arn},
                sort_keys=True,
                default=str,
            )
            if token is not None:
                known = region.tokens.get(token)
                if known is not None and now - known[2] < IDEMPOTENCY_WINDOW:
                    known_fingerprint, build_id, _ = known
                    if known_fingerprint != fingerprint:
                        raise ApiError(
                            "InvalidInputException",
                            f"Idempotency token {token} was already used with different parameters",
                        )
                    if build_id in region.builds:
                        return region.builds[build_id]

            state = self._projects.setdefault(project, ProjectBuilds())
            build = self._new_build(ctx, project, params, initiator, now, state.last_number + 1, region.sequence + 1)
            state.last_number = build.number
            state.build_ids.append(build.id)
            region.sequence = build.sequence
            region.builds[build.id] = build
            if token is not None:
                region.tokens[token] = (fingerprint, build.id, now)
            return build

    def _new_build(
        self,
        ctx: RequestContext,
        project: CodeBuild,
        params: dict[str, Any],
        initiator: str,
        now: datetime.datetime,
        number: int,
        sequence: int,
    ) -> Build:
        metadata = project.project_metadata
        name = metadata["name"]
        build_id = f"{name}:{uuid.uuid4()}"
        source = self._source(metadata.get("source") or {"type": "NO_SOURCE"}, params)
        source_version = params.get("sourceVersion") or metadata.get("sourceVersion")
        return Build(
            id=build_id,
            arn=f"arn:{ctx.partition}:codebuild:{ctx.region}:{ctx.account_id}:build/{build_id}",
            number=number,
            sequence=sequence,
            project_name=name,
            project_arn=project.arn,
            account_id=ctx.account_id,
            region=ctx.region,
            initiator=initiator,
            start_time=now,
            source=source,
            source_version=source_version,
            resolved_source_version=self._resolve_source_version(ctx, source, source_version),
            secondary_sources=copy.deepcopy(params.get("secondarySourcesOverride") or metadata.get("secondarySources")),
            secondary_source_versions=copy.deepcopy(
                params.get("secondarySourcesVersionOverride") or metadata.get("secondarySourceVersions")
            ),
            environment=self._environment(metadata.get("environment") or {}, params),
            artifacts=self._artifacts(
                params.get("artifactsOverride") or metadata.get("artifacts") or {"type": "NO_ARTIFACTS"}, build_id
            ),
            cache=copy.deepcopy(params.get("cacheOverride") or metadata.get("cache") or {"type": "NO_CACHE"}),
            logs_config=copy.deepcopy(params.get("logsConfigOverride") or metadata.get("logsConfig") or {}),
            service_role=params.get("serviceRoleOverride") or metadata.get("serviceRole"),
            # moto stores 0 for a timeout CreateProject did not set; AWS's defaults apply
            timeout=params.get("timeoutInMinutesOverride") or metadata.get("timeoutInMinutes") or DEFAULT_TIMEOUT_MINUTES,
            queued_timeout=(
                params.get("queuedTimeoutInMinutesOverride")
                or metadata.get("queuedTimeoutInMinutes")
                or DEFAULT_QUEUED_TIMEOUT_MINUTES
            ),
            encryption_key=params.get("encryptionKeyOverride") or metadata.get("encryptionKey"),
            vpc_config=copy.deepcopy(metadata.get("vpcConfig")),
            debug_session=bool(params.get("debugSessionEnabled")),
            phases=[
                Phase("SUBMITTED", now, now, "SUCCEEDED"),
                Phase("QUEUED", now),
            ],
        )

    @staticmethod
    def _source(project_source: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        source = copy.deepcopy(project_source)
        overrides = {
            "sourceTypeOverride": "type",
            "sourceLocationOverride": "location",
            "gitCloneDepthOverride": "gitCloneDepth",
            "gitSubmodulesConfigOverride": "gitSubmodulesConfig",
            "buildspecOverride": "buildspec",
            "insecureSslOverride": "insecureSsl",
            "reportBuildStatusOverride": "reportBuildStatus",
            "buildStatusConfigOverride": "buildStatusConfig",
            "sourceAuthOverride": "auth",
        }
        for parameter, member in overrides.items():
            if params.get(parameter) is not None:
                source[member] = copy.deepcopy(params[parameter])
        return source

    @staticmethod
    def _environment(project_environment: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """The project's environment with the overrides; variables merge by name.

        An override replaces the project's variable of the same name in place
        (value and type); new names follow the project's variables.  Every
        variable reports its type, PLAINTEXT unless given.
        """
        environment = copy.deepcopy(project_environment)
        overrides = {
            "environmentTypeOverride": "type",
            "imageOverride": "image",
            "computeTypeOverride": "computeType",
            "certificateOverride": "certificate",
            "privilegedModeOverride": "privilegedMode",
            "imagePullCredentialsTypeOverride": "imagePullCredentialsType",
            "registryCredentialOverride": "registryCredential",
            "fleetOverride": "fleet",
        }
        for parameter, member in overrides.items():
            if params.get(parameter) is not None:
                environment[member] = copy.deepcopy(params[parameter])
        variables: dict[str, dict[str, str]] = {}
        for variable in [*environment.get("environmentVariables", []), *params.get("environmentVariablesOverride", [])]:
            variables[variable["name"]] = {
                "name": variable["name"],
                "value": variable["value"],
                "type": variable.get("type") or "PLAINTEXT",
            }
        environment["environmentVariables"] = list(variables.values())
        environment.setdefault("privilegedMode", False)
        environment.setdefault("imagePullCredentialsType", "CODEBUILD")
        return environment

    @staticmethod
    def _artifacts(project_artifacts: dict[str, Any], build_id: str) -> dict[str, Any]:
        """BuildArtifacts: where this build's output goes (an S3 ARN), empty when there is none."""
        artifacts: dict[str, Any] = {"location": ""}
        if project_artifacts.get("type") == "S3" and project_artifacts.get("location"):
            parts = [project_artifacts["location"], project_artifacts.get("path")]
            if project_artifacts.get("namespaceType") == "BUILD_ID":
                parts.append(build_id.split(":", 1)[1])
            parts.append(project_artifacts.get("name"))
            artifacts["location"] = "arn:aws:s3:::" + "/".join(p.strip("/") for p in parts if p)
        for member in ("overrideArtifactName", "encryptionDisabled", "artifactIdentifier", "bucketOwnerAccess"):
            if project_artifacts.get(member) is not None:
                artifacts[member] = project_artifacts[member]
        return artifacts

    def _resolve_source_version(self, ctx: RequestContext, source: dict[str, Any], version: str | None) -> str | None:
        """The commit the build will check out, when the emulator can tell.

        A full commit id is that commit.  For a CodeCommit source whose
        repository the emulator holds, a branch (``main`` or
        ``refs/heads/main``) or no version at all (the default branch)
        resolves to the branch tip, as CodeBuild does when it downloads the
        source.  Anything else stays unresolved rather than guessed.
        """
        if version is not None and _COMMIT_ID.fullmatch(version):
            return version.lower()
        match = _CODECOMMIT_URL.fullmatch(source.get("location") or "")
        if source.get("type") != "CODECOMMIT" or match is None or self._codecommit is None:
            return None
        repository = self._codecommit.repository(ctx.account_id, match.group(1), match.group(2))
        if repository is None:
            return None
        branch = repository.default_branch if version is None else version.removeprefix("refs/heads/")
        return repository.branches.get(branch) if branch is not None else None

    # --- reads -------------------------------------------------------------------------

    def batch_get_builds(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """The stored builds in the order asked; unknown ids in ``buildsNotFound``."""
        builds, not_found = [], []
        for value in params["ids"]:
            build = self._stored(ctx, value)
            if build is None:
                not_found.append(value)
            else:
                builds.append(build.to_output())
        return {"builds": builds, "buildsNotFound": not_found}

    def list_builds_for_project(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Build ids by build number, newest first unless ``sortOrder`` is ASCENDING.

        Pages hold 100 ids.  Like the real service, ``sortOrder`` may not come
        with a ``nextToken`` (the token carries the order): a paginator that
        repeats every parameter fails on the second page.
        """
        project = self._project(ctx, params["projectName"])
        if project is None:
            raise ApiError(
                "ResourceNotFoundException",
                f"The provided project {self._project_arn(ctx, params['projectName'])} does not exist",
            )
        if params.get("sortOrder") is not None and params.get("nextToken") is not None:
            raise ApiError("InvalidInputException", "Sort order can't be specified when passing a nextToken")
        region = self._region(ctx.account_id, ctx.region)
        state = self._projects.get(project) or ProjectBuilds()
        builds = [region.builds[i] for i in state.build_ids if i in region.builds]
        return self._page(builds, params, scope=project.arn)

    def list_builds(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Every build of the region (deleted projects' included), newest first by default."""
        builds = list(self._region(ctx.account_id, ctx.region).builds.values())
        return self._page(builds, params, scope=f"{ctx.account_id}/{ctx.region}")

    @staticmethod
    def _page(builds: list[Build], params: dict[str, Any], scope: str) -> dict[str, Any]:
        """One page of ids; the opaque token remembers the scope, the order and the last build."""
        order = params.get("sortOrder") or "DESCENDING"
        after: int | None = None
        token = params.get("nextToken")
        if token is not None:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
                if decoded["scope"] != scope:
                    raise ValueError(scope)
                order, after = decoded["order"], int(decoded["after"])
            except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
                raise ApiError("InvalidInputException", "Invalid next token") from None
        ordered = sorted(builds, key=lambda b: b.sequence, reverse=order == "DESCENDING")
        if after is not None:
            ordered = [b for b in ordered if (b.sequence < after if order == "DESCENDING" else b.sequence > after)]
        page = ordered[:_PAGE]
        next_token = None
        if len(ordered) > _PAGE:
            document = {"scope": scope, "order": order, "after": page[-1].sequence}
            next_token = base64.urlsafe_b64encode(json.dumps(document).encode()).decode()
        return {"ids": [b.id for b in page], "nextToken": next_token}

    # --- StopBuild and BatchDeleteBuilds -----------------------------------------------

    def stop_build(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Stop a running build where it is; a completed build comes back unchanged.

        The running phase ends ``STOPPED`` (no contexts), then the build is
        ``COMPLETED`` at once: CodeBuild runs no FINALIZING after a stop.
        """
        build = self._stored(ctx, params["id"])
        if build is None:
            raise ApiError("ResourceNotFoundException", f"Build {params['id']} does not exist")
        if not build.complete:
            now = max(_now(), build.phases[-1].start)
            self._close(build, now, "STOPPED", None)
            self._finish(build, "STOPPED", now)
        return {"build": build.to_output()}

    def batch_delete_builds(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Delete completed builds; running ones are refused with ``BUILD_IN_PROGRESS``.

        Build numbers of the remaining builds do not change.
        """
        region = self._region(ctx.account_id, ctx.region)
        deleted, not_deleted = [], []
        for value in params["ids"]:
            build = self._stored(ctx, value)
            if build is None:
                not_deleted.append({"id": value, "statusCode": "BUILD_NOT_FOUND"})
            elif not build.complete:
                not_deleted.append({"id": build.arn, "statusCode": "BUILD_IN_PROGRESS"})
            else:
                del region.builds[build.id]
                deleted.append(build.arn)
        return {"buildsDeleted": deleted, "buildsNotDeleted": not_deleted}

    # --- moving builds on (admin API) --------------------------------------------------

    def advance(self, build_id: str, phase: str) -> Build:
        """Move a running build forward to ``phase``; the phases before it succeed now.

        Raises ``BuildNotFound``, ``BuildNotInProgress``, or ``ValueError`` for
        a phase that is not ahead of the current one.
        """
        with self._lock:
            build = self._running(build_id)
            self._check_ahead(build, phase, inclusive=False)
            now = max(_now(), build.phases[-1].start)
            for phase_type in PHASE_ORDER[PHASE_ORDER.index(build.current_phase) : PHASE_ORDER.index(phase)]:
                if build.phases[-1].phase_type != phase_type:
                    build.phases.append(Phase(phase_type, now))
                self._close(build, now, "SUCCEEDED", _succeeded_contexts(phase_type))
            build.phases.append(Phase(phase, now))
            return build

    def complete(
        self,
        build_id: str,
        status: str,
        failed_phase: str | None = None,
        context: str | None = None,
        duration_seconds: float | None = None,
    ) -> Build:
        """Finish a running build with ``status``, with the phases CodeBuild would record.

        * SUCCEEDED: every remaining phase through FINALIZING succeeds.
        * FAILED/FAULT/TIMED_OUT: ``failed_phase`` (default BUILD) gets the
          status and the ``context`` (``"STATUS_CODE: message"``).  After a
          failed command CodeBuild still runs POST_BUILD (when BUILD ran),
          UPLOAD_ARTIFACTS and FINALIZING; phases before BUILD skip to
          FINALIZING; a fault or time-out goes straight to FINALIZING.
        * STOPPED: the phase is stopped and the build completes, as StopBuild.

        The build ends ``duration_seconds`` after its start (default: now; a
        time-out lasts its timeout), spread over the phases; ``COMPLETED``
        starts at the end.  Raises ``BuildNotFound``, ``BuildNotInProgress`` or
        ``ValueError`` for arguments that do not fit.
        """
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}")
        contexts = None
        if context is not None:
            match = _CONTEXT.fullmatch(context)
            if match is None:
                raise ValueError("context must read 'STATUS_CODE: message'")
            contexts = [match.groups()]
        if duration_seconds is not None and (duration_seconds < 0 or not math.isfinite(duration_seconds)):
            raise ValueError("durationSeconds must be a non-negative number")
        if status == "SUCCEEDED" and (failed_phase is not None or context is not None):
            raise ValueError("failedPhase and context describe unsuccessful builds only")
        with self._lock:
            build = self._running(build_id)
            if status != "SUCCEEDED":
                if failed_phase is None:
                    current = PHASE_ORDER.index(build.current_phase)
                    failed_phase = build.current_phase if current > PHASE_ORDER.index("BUILD") else "BUILD"
                if failed_phase == "QUEUED" and status not in ("TIMED_OUT", "STOPPED"):
                    raise ValueError("a queued build can only time out or be stopped")
                self._check_ahead(build, failed_phase, inclusive=True)
                if contexts is None and status in DEFAULT_CONTEXTS:
                    contexts = [DEFAULT_CONTEXTS[status]]

            if duration_seconds is None and status == "TIMED_OUT":
                duration_seconds = 60 * (build.queued_timeout if failed_phase == "QUEUED" else build.timeout)
            end = build.start_time + datetime.timedelta(seconds=duration_seconds) if duration_seconds is not None else _now()
            end = max(end, build.phases[-1].start)

            plan = self._plan(build.current_phase, status, failed_phase, contexts)
            self._spread(build, plan, end)
            self._finish(build, status, end)
            return build

    def _running(self, build_id: str) -> Build:
        build = self.find_build(build_id)
        if build.complete:
            raise BuildNotInProgress(f"build {build.id} is {build.status}, not IN_PROGRESS")
        return build

    @staticmethod
    def _check_ahead(build: Build, phase: str, inclusive: bool) -> None:
        if phase not in PHASE_ORDER[1:-1]:
            raise ValueError(f"phase must be one of {', '.join(PHASE_ORDER[1:-1])}")
        current, target = PHASE_ORDER.index(build.current_phase), PHASE_ORDER.index(phase)
        if target < current or (target == current and not inclusive):
            raise ValueError(f"build {build.id} is already in {build.current_phase}, past {phase}")

    @staticmethod
    def _plan(
        current: str, status: str, failed_phase: str | None, contexts: list[tuple[str, str]] | None
    ) -> list[tuple[str, str, list[tuple[str, str]] | None]]:
        """(phase, status, contexts) of each phase still to close, the current one first."""
        start = PHASE_ORDER.index(current)
        if status == "SUCCEEDED":
            return [(p, "SUCCEEDED", _succeeded_contexts(p)) for p in PHASE_ORDER[start : PHASE_ORDER.index("COMPLETED")]]
        assert failed_phase is not None
        failed = PHASE_ORDER.index(failed_phase)
        plan = [(p, "SUCCEEDED", _succeeded_contexts(p)) for p in PHASE_ORDER[start:failed]]
        plan.append((failed_phase, status, contexts))
        if status == "STOPPED" or failed_phase == "QUEUED":
            after: tuple[str, ...] = ()
        elif status == "FAILED":
            after = _AFTER_FAILURE[failed_phase]
        else:
            after = () if failed_phase == "FINALIZING" else ("FINALIZING",)
        plan += [(p, "SUCCEEDED", _succeeded_contexts(p)) for p in after]
        return plan

    @staticmethod
    def _spread(build: Build, plan: list[tuple[str, str, list[tuple[str, str]] | None]], end: datetime.datetime) -> None:
        """Close the planned phases one after another between the current phase's start and ``end``.

        Whole seconds are shared by ``_PHASE_WEIGHTS`` (the heaviest planned
        phase takes the rounding rest); the last phase ends exactly at ``end``.
        """
        start = build.phases[-1].start
        total = int((end - start).total_seconds())
        weights = [_PHASE_WEIGHTS.get(phase, 1) for phase, _, _ in plan]
        shares = [total * w // sum(weights) for w in weights]
        shares[weights.index(max(weights))] += total - sum(shares)
        moment = start
        for index, ((phase, status, contexts), share) in enumerate(zip(plan, shares)):
            if build.phases[-1].phase_type != phase:
                build.phases.append(Phase(phase, moment))
            moment = end if index == len(plan) - 1 else moment + datetime.timedelta(seconds=share)
            CodeBuildExtension._close(build, moment, status, contexts)

    @staticmethod
    def _close(build: Build, moment: datetime.datetime, status: str, contexts: list[tuple[str, str]] | None) -> None:
        phase = build.phases[-1]
        phase.end, phase.status, phase.contexts = moment, status, contexts

    @staticmethod
    def _finish(build: Build, status: str, moment: datetime.datetime) -> None:
        build.status, build.end_time = status, moment
        build.phases.append(Phase("COMPLETED", moment))

    def build_document(self, build: Build) -> dict[str, Any]:
        """The build as BatchGetBuilds writes it on the wire (epoch-second timestamps), for the admin API."""
        operation = model.operation_model("codebuild", "StopBuild")
        with self._lock:
            output = {"build": build.to_output()}
        return json.loads(model.serialize_output(operation, output))["build"]

    # --- the EventBridge event ---------------------------------------------------------

    def lose_events(self, build_id: str, count: int = 1) -> Build:
        """The build's next ``count`` events are lost: EventBridge delivers CodeBuild's events
        on a best-effort basis ("Delivery type: Best effort", EventBridge events reference)."""
        if count < 1:
            raise ValueError("count must be a positive integer")
        with self._lock:
            build = self.find_build(build_id)
            self._lost_events[build.id] = self._lost_events.get(build.id, 0) + count
            return build

    def event_document(self, build_id: str, event_id: str | None = None) -> dict[str, Any]:
        """The ``CodeBuild Build State Change`` event for the build's current state.

        ``time`` is when the build reached that state (its end, or its start
        while it runs); ``id`` is a fresh UUID unless ``event_id`` is given,
        since CodeBuild may emit one state change under several ids.  Raises
        ``EventLost`` for an event ``lose_events`` marked lost.
        """
        with self._lock:
            build = self.find_build(build_id)
            lost = self._lost_events.get(build.id, 0)
            if lost:
                self._lost_events[build.id] = lost - 1
                raise EventLost(f"the event of build {build.id} was lost on the way ({lost - 1} more will be)")
            environment = build.environment
            source = {
                key: build.source[member]
                for member, key in (
                    ("location", "location"),
                    ("type", "type"),
                    ("buildspec", "buildspec"),
                    ("reportBuildStatus", "report-build-status"),
                    ("gitCloneDepth", "git-clone-depth"),
                    ("insecureSsl", "insecure-ssl"),
                )
                if build.source.get(member) is not None
            }
            logs = build.logs()
            information: dict[str, Any] = {
                "artifact": {"location": build.artifacts.get("location", "")},
                "environment": {
                    "image": environment.get("image"),
                    "privileged-mode": bool(environment.get("privilegedMode")),
                    "image-pull-credentials-type": environment.get("imagePullCredentialsType"),
                    "compute-type": environment.get("computeType"),
                    "type": environment.get("type"),
                    "environment-variables": [
                        {"name": v["name"], "type": v["type"], "value": v["value"]}
                        for v in environment.get("environmentVariables", [])
                    ],
                },
                "cache": {k: v for k, v in build.cache.items() if k in ("type", "location")},
                "timeout-in-minutes": build.timeout,
                "build-complete": build.complete,
                "build-number": float(build.number),
                "initiator": build.initiator,
                "build-start-time": event_time(build.start_time),
                "source": source,
                "source-version": build.source_version,
                "logs": {
                    key: logs[member]
                    for member, key in (("groupName", "group-name"), ("streamName", "stream-name"), ("deepLink", "deep-link"))
                    if member in logs
                },
                "phases": [phase.to_event() for phase in build.phases],
                "queued-timeout-in-minutes": build.queued_timeout,
            }
            if information["source-version"] is None:
                del information["source-version"]
            current = build.phases[-1]
            return {
                "version": "0",
                "id": event_id or str(uuid.uuid4()),
                "detail-type": "CodeBuild Build State Change",
                "source": "aws.codebuild",
                "account": build.account_id,
                "time": (build.end_time or build.start_time).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": build.region,
                "resources": [build.arn],
                "detail": {
                    "build-status": EVENT_BUILD_STATUS.get(build.status, build.status),
                    "project-name": build.project_name,
                    "build-id": build.arn,
                    "additional-information": information,
                    "current-phase": current.phase_type,
                    "current-phase-context": "[" + ", ".join(current.context_strings()) + "]",
                    "version": "1",
                },
            }


def _succeeded_contexts(phase: str) -> list[tuple[str, str]] | None:
    """A succeeded phase's contexts as BatchGetBuilds shows them.

    SUBMITTED and QUEUED have none; from PROVISIONING on, CodeBuild reports
    one empty context (``{"statusCode": "", "message": ""}``), which events
    spell ``": "``.
    """
    return None if phase in ("SUBMITTED", "QUEUED") else [("", "")]
