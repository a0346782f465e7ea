"""CodeCommit branches and commits on top of moto's repositories.

moto 5.2.5 only knows repositories (Create/Get/DeleteRepository stay moto's).
This module keeps, per moto repository object, a git-like object store:
commits with a full snapshot of their files (path -> bytes and mode) and the
branch heads.  Object ids are real git ids (blob/tree/commit SHA-1 over git's
object encoding), so ids look and behave like CodeCommit's.

State hangs off moto's repository objects (weak keys): a deleted and
re-created repository starts empty, as in AWS, without any bookkeeping here.

Pull requests live in ``pullrequests.py``; they follow their branches through
the ``on_branch_moved`` hooks.  File reads (GetFile, GetDifferences) slot in as
further handlers in ``operations()`` working on ``RepositoryState``: every
commit keeps its complete file snapshot, so differences need nothing else.
"""

from __future__ import annotations

import datetime
import hashlib
import posixpath
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.codecommit.models import CodeCommit, codecommit_backends
from moto.core.utils import iso_8601_datetime_with_milliseconds

from .context import RequestContext
from .model import ApiError

GIT_FILE_MODES = {"NORMAL": "100644", "EXECUTABLE": "100755", "SYMLINK": "120000"}
_GIT_TREE_MODE = "40000"
_COMMIT_ID = re.compile(r"[0-9a-fA-F]{40}")
_BRANCHES_PER_PAGE = 100


@dataclass(frozen=True)
class FileEntry:
    content: bytes
    mode: str  # FileModeTypeEnum: NORMAL | EXECUTABLE | SYMLINK

    @property
    def blob_id(self) -> str:
        return _git_object_id(b"blob", self.content)


@dataclass(frozen=True)
class Identity:
    """Author or committer; CodeCommit reports dates as ``"<epoch> <tz>"``."""

    name: str
    email: str
    timestamp: int

    def git_line(self) -> bytes:
        return f"{self.name} <{self.email}> {self.timestamp} +0000".encode()

    def to_output(self) -> dict[str, Any]:
        return {"name": self.name, "email": self.email, "date": f"{self.timestamp} +0000"}

    @property
    def datetime(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.timestamp, tz=datetime.timezone.utc)


@dataclass(frozen=True)
class Commit:
    commit_id: str
    tree_id: str
    parents: tuple[str, ...]
    message: str
    author: Identity
    committer: Identity
    files: Mapping[str, FileEntry]  # full snapshot of the tree

    def to_output(self) -> dict[str, Any]:
        return {
            "commitId": self.commit_id,
            "treeId": self.tree_id,
            "parents": list(self.parents),
            "message": self.message,
            "author": self.author.to_output(),
            "committer": self.committer.to_output(),
            "additionalData": "",
        }


@dataclass
class RepositoryState:
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # branch name -> commit id
    default_branch: str | None = None


def _git_object_id(kind: bytes, payload: bytes) -> str:
    return hashlib.sha1(kind + b" %d\0" % len(payload) + payload).hexdigest()


def _tree_id(files: Mapping[str, FileEntry]) -> str:
    """The git tree id of a snapshot (nested trees, git's entry order)."""
    root: dict[str, Any] = {}
    for path, entry in files.items():
        *folders, name = path.split("/")
        node = root
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = entry
    return _hash_tree(root)


def _hash_tree(node: dict[str, Any]) -> str:
    entries = []
    for name, child in node.items():
        if isinstance(child, dict):
            # git sorts a tree as if its name ended with '/'
            entries.append((name.encode() + b"/", _GIT_TREE_MODE, name, _hash_tree(child)))
        else:
            entries.append((name.encode(), GIT_FILE_MODES[child.mode], name, child.blob_id))
    payload = b"".join(
        f"{mode} {name}".encode() + b"\0" + bytes.fromhex(object_id)
        for _, mode, name, object_id in sorted(entries)
    )
    return _git_object_id(b"tree", payload)


def _commit_id(tree_id: str, parents: tuple[str, ...], author: Identity, committer: Identity, message: str) -> str:
    lines = [f"tree {tree_id}".encode()]
    lines += [f"parent {parent}".encode() for parent in parents]
    lines += [b"author " + author.git_line(), b"committer " + committer.git_line()]
    body = message if message.endswith("\n") else message + "\n"
    return _git_object_id(b"commit", b"\n".join(lines) + b"\n\n" + body.encode())


def _valid_branch_name(name: str) -> bool:
    """git check-ref-format's rules for ``refs/heads/<name>``."""
    if not name or name.startswith(("/", "-")) or name.endswith(("/", ".", ".lock")):
        return False
    if any(part.startswith(".") for part in name.split("/")):
        return False
    if ".." in name or "//" in name or "@{" in name or name == "@":
        return False
    return not any(ch in name for ch in " ~^:?*[\\\x7f") and all(ord(ch) >= 32 for ch in name)


def _normalize_path(path: str) -> str:
    if not path:
        raise ApiError("PathRequiredException", "The commit cannot be created because a path is required.")
    normalized = path.lstrip("/")
    parts = normalized.split("/")
    if not normalized or normalized.endswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
        raise ApiError("InvalidPathException", f"The specified path {path} is not valid.")
    return normalized


def _folders(path: str) -> list[str]:
    """All ancestor folders of ``path``: 'a/b/c' -> ['a', 'a/b']."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class CodeCommitExtension:
    """Handlers for the CodeCommit operations moto lacks, plus lookups for CodePipeline."""

    def __init__(self, lock: threading.RLock):
        self._lock = lock
        self._repositories: weakref.WeakKeyDictionary[CodeCommit, RepositoryState] = weakref.WeakKeyDictionary()
        # Called as hook(ctx, repository, branch, commit_id) after a branch moved to a new commit
        # (pull requests follow their branches); the state lock is held.
        self.on_branch_moved: list[Callable[[RequestContext, str, str, str], None]] = []

    def operations(self) -> dict[str, Callable[[RequestContext, dict[str, Any]], dict[str, Any]]]:
        return {
            "CreateCommit": self.create_commit,
            "GetCommit": self.get_commit,
            "GetBranch": self.get_branch,
            "CreateBranch": self.create_branch,
            "ListBranches": self.list_branches,
            "DeleteBranch": self.delete_branch,
        }

    def reset(self) -> None:
        with self._lock:
            self._repositories.clear()

    # --- lookups shared with CodePipeline ----------------------------------------------

    def repository(self, account_id: str, region: str, name: str) -> RepositoryState | None:
        """The emulated repository ``name``, or None when moto has no such repository."""
        with self._lock:
            repo = codecommit_backends[account_id][region].repositories.get(name)
            if repo is None:
                return None
            return self._repositories.setdefault(repo, RepositoryState())

    def _existing(self, ctx: RequestContext, name: str) -> tuple[CodeCommit, RepositoryState]:
        repo = codecommit_backends[ctx.account_id][ctx.region].repositories.get(name)
        if repo is None:
            raise ApiError("RepositoryDoesNotExistException", f"{name} does not exist")
        return repo, self._repositories.setdefault(repo, RepositoryState())

    @staticmethod
    def _commit_id_param(value: str, error: str = "InvalidCommitIdException") -> str:
        """A full 40-hex commit id, lower-cased; CodeCommit takes no abbreviations."""
        if not _COMMIT_ID.fullmatch(value):
            raise ApiError(error, f"The specified commit ID {value} is not valid.")
        return value.lower()

    @staticmethod
    def _branch_param(params: dict[str, Any]) -> str:
        name = params.get("branchName")
        if name is None:
            raise ApiError("BranchNameRequiredException", "A branch name is required but was not specified.")
        if not _valid_branch_name(name):
            raise ApiError("InvalidBranchNameException", f"The specified branch name {name} is not valid.")
        return name

    def branch_moved(self, ctx: RequestContext, repository: str, branch: str, commit_id: str) -> None:
        """Tells the ``on_branch_moved`` hooks that ``branch`` of ``repository`` now points at ``commit_id``."""
        for hook in self.on_branch_moved:
            hook(ctx, repository, branch, commit_id)

    # --- handlers ----------------------------------------------------------------------

    def create_commit(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """CreateCommit with CodeCommit's rules for parents, branches and changes.

        The first commit of an empty repository creates the branch and becomes
        the default branch; later commits need ``parentCommitId`` equal to the
        branch tip.  A repository that has commits cannot get a new branch
        through CreateCommit (``BranchDoesNotExistException``; use CreateBranch).
        """
        repo, state = self._existing(ctx, params["repositoryName"])
        branch = self._branch_param(params)
        parent_id = params.get("parentCommitId")
        if parent_id is not None:
            parent_id = self._commit_id_param(parent_id, "InvalidParentCommitIdException")
        tip = state.branches.get(branch)
        if tip is None and state.commits:
            raise ApiError("BranchDoesNotExistException", f"The branch {branch} does not exist in {repo.repository_metadata['repositoryName']}.")
        if tip is None:
            if parent_id is not None:
                raise ApiError("ParentCommitDoesNotExistException", f"The parent commit ID {parent_id} does not exist.")
            parent_files: Mapping[str, FileEntry] = {}
        else:
            if parent_id is None:
                raise ApiError("ParentCommitIdRequiredException", "A parent commit ID is required: the branch already has commits.")
            if parent_id not in state.commits:
                raise ApiError("ParentCommitDoesNotExistException", f"The parent commit ID {parent_id} does not exist.")
            if parent_id != tip:
                raise ApiError(
                    "ParentCommitIdOutdatedException",
                    f"The parent commit ID {parent_id} is not the tip of branch {branch} ({tip}).",
                )
            parent_files = state.commits[tip].files

        files, added, updated, deleted = _apply_changes(parent_files, params)
        tree_id = _tree_id(files)
        if tip is not None and tree_id == state.commits[tip].tree_id:
            raise ApiError("NoChangeException", "The commit cannot be created because no changes will be made to the repository as a result of this commit.")

        name = params.get("authorName") or ctx.caller_arn().rsplit("/", 1)[-1]
        identity = Identity(name=name, email=params.get("email", ""), timestamp=int(time.time()))
        parents = (tip,) if tip else ()
        message = params.get("commitMessage", "")
        commit_id = _commit_id(tree_id, parents, identity, identity, message)
        state.commits[commit_id] = Commit(commit_id, tree_id, parents, message, identity, identity, files)
        state.branches[branch] = commit_id
        if state.default_branch is None:
            state.default_branch = branch
            repo.repository_metadata["defaultBranch"] = branch
        repo.repository_metadata["lastModifiedDate"] = iso_8601_datetime_with_milliseconds()
        self.branch_moved(ctx, repo.repository_metadata["repositoryName"], branch, commit_id)

        def metadata(paths: list[str], snapshot: Mapping[str, FileEntry]) -> list[dict[str, str]]:
            return [{"absolutePath": p, "blobId": snapshot[p].blob_id, "fileMode": snapshot[p].mode} for p in paths]

        return {
            "commitId": commit_id,
            "treeId": tree_id,
            "filesAdded": metadata(added, files),
            "filesUpdated": metadata(updated, files),
            "filesDeleted": metadata(deleted, parent_files),
        }

    def get_commit(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        _, state = self._existing(ctx, params["repositoryName"])
        commit_id = self._commit_id_param(params["commitId"])
        commit = state.commits.get(commit_id)
        if commit is None:
            raise ApiError("CommitIdDoesNotExistException", f"Could not find commit with ID {commit_id}")
        return {"commit": commit.to_output()}

    def get_branch(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        # The model marks neither member required; the service still demands both.
        if params.get("repositoryName") is None:
            raise ApiError("RepositoryNameRequiredException", "A repository name is required but was not specified.")
        repo, state = self._existing(ctx, params["repositoryName"])
        branch = self._branch_param(params)
        if branch not in state.branches:
            raise ApiError("BranchDoesNotExistException", f"Could not find branch {branch} in {repo.repository_metadata['repositoryName']}")
        return {"branch": {"branchName": branch, "commitId": state.branches[branch]}}

    def create_branch(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        _, state = self._existing(ctx, params["repositoryName"])
        branch = self._branch_param(params)
        commit_id = self._commit_id_param(params["commitId"])
        if branch in state.branches:
            raise ApiError("BranchNameExistsException", f"Branch {branch} already exists")
        if commit_id not in state.commits:
            raise ApiError("CommitDoesNotExistException", f"Could not find commit with ID {commit_id}")
        state.branches[branch] = commit_id
        return {}

    def list_branches(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Sorted branch names, 100 a page; the token is the last name of the page."""
        _, state = self._existing(ctx, params["repositoryName"])
        names = sorted(state.branches)
        token = params.get("nextToken")
        start = 0
        if token is not None:
            if token not in names:
                raise ApiError("InvalidContinuationTokenException", "The specified continuation token is not valid.")
            start = names.index(token) + 1
        page = names[start : start + _BRANCHES_PER_PAGE]
        more = start + _BRANCHES_PER_PAGE < len(names)
        return {"branches": page, "nextToken": page[-1] if more else None}

    def delete_branch(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        _, state = self._existing(ctx, params["repositoryName"])
        branch = self._branch_param(params)
        if branch not in state.branches:
            return {}
        if branch == state.default_branch:
            raise ApiError("DefaultBranchCannotBeDeletedException", f"The default branch {branch} cannot be deleted.")
        commit_id = state.branches.pop(branch)
        return {"deletedBranch": {"branchName": branch, "commitId": commit_id}}


def _apply_changes(
    parent: Mapping[str, FileEntry], params: dict[str, Any]
) -> tuple[dict[str, FileEntry], list[str], list[str], list[str]]:
    """Apply putFiles/deleteFiles/setFileModes to the parent snapshot.

    Returns the new snapshot and the added, updated and deleted paths.
    """
    puts = params.get("putFiles", [])
    deletes = params.get("deleteFiles", [])
    modes = params.get("setFileModes", [])
    if not (puts or deletes or modes):
        raise ApiError("FileEntryRequiredException", "The commit cannot be created because no files have been specified as added, updated, or changed.")

    files = dict(parent)
    touched: set[str] = set()

    def claim(path: str) -> str:
        normalized = _normalize_path(path)
        if normalized in touched:
            raise ApiError("SamePathRequestException", f"The commit cannot be created because more than one change applies to {normalized}.")
        touched.add(normalized)
        return normalized

    def existing(path: str) -> FileEntry:
        if path not in parent:
            raise ApiError("FileDoesNotExistException", f"The file {path} does not exist.")
        return parent[path]

    for entry in deletes:
        path = claim(entry["filePath"])
        existing(path)
        del files[path]

    for entry in puts:
        path = claim(entry["filePath"])
        content, source = entry.get("fileContent"), entry.get("sourceFile")
        if content is not None and source is not None:
            raise ApiError("FileContentAndSourceFileSpecifiedException", f"Both fileContent and sourceFile were given for {path}.")
        if content is None and source is None:
            raise ApiError("SourceFileOrContentRequiredException", f"Either fileContent or sourceFile is required for {path}.")
        if source is not None:
            source_path = _normalize_path(source["filePath"])
            original = existing(source_path)
            content = original.content
            if source.get("isMove"):
                files.pop(claim(source_path))
        mode = entry.get("fileMode") or (parent[path].mode if path in parent else "NORMAL")
        files[path] = FileEntry(content, mode)

    put_paths = {_normalize_path(e["filePath"]) for e in puts}
    for path in put_paths:
        if any(other.startswith(path + "/") for other in put_paths):
            raise ApiError("PutFileEntryConflictException", f"{path} is given both as a file and as a folder.")
        if any(folder in files for folder in _folders(path)):
            raise ApiError("DirectoryNameConflictsWithFileNameException", f"A folder of {path} is an existing file.")
        if any(other.startswith(path + "/") for other in files):
            raise ApiError("FileNameConflictsWithDirectoryNameException", f"{path} is an existing folder.")

    for entry in modes:
        path = claim(entry["filePath"])
        files[path] = FileEntry(existing(path).content, entry["fileMode"])

    if params.get("keepEmptyFolders"):
        emptied = {f for path in parent for f in _folders(path) if not any(p.startswith(f + "/") for p in files)}
        # git has no empty folders: a .gitkeep in each innermost emptied folder keeps the whole chain
        for folder in emptied:
            if not any(other.startswith(folder + "/") for other in emptied):
                files[posixpath.join(folder, ".gitkeep")] = FileEntry(b"", "NORMAL")

    added = sorted(p for p in files if p not in parent)
    updated = sorted(p for p in files if p in parent and files[p] != parent[p])
    deleted = sorted(p for p in parent if p not in files)
    return files, added, updated, deleted
