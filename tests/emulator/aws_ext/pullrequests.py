"""CodeCommit pull requests, comments and approval states, on the branches of ``codecommit.py``.

moto 5.2.5 has no pull requests at all.  Here a pull request is stored state
that changes only through the API, a push to its source branch, or the admin
API, with CodeCommit's rules:

* ids are sequential numbers per account and region (not per repository), as
  in CodeCommit;
* every change of the source or destination commit makes a new **revision**
  (a new ``revisionId``); approvals belong to the revision they were given
  on, so a push to the source branch resets them, and approving an older
  revision fails with ``RevisionNotCurrentException``;
* a commit on the source branch of an open pull request moves its
  ``sourceCommit`` (and its ``destinationCommit`` to the destination's current
  tip); a closed pull request keeps its commits, and takes the branches'
  current tips when it is reopened;
* ``clientRequestToken`` makes CreatePullRequest and PostCommentForPullRequest
  idempotent: the same token with the same parameters answers the first
  result again; with any other parameter it is
  ``IdempotencyParameterMismatchException``;
* the caller (from the request's credentials, as STS GetCallerIdentity
  names it) is the author of what it creates and the approver of what it
  approves; the author of a pull request cannot approve it.

``event_document`` renders a pull request as the EventBridge
``CodeCommit Pull Request State Change`` event CodeCommit emits, with its
quirks (``isMerged`` is the string ``"True"``/``"False"``,
``pullRequestStatus`` is ``Open``/``Closed``, ``repositoryNames`` a list,
dates in Java's ``Date.toString`` form).

Not emulated: approval rules and templates (so GetPullRequest lists no
``approvalRules`` and merges are never blocked by them), comment replies,
reactions, comment locations within files (a ``location`` is stored and
echoed, not checked), squash and three-way merges, the limit of 1,000 open
pull requests.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .codecommit import CodeCommitExtension, RepositoryState, _valid_branch_name
from .context import RequestContext
from .model import ApiError

EVENT_KINDS = (
    "pullRequestCreated",
    "pullRequestSourceBranchUpdated",
    "pullRequestStatusChanged",
    "pullRequestMergeStatusUpdated",
)
MAX_COMMENT_CHARS = 10240
DEFAULT_COMMENTS_PER_PAGE = 100
MAX_COMMENTS_PER_PAGE = 500
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class PullRequestNotFound(LookupError):
    pass


class PullRequestStateConflict(ValueError):
    """The admin API asked for something the pull request's state does not allow."""


def _now() -> datetime.datetime:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def java_date(moment: datetime.datetime) -> str:
    """Java's ``Date.toString`` in UTC, as CodeCommit's events write dates: ``Mon Nov 23 14:24:18 UTC 2026``."""
    moment = moment.astimezone(datetime.timezone.utc)
    return (
        f"{_WEEKDAYS[moment.weekday()]} {_MONTHS[moment.month - 1]} {moment.day:02d} "
        f"{moment:%H:%M:%S} UTC {moment.year}"
    )


def _fingerprint(params: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in params.items() if k != "clientRequestToken"}, sort_keys=True, default=str)


@dataclass(frozen=True)
class Revision:
    revision_id: str
    source_commit: str
    destination_commit: str
    merge_base: str | None


@dataclass
class StoredComment:
    comment_id: str
    repository: str
    before_commit: str
    after_commit: str
    location: dict[str, Any] | None
    content: str
    author_arn: str
    created: datetime.datetime
    client_request_token: str | None

    def to_output(self) -> dict[str, Any]:
        return {
            "commentId": self.comment_id,
            "content": self.content,
            "creationDate": self.created,
            "lastModifiedDate": self.created,
            "authorArn": self.author_arn,
            "deleted": False,
            "clientRequestToken": self.client_request_token,
            "callerReactions": [],
            "reactionCounts": {},
        }

    def post_output(self, pull_request_id: str) -> dict[str, Any]:
        """PostCommentForPullRequest's answer for this comment."""
        return {
            "repositoryName": self.repository,
            "pullRequestId": pull_request_id,
            "beforeCommitId": self.before_commit,
            "afterCommitId": self.after_commit,
            "location": self.location,
            "comment": self.to_output(),
        }


@dataclass
class PullRequest:
    pull_request_id: str
    account_id: str
    region: str
    title: str
    description: str | None
    author_arn: str
    client_request_token: str | None
    repository: str
    source_reference: str  # refs/heads/...
    destination_reference: str
    created: datetime.datetime
    revisions: list[Revision]
    status: str = "OPEN"
    last_activity: datetime.datetime = field(default_factory=_now)
    last_actor: str = ""
    merged_by: str | None = None
    merge_commit: str | None = None
    merge_option: str | None = None
    # revision id -> user ARN -> APPROVE | REVOKE
    approvals: dict[str, dict[str, str]] = field(default_factory=dict)
    comments: list[StoredComment] = field(default_factory=list)

    @property
    def current(self) -> Revision:
        return self.revisions[-1]

    @property
    def merged(self) -> bool:
        return self.merged_by is not None

    @property
    def source_branch(self) -> str:
        return self.source_reference.removeprefix("refs/heads/")

    @property
    def destination_branch(self) -> str:
        return self.destination_reference.removeprefix("refs/heads/")

    def to_output(self) -> dict[str, Any]:
        revision = self.current
        merge: dict[str, Any] = {"isMerged": self.merged}
        if self.merged:
            merge.update(mergedBy=self.merged_by, mergeCommitId=self.merge_commit, mergeOption=self.merge_option)
        return {
            "pullRequestId": self.pull_request_id,
            "title": self.title,
            "description": self.description,
            "lastActivityDate": self.last_activity,
            "creationDate": self.created,
            "pullRequestStatus": self.status,
            "authorArn": self.author_arn,
            "pullRequestTargets": [
                {
                    "repositoryName": self.repository,
                    "sourceReference": self.source_reference,
                    "destinationReference": self.destination_reference,
                    "destinationCommit": revision.destination_commit,
                    "sourceCommit": revision.source_commit,
                    "mergeBase": revision.merge_base,
                    "mergeMetadata": merge,
                }
            ],
            "clientRequestToken": self.client_request_token,
            "revisionId": revision.revision_id,
            "approvalRules": [],
        }


@dataclass
class RegionPullRequests:
    last_id: int = 0
    pull_requests: dict[str, PullRequest] = field(default_factory=dict)
    # CreatePullRequest token -> (fingerprint, pull request id)
    creation_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    # PostCommentForPullRequest token -> (fingerprint, pull request id, comment)
    comment_tokens: dict[str, tuple[str, str, StoredComment]] = field(default_factory=dict)


def _ancestors(state: RepositoryState, commit_id: str) -> list[str]:
    """``commit_id`` and every commit it descends from, nearest first (breadth first)."""
    seen: dict[str, None] = {}
    queue = deque([commit_id])
    while queue:
        current = queue.popleft()
        if current in seen:
            continue
        seen[current] = None
        commit = state.commits.get(current)
        if commit is not None:
            queue.extend(commit.parents)
    return list(seen)


def merge_base(state: RepositoryState, source: str, destination: str) -> str | None:
    """The nearest commit both ``source`` and ``destination`` descend from (None: unrelated histories)."""
    destination_history = set(_ancestors(state, destination))
    return next((c for c in _ancestors(state, source) if c in destination_history), None)


class PullRequestExtension:
    """Handlers for the pull-request operations, plus the admin API's event and reopen."""

    def __init__(self, lock: threading.RLock, codecommit: CodeCommitExtension):
        self._lock = lock
        self._codecommit = codecommit
        self._regions: dict[tuple[str, str], RegionPullRequests] = {}
        codecommit.on_branch_moved.append(self._branch_moved)

    def operations(self) -> dict[str, Callable[[RequestContext, dict[str, Any]], dict[str, Any]]]:
        return {
            "CreatePullRequest": self.create_pull_request,
            "GetPullRequest": self.get_pull_request,
            "UpdatePullRequestStatus": self.update_pull_request_status,
            "MergePullRequestByFastForward": self.merge_by_fast_forward,
            "PostCommentForPullRequest": self.post_comment,
            "GetCommentsForPullRequest": self.get_comments,
            "UpdatePullRequestApprovalState": self.update_approval_state,
            "GetPullRequestApprovalStates": self.get_approval_states,
        }

    def reset(self) -> None:
        with self._lock:
            self._regions.clear()

    # --- lookups -----------------------------------------------------------------------

    def _region(self, account_id: str, region: str) -> RegionPullRequests:
        return self._regions.setdefault((account_id, region), RegionPullRequests())

    def _state(self, pull_request: PullRequest) -> RepositoryState:
        state = self._codecommit.repository(pull_request.account_id, pull_request.region, pull_request.repository)
        # A deleted repository takes its pull requests with it in AWS; here they stay, frozen.
        return state if state is not None else RepositoryState()

    def _pull_request(self, ctx: RequestContext, pull_request_id: str) -> PullRequest:
        if not pull_request_id.isdigit():
            raise ApiError("InvalidPullRequestIdException", f"The pull request ID {pull_request_id} is not valid.")
        found = self._region(ctx.account_id, ctx.region).pull_requests.get(pull_request_id)
        if found is None:
            raise ApiError("PullRequestDoesNotExistException", f"The pull request ID {pull_request_id} does not exist.")
        return found

    def find(self, pull_request_id: str, repository: str | None = None) -> PullRequest:
        """Any region's pull request (the admin API names pull requests without a region)."""
        with self._lock:
            for region in list(self._regions.values()):
                found = region.pull_requests.get(pull_request_id)
                if found is not None and (repository is None or found.repository == repository):
                    return found
        where = f" in {repository}" if repository else ""
        raise PullRequestNotFound(f"no pull request {pull_request_id}{where}")

    @staticmethod
    def _repository_of(pull_request: PullRequest, name: str) -> None:
        if name != pull_request.repository:
            raise ApiError(
                "RepositoryNotAssociatedWithPullRequestException",
                f"The repository {name} is not associated with pull request {pull_request.pull_request_id}.",
            )

    def _new_revision(self, pull_request_id: str, state: RepositoryState, source: str, destination: str) -> Revision:
        seed = f"{pull_request_id}:{source}:{destination}:{uuid.uuid4()}"
        return Revision(
            revision_id=hashlib.sha256(seed.encode()).hexdigest(),
            source_commit=source,
            destination_commit=destination,
            merge_base=merge_base(state, source, destination),
        )

    def _follow_branches(self, pull_request: PullRequest, actor: str | None) -> bool:
        """Move an open pull request to its branches' current tips; True when that made a new revision."""
        state = self._state(pull_request)
        revision = pull_request.current
        source = state.branches.get(pull_request.source_branch, revision.source_commit)
        destination = state.branches.get(pull_request.destination_branch, revision.destination_commit)
        if (source, destination) == (revision.source_commit, revision.destination_commit):
            return False
        pull_request.revisions.append(self._new_revision(pull_request.pull_request_id, state, source, destination))
        pull_request.last_activity = _now()
        if actor is not None:
            pull_request.last_actor = actor
        return True

    def _branch_moved(self, ctx: RequestContext, repository: str, branch: str, commit_id: str) -> None:
        """CodeCommit's hook: a push to a branch updates the open pull requests on it."""
        actor = ctx.caller_arn()
        for pull_request in self._region(ctx.account_id, ctx.region).pull_requests.values():
            if (
                pull_request.status == "OPEN"
                and pull_request.repository == repository
                and branch in (pull_request.source_branch, pull_request.destination_branch)
            ):
                self._follow_branches(pull_request, actor)

    # --- pull requests -----------------------------------------------------------------

    @staticmethod
    def _reference(value: str | None, what: str) -> str:
        """A branch reference as ``refs/heads/<name>``; CodeCommit takes the short name too."""
        if value is None:
            raise ApiError("ReferenceNameRequiredException", f"A {what} reference name is required.")
        if value.startswith("refs/") and not value.startswith("refs/heads/"):
            raise ApiError("ReferenceTypeNotSupportedException", f"The reference {value} is not a branch.")
        name = value.removeprefix("refs/heads/")
        if not _valid_branch_name(name):
            raise ApiError("InvalidReferenceNameException", f"The reference name {value} is not valid.")
        return f"refs/heads/{name}"

    def create_pull_request(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        region = self._region(ctx.account_id, ctx.region)
        token = params.get("clientRequestToken")
        if token is None:
            raise ApiError("ClientRequestTokenRequiredException", "A client request token is required.")
        fingerprint = _fingerprint(params)
        known = region.creation_tokens.get(token)
        if known is not None:
            if known[0] != fingerprint:
                raise ApiError(
                    "IdempotencyParameterMismatchException",
                    f"The client request token {token} was already used with different parameters.",
                )
            return {"pullRequest": region.pull_requests[known[1]].to_output()}

        title = params["title"]
        if not title.strip():
            raise ApiError("TitleRequiredException", "A pull request title is required. It cannot be empty or null.")
        targets = params["targets"]
        if not targets:
            raise ApiError("TargetsRequiredException", "An array of target objects is required.")
        if len(targets) > 1:
            raise ApiError(
                "MultipleRepositoriesInPullRequestException",
                "You cannot include more than one repository in a pull request.",
            )
        target = targets[0]
        repository = target["repositoryName"]
        repo, state = self._codecommit._existing(ctx, repository)
        source = self._reference(target.get("sourceReference"), "source")
        if source.removeprefix("refs/heads/") not in state.branches:
            raise ApiError("ReferenceDoesNotExistException", f"The reference {source} does not exist in {repository}.")
        if target.get("destinationReference") is None:
            if state.default_branch is None:
                raise ApiError("ReferenceDoesNotExistException", f"{repository} has no default branch.")
            destination = f"refs/heads/{state.default_branch}"
        else:
            destination = self._reference(target["destinationReference"], "destination")
        if destination.removeprefix("refs/heads/") not in state.branches:
            raise ApiError(
                "ReferenceDoesNotExistException", f"The reference {destination} does not exist in {repository}."
            )
        if source == destination:
            raise ApiError(
                "SourceAndDestinationAreSameException",
                "The source branch and destination branch for the pull request are the same.",
            )

        author = ctx.caller_arn()
        region.last_id += 1
        pull_request_id = str(region.last_id)
        now = _now()
        source_commit = state.branches[source.removeprefix("refs/heads/")]
        destination_commit = state.branches[destination.removeprefix("refs/heads/")]
        pull_request = PullRequest(
            pull_request_id=pull_request_id,
            account_id=ctx.account_id,
            region=ctx.region,
            title=title,
            description=params.get("description"),
            author_arn=author,
            client_request_token=token,
            repository=repo.repository_metadata["repositoryName"],
            source_reference=source,
            destination_reference=destination,
            created=now,
            revisions=[self._new_revision(pull_request_id, state, source_commit, destination_commit)],
            last_activity=now,
            last_actor=author,
        )
        region.pull_requests[pull_request_id] = pull_request
        region.creation_tokens[token] = (fingerprint, pull_request_id)
        return {"pullRequest": pull_request.to_output()}

    def get_pull_request(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return {"pullRequest": self._pull_request(ctx, params["pullRequestId"]).to_output()}

    def update_pull_request_status(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Only OPEN -> OPEN, OPEN -> CLOSED and CLOSED -> CLOSED, as the API reference says.

        The console's "Reopen" has no API; the admin API's ``reopen`` stands in for it.
        """
        pull_request = self._pull_request(ctx, params["pullRequestId"])
        status = params["pullRequestStatus"]
        if pull_request.status == "CLOSED" and status == "OPEN":
            raise ApiError(
                "InvalidPullRequestStatusUpdateException",
                "The pull request status update is not valid. The only valid update is from OPEN to CLOSED.",
            )
        if status != pull_request.status:
            pull_request.status = status
            pull_request.last_activity = _now()
            pull_request.last_actor = ctx.caller_arn()
        return {"pullRequest": pull_request.to_output()}

    def merge_by_fast_forward(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        pull_request = self._pull_request(ctx, params["pullRequestId"])
        _, state = self._codecommit._existing(ctx, params["repositoryName"])
        self._repository_of(pull_request, params["repositoryName"])
        if pull_request.status == "CLOSED":
            raise ApiError("PullRequestAlreadyClosedException", "The pull request is already closed.")
        source = state.branches.get(pull_request.source_branch)
        if source is None:
            raise ApiError("ReferenceDoesNotExistException", f"The reference {pull_request.source_reference} does not exist.")
        expected = params.get("sourceCommitId")
        if expected is not None:
            expected = self._codecommit._commit_id_param(expected)
            if expected != source:
                raise ApiError(
                    "TipOfSourceReferenceIsDifferentException",
                    f"The tip of the source branch is {source}, not {expected}.",
                )
        destination = state.branches.get(pull_request.destination_branch)
        if destination is None or destination not in _ancestors(state, source):
            raise ApiError(
                "ManualMergeRequiredException",
                "The pull request cannot be merged automatically into the destination branch.",
            )
        actor = ctx.caller_arn()
        pull_request.status = "CLOSED"
        pull_request.merged_by = actor
        pull_request.merge_commit = source
        pull_request.merge_option = "FAST_FORWARD_MERGE"
        pull_request.last_activity = _now()
        pull_request.last_actor = actor
        # Closed first, so only the other open pull requests on the destination follow it.
        state.branches[pull_request.destination_branch] = source
        self._codecommit.branch_moved(ctx, pull_request.repository, pull_request.destination_branch, source)
        return {"pullRequest": pull_request.to_output()}

    def reopen(self, pull_request_id: str, repository: str | None = None) -> PullRequest:
        """What the console's "Reopen" does: a closed, unmerged pull request opens again on its branches' tips."""
        with self._lock:
            pull_request = self.find(pull_request_id, repository)
            if pull_request.status == "OPEN":
                raise PullRequestStateConflict(f"pull request {pull_request_id} is already open")
            if pull_request.merged:
                raise PullRequestStateConflict(f"pull request {pull_request_id} is merged and cannot be reopened")
            state = self._state(pull_request)
            for branch in (pull_request.source_branch, pull_request.destination_branch):
                if branch not in state.branches:
                    raise PullRequestStateConflict(f"branch {branch} of pull request {pull_request_id} no longer exists")
            pull_request.status = "OPEN"
            pull_request.last_activity = _now()
            self._follow_branches(pull_request, None)
            return pull_request

    # --- comments ----------------------------------------------------------------------

    def post_comment(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        region = self._region(ctx.account_id, ctx.region)
        pull_request = self._pull_request(ctx, params["pullRequestId"])
        token = params.get("clientRequestToken")
        if token is None:
            raise ApiError("ClientRequestTokenRequiredException", "A client request token is required.")
        fingerprint = _fingerprint(params)
        known = region.comment_tokens.get(token)
        if known is not None:
            if known[0] != fingerprint:
                raise ApiError(
                    "IdempotencyParameterMismatchException",
                    f"The client request token {token} was already used with different parameters.",
                )
            return known[2].post_output(known[1])

        _, state = self._codecommit._existing(ctx, params["repositoryName"])
        self._repository_of(pull_request, params["repositoryName"])
        before = self._codecommit._commit_id_param(params["beforeCommitId"])
        after = self._codecommit._commit_id_param(params["afterCommitId"])
        for commit_id in (before, after):
            if commit_id not in state.commits:
                raise ApiError("CommitDoesNotExistException", f"The commit {commit_id} does not exist.")
        if before == after:
            raise ApiError(
                "BeforeCommitIdAndAfterCommitIdAreSameException",
                "The before commit ID and the after commit ID are the same.",
            )
        content = params["content"]
        if not content:
            raise ApiError("CommentContentRequiredException", "The comment is empty.")
        if len(content) > MAX_COMMENT_CHARS:
            raise ApiError(
                "CommentContentSizeLimitExceededException",
                f"The comment is too large. Comments are limited to {MAX_COMMENT_CHARS:,} characters.",
            )
        location = params.get("location")
        if location is not None and not location.get("filePath"):
            raise ApiError("PathRequiredException", "A file path is required for a comment on a location.")
        comment = StoredComment(
            comment_id=str(uuid.uuid4()),
            repository=pull_request.repository,
            before_commit=before,
            after_commit=after,
            location=location,
            content=content,
            author_arn=ctx.caller_arn(),
            created=_now(),
            client_request_token=token,
        )
        pull_request.comments.append(comment)
        pull_request.last_activity = comment.created
        region.comment_tokens[token] = (fingerprint, pull_request.pull_request_id, comment)
        return comment.post_output(pull_request.pull_request_id)

    def get_comments(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Comments oldest first, grouped by (before, after, location) as consecutive runs; pages count comments.

        ``repositoryName``, ``beforeCommitId`` and ``afterCommitId`` go together:
        with them, only the comments on that comparison are listed.
        """
        pull_request = self._pull_request(ctx, params["pullRequestId"])
        repository = params.get("repositoryName")
        before, after = params.get("beforeCommitId"), params.get("afterCommitId")
        comments = pull_request.comments
        if repository is not None or before is not None or after is not None:
            if repository is None:
                raise ApiError("RepositoryNameRequiredException", "A repository name is required.")
            if before is None or after is None:
                raise ApiError("CommitIdRequiredException", "A commit ID is required.")
            _, state = self._codecommit._existing(ctx, repository)
            self._repository_of(pull_request, repository)
            before = self._codecommit._commit_id_param(before)
            after = self._codecommit._commit_id_param(after)
            for commit_id in (before, after):
                if commit_id not in state.commits:
                    raise ApiError("CommitDoesNotExistException", f"The commit {commit_id} does not exist.")
            comments = [c for c in comments if (c.before_commit, c.after_commit) == (before, after)]
        limit = params.get("maxResults", DEFAULT_COMMENTS_PER_PAGE)
        if not 1 <= limit <= MAX_COMMENTS_PER_PAGE:
            raise ApiError("InvalidMaxResultsException", f"The maximum number of results {limit} is not valid.")
        start = _page_start(params.get("nextToken"), len(comments))
        page = comments[start : start + limit]
        groups: list[dict[str, Any]] = []
        for comment in page:
            key = (comment.before_commit, comment.after_commit, json.dumps(comment.location, sort_keys=True))
            if groups and groups[-1]["_key"] == key:
                groups[-1]["comments"].append(comment.to_output())
                continue
            groups.append(
                {
                    "_key": key,
                    "pullRequestId": pull_request.pull_request_id,
                    "repositoryName": comment.repository,
                    "beforeCommitId": comment.before_commit,
                    "afterCommitId": comment.after_commit,
                    "location": comment.location,
                    "comments": [comment.to_output()],
                }
            )
        for group in groups:
            del group["_key"]
        more = start + limit < len(comments)
        return {"commentsForPullRequestData": groups, "nextToken": _page_token(start + limit) if more else None}

    # --- approvals ---------------------------------------------------------------------

    @staticmethod
    def _revision(pull_request: PullRequest, revision_id: str) -> Revision:
        found = next((r for r in pull_request.revisions if r.revision_id == revision_id), None)
        if found is None:
            raise ApiError("InvalidRevisionIdException", f"The revision ID {revision_id} is not valid.")
        return found

    def update_approval_state(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        pull_request = self._pull_request(ctx, params["pullRequestId"])
        revision = self._revision(pull_request, params["revisionId"])
        if revision != pull_request.current:
            raise ApiError(
                "RevisionNotCurrentException",
                f"The revision ID {revision.revision_id} is not the current revision of pull request "
                f"{pull_request.pull_request_id}.",
            )
        if pull_request.status == "CLOSED":
            raise ApiError("PullRequestAlreadyClosedException", "The pull request is already closed.")
        caller = ctx.caller_arn()
        state = params["approvalState"]
        if state == "APPROVE" and caller == pull_request.author_arn:
            raise ApiError(
                "PullRequestCannotBeApprovedByAuthorException",
                "You cannot approve a pull request that you created.",
            )
        pull_request.approvals.setdefault(revision.revision_id, {})[caller] = state
        return {}

    def get_approval_states(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        pull_request = self._pull_request(ctx, params["pullRequestId"])
        revision = self._revision(pull_request, params["revisionId"])
        states = pull_request.approvals.get(revision.revision_id, {})
        return {"approvals": [{"userArn": user, "approvalState": state} for user, state in states.items()]}

    # --- the EventBridge event ---------------------------------------------------------

    def event_document(
        self, pull_request_id: str, event: str, repository: str | None = None, event_id: str | None = None
    ) -> dict[str, Any]:
        """The ``CodeCommit Pull Request State Change`` event ``event`` for the pull request as it is now.

        Raises ``PullRequestNotFound``, ``ValueError`` for an unknown event kind
        and ``PullRequestStateConflict`` for a merge event of an unmerged pull
        request.
        """
        if event not in EVENT_KINDS:
            raise ValueError(f"event must be one of {', '.join(EVENT_KINDS)}")
        with self._lock:
            pull_request = self.find(pull_request_id, repository)
            if event == "pullRequestMergeStatusUpdated" and not pull_request.merged:
                raise PullRequestStateConflict(f"pull request {pull_request_id} is not merged")
            revision = pull_request.current
            status = "Open" if pull_request.status == "OPEN" else "Closed"
            caller = pull_request.last_actor or pull_request.author_arn
            console = (
                f"https://{pull_request.region}.console.aws.amazon.com/codesuite/codecommit/repositories/"
                f"{pull_request.repository}/pull-requests/{pull_request_id}?region={pull_request.region}"
            )
            what = {
                "pullRequestCreated": (
                    "Event: Created. The pull request was created with the following information: "
                    f"Pull Request ID as {pull_request_id} and title as {pull_request.title}."
                ),
                "pullRequestSourceBranchUpdated": (
                    f"Event: Updated.  The user updated the following pull request: {pull_request_id}. The pull "
                    f"request was updated with one or more commits to the source branch: {pull_request.source_branch}."
                ),
                "pullRequestStatusChanged": (
                    f"updated the following PullRequest {pull_request_id}. The pull request status has been "
                    f"updated. The status is {status.lower()}."
                ),
                "pullRequestMergeStatusUpdated": (
                    f"updated the following PullRequest {pull_request_id}. The pull request merge status has been "
                    "updated. The status is merged."
                ),
            }[event]
            detail: dict[str, Any] = {
                "author": pull_request.author_arn,
                "callerUserArn": caller,
                "creationDate": java_date(pull_request.created),
                "description": pull_request.description,
                "destinationCommit": revision.destination_commit,
                "destinationReference": pull_request.destination_reference,
                "event": event,
                "isMerged": "True" if pull_request.merged else "False",
                "lastModifiedDate": java_date(pull_request.last_activity),
                "mergeOption": pull_request.merge_option if event == "pullRequestMergeStatusUpdated" else None,
                "notificationBody": (
                    "A pull request event occurred in the following AWS CodeCommit repository: "
                    f"{pull_request.repository}. User: {caller}. {what} For more information, go to the AWS "
                    f"CodeCommit console {console}"
                ),
                "pullRequestId": pull_request_id,
                "pullRequestStatus": status,
                "repositoryNames": [pull_request.repository],
                "revisionId": revision.revision_id,
                "sourceCommit": revision.source_commit,
                "sourceReference": pull_request.source_reference,
                "title": pull_request.title,
            }
            return {
                "version": "0",
                "id": event_id or str(uuid.uuid4()),
                "detail-type": "CodeCommit Pull Request State Change",
                "source": "aws.codecommit",
                "account": pull_request.account_id,
                "time": pull_request.last_activity.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": pull_request.region,
                "resources": [
                    f"arn:aws:codecommit:{pull_request.region}:{pull_request.account_id}:{pull_request.repository}"
                ],
                "detail": {k: v for k, v in detail.items() if v is not None},
            }


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _page_start(token: str | None, total: int) -> int:
    if token is None:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError):
        raise ApiError("InvalidContinuationTokenException", "The specified continuation token is not valid.") from None
    if not isinstance(offset, int) or not 0 <= offset <= total:
        raise ApiError("InvalidContinuationTokenException", "The specified continuation token is not valid.")
    return offset
