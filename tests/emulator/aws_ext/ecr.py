"""Amazon ECR repositories, images and basic scan findings, kept as ECR keeps them.

moto 5.2.5 has an ECR, but not one a deploy gate can be tested against: its
DescribeImageScanFindings answers a static document (or one posted to its
``/moto-api/static`` endpoint) whatever was scanned, ignores ``maxResults``
and ``nextToken``, and a scan has no state a test can move.  So ECR is
served here, whole (no operation goes on to moto, whose store would be a
second one):

* CreateRepository / DescribeRepositories: ``imageTagMutability``
  (``MUTABLE``, ``IMMUTABLE`` and the ``*_WITH_EXCLUSION`` forms with their
  wildcard filters) and ``imageScanningConfiguration.scanOnPush``;
* PutImage: the digest is ``sha256:`` over the manifest's bytes; putting a
  tag the repository already holds on the same manifest is refused with
  ``ImageAlreadyExistsException`` (ECR does so on every repository); moving
  an existing tag to another manifest is refused with
  ``ImageTagAlreadyExistsException`` when the tag is immutable, and moves the
  tag otherwise (the old image keeps its other tags, or becomes untagged);
* DescribeImages (by ``imageIds``, or every image paged by ``maxResults`` /
  ``nextToken`` with the ``tagStatus`` filter), BatchGetImage (what is not
  found goes to ``failures`` with ECR's failure codes);
* StartImageScan and DescribeImageScanFindings: a scan is ``IN_PROGRESS``
  until the admin API completes or fails it (``POST /_emulator/ecr/scan``);
  findings are basic-scan findings (``name``, ``severity``, ``uri``,
  ``description``, ``attributes`` such as ``package_name`` and
  ``package_version``), paged by ``maxResults`` (1-1000, default 100) and an
  opaque ``nextToken``, with the severity counts of all of them on every
  page.  An image never scanned answers ``ScanNotFoundException``; a push to
  a ``scanOnPush`` repository starts a scan.

The admin API (``app.py``) creates repositories, pushes images and sets scan
results through the same code, so a push refused here is refused there too.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import fnmatch
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from .context import DEFAULT_REGION, RequestContext
from .model import ApiError

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")
# The scan states a test may set: basic scanning only knows these three.
SCAN_STATES = ("IN_PROGRESS", "COMPLETE", "FAILED")
MUTABILITIES = ("MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION")
DEFAULT_PAGE = 100
SCAN_DESCRIPTIONS = {
    "IN_PROGRESS": "The scan is in progress.",
    "COMPLETE": "The scan was completed successfully.",
    "FAILED": "UnsupportedImageError: The operating system and/or package manager are not supported.",
}
# ECR's rule for tags, enforced by the service beyond the model's length limits.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+")
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_V1 = "application/vnd.docker.distribution.manifest.v1+json"


def _now() -> datetime.datetime:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def digest_of(manifest: str) -> str:
    """An image's digest: sha256 over the manifest's bytes, as the registry computes it."""
    return "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()


@dataclass
class Scan:
    status: str
    description: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    completed_at: datetime.datetime | None = None
    source_updated_at: datetime.datetime | None = None

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding["severity"]] = counts.get(finding["severity"], 0) + 1
        return counts

    def status_output(self) -> dict[str, Any]:
        return {"status": self.status, "description": self.description}


@dataclass
class Image:
    digest: str
    manifest: str
    media_type: str
    artifact_media_type: str | None
    size: int
    pushed_at: datetime.datetime
    tags: list[str] = field(default_factory=list)
    scan: Scan | None = None


@dataclass
class Repository:
    name: str
    registry_id: str
    region: str
    partition: str
    created_at: datetime.datetime
    mutability: str
    exclusions: list[dict[str, str]]
    scan_on_push: bool
    # by digest, in push order
    images: dict[str, Image] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:{self.partition}:ecr:{self.region}:{self.registry_id}:repository/{self.name}"

    @property
    def uri(self) -> str:
        suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        return f"{self.registry_id}.dkr.ecr.{self.region}.{suffix}/{self.name}"

    def tagged(self, tag: str) -> Image | None:
        return next((image for image in self.images.values() if tag in image.tags), None)

    def tag_immutable(self, tag: str) -> bool:
        """Whether ``tag`` may not move: the mutability, turned round for excluded tags."""
        excluded = any(fnmatch.fnmatchcase(tag, rule["filter"]) for rule in self.exclusions)
        if self.mutability == "IMMUTABLE":
            return True
        if self.mutability == "IMMUTABLE_WITH_EXCLUSION":
            return not excluded
        if self.mutability == "MUTABLE_WITH_EXCLUSION":
            return excluded
        return False

    def to_output(self) -> dict[str, Any]:
        return {
            "repositoryArn": self.arn,
            "registryId": self.registry_id,
            "repositoryName": self.name,
            "repositoryUri": self.uri,
            "createdAt": self.created_at,
            "imageTagMutability": self.mutability,
            "imageTagMutabilityExclusionFilters": [dict(rule) for rule in self.exclusions] or None,
            "imageScanningConfiguration": {"scanOnPush": self.scan_on_push},
            "encryptionConfiguration": {"encryptionType": "AES256"},
        }


def _image_id_text(image_id: dict[str, Any]) -> str:
    """ECR's rendering of an image id in messages: ``{imageDigest:'null', imageTag:'v9'}``."""
    return f"{{imageDigest:'{image_id.get('imageDigest') or 'null'}', imageTag:'{image_id.get('imageTag') or 'null'}'}}"


class ImageRegistry:
    """The ECR operations, and the admin API's ways to push images and set scan results."""

    def __init__(self, lock: threading.RLock):
        self._lock = lock
        # (registry id, region) -> repository name -> repository
        self._registries: dict[tuple[str, str], dict[str, Repository]] = {}
        self._pushes = itertools.count(1)

    def operations(self) -> dict[str, Callable[[RequestContext, dict[str, Any]], dict[str, Any]]]:
        return {
            "CreateRepository": self.create_repository,
            "DescribeRepositories": self.describe_repositories,
            "PutImage": self.put_image,
            "DescribeImages": self.describe_images,
            "BatchGetImage": self.batch_get_image,
            "StartImageScan": self.start_image_scan,
            "DescribeImageScanFindings": self.describe_image_scan_findings,
        }

    def reset(self) -> None:
        with self._lock:
            self._registries.clear()

    # --- lookups -----------------------------------------------------------------------

    @staticmethod
    def _registry_id(ctx: RequestContext, params: dict[str, Any]) -> str:
        return params.get("registryId") or ctx.account_id

    def _repositories(self, registry_id: str, region: str) -> dict[str, Repository]:
        return self._registries.setdefault((registry_id, region), {})

    def _repository(self, registry_id: str, region: str, name: str) -> Repository:
        repository = self._repositories(registry_id, region).get(name)
        if repository is None:
            raise ApiError(
                "RepositoryNotFoundException",
                f"The repository with name '{name}' does not exist in the registry with id '{registry_id}'",
            )
        return repository

    @staticmethod
    def _find(repository: Repository, image_id: dict[str, Any]) -> Image | None:
        """The image an ``ImageIdentifier`` names; None when it names none (or a tag the digest lacks)."""
        digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
        if digest is not None:
            image = repository.images.get(digest)
            if image is None or (tag is not None and tag not in image.tags):
                return None
            return image
        if tag is not None:
            return repository.tagged(tag)
        return None

    def _image(self, repository: Repository, image_id: dict[str, Any]) -> Image:
        image = self._find(repository, image_id)
        if image is None:
            raise ApiError(
                "ImageNotFoundException",
                f"The image with imageId {_image_id_text(image_id)} does not exist within the repository "
                f"with name '{repository.name}' in the registry with id '{repository.registry_id}'",
            )
        return image

    # --- repositories ------------------------------------------------------------------

    def create_repository(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        registry_id = self._registry_id(ctx, params)
        if registry_id != ctx.account_id:
            raise ApiError(
                "InvalidParameterException",
                f"Invalid parameter at 'registryId' failed to satisfy constraint: 'must be the caller's account {ctx.account_id}'",
            )
        name = params["repositoryName"]
        mutability = params.get("imageTagMutability") or "MUTABLE"
        exclusions = params.get("imageTagMutabilityExclusionFilters") or []
        if exclusions and not mutability.endswith("_WITH_EXCLUSION"):
            raise ApiError(
                "InvalidParameterException",
                "Invalid parameter at 'imageTagMutabilityExclusionFilters' failed to satisfy constraint: "
                "'exclusion filters are only allowed with IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION'",
            )
        if mutability.endswith("_WITH_EXCLUSION") and not exclusions:
            raise ApiError(
                "InvalidParameterException",
                f"Invalid parameter at 'imageTagMutabilityExclusionFilters' failed to satisfy constraint: "
                f"'at least one exclusion filter is required with {mutability}'",
            )
        repositories = self._repositories(registry_id, ctx.region)
        if name in repositories:
            raise ApiError(
                "RepositoryAlreadyExistsException",
                f"The repository with name '{name}' already exists in the registry with id '{registry_id}'",
            )
        repository = Repository(
            name=name,
            registry_id=registry_id,
            region=ctx.region,
            partition=ctx.partition,
            created_at=_now(),
            mutability=mutability,
            exclusions=[{"filterType": r["filterType"], "filter": r["filter"]} for r in exclusions],
            scan_on_push=bool((params.get("imageScanningConfiguration") or {}).get("scanOnPush", False)),
        )
        repositories[name] = repository
        return {"repository": repository.to_output()}

    def describe_repositories(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        registry_id = self._registry_id(ctx, params)
        names = params.get("repositoryNames")
        if names:
            if params.get("maxResults") is not None or params.get("nextToken") is not None:
                raise ApiError(
                    "InvalidParameterException",
                    "Invalid parameter at 'maxResults' failed to satisfy constraint: "
                    "'cannot be used together with repositoryNames'",
                )
            found = [self._repository(registry_id, ctx.region, name) for name in names]
            return {"repositories": [r.to_output() for r in found]}
        repositories = sorted(self._repositories(registry_id, ctx.region).values(), key=lambda r: r.name)
        page, next_token = _page(
            [r.name for r in repositories], params, {"registry": registry_id, "region": ctx.region, "list": "repositories"}
        )
        chosen = set(page)
        return {"repositories": [r.to_output() for r in repositories if r.name in chosen], "nextToken": next_token}

    # --- images ------------------------------------------------------------------------

    def put_image(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        repository = self._repository(self._registry_id(ctx, params), ctx.region, params["repositoryName"])
        image, tag = self.push(
            repository,
            params["imageManifest"],
            tag=params.get("imageTag"),
            media_type=params.get("imageManifestMediaType"),
            digest=params.get("imageDigest"),
        )
        return {
            "image": {
                "registryId": repository.registry_id,
                "repositoryName": repository.name,
                "imageId": {"imageDigest": image.digest, "imageTag": tag},
                "imageManifest": image.manifest,
                "imageManifestMediaType": image.media_type,
            }
        }

    def push(
        self,
        repository: Repository,
        manifest: str,
        tag: str | None = None,
        media_type: str | None = None,
        digest: str | None = None,
    ) -> tuple[Image, str | None]:
        """Store ``manifest`` under ``tag`` as PutImage does; raises ``ApiError`` as ECR refuses."""
        try:
            document = json.loads(manifest)
        except ValueError:
            document = None
        if not isinstance(document, dict) or not isinstance(document.get("schemaVersion"), int):
            raise ApiError(
                "InvalidParameterException",
                "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'",
            )
        declared = document.get("mediaType")
        if media_type is not None and declared is not None and media_type != declared:
            raise ApiError(
                "InvalidParameterException",
                f"Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: "
                f"'Manifest media type {declared} does not match the given media type {media_type}'",
            )
        media_type = media_type or declared or (DOCKER_V1 if document["schemaVersion"] == 1 else DOCKER_V2)
        if tag is not None and not _TAG.fullmatch(tag):
            raise ApiError(
                "InvalidParameterException",
                f"Invalid parameter at 'imageTag' failed to satisfy constraint: "
                f"'must satisfy regular expression '{_TAG.pattern}''",
            )
        computed = digest_of(manifest)
        if digest is not None and digest != computed:
            raise ApiError(
                "ImageDigestDoesNotMatchException",
                f"Invalid parameter at 'imageDigest' failed to satisfy constraint: "
                f"'the provided digest {digest} does not match the digest {computed} of the manifest'",
            )
        existing = repository.images.get(computed)
        holder = repository.tagged(tag) if tag is not None else None
        if existing is not None and (tag is None or holder is existing):
            raise ApiError(
                "ImageAlreadyExistsException",
                f"Image with digest '{computed}' and tag '{tag or 'null'}' already exists in the repository "
                f"with name '{repository.name}' in registry with id '{repository.registry_id}'",
            )
        if holder is not None and repository.tag_immutable(tag or ""):
            raise ApiError(
                "ImageTagAlreadyExistsException",
                f"The image tag '{tag}' already exists in the '{repository.name}' repository "
                "and cannot be overwritten because the tag is immutable.",
            )
        if holder is not None and tag is not None:
            holder.tags.remove(tag)
        image = existing
        if image is None:
            layers = document.get("layers") if isinstance(document.get("layers"), list) else []
            config = document.get("config") if isinstance(document.get("config"), dict) else {}
            image = Image(
                digest=computed,
                manifest=manifest,
                media_type=media_type,
                artifact_media_type=config.get("mediaType") if isinstance(config.get("mediaType"), str) else None,
                size=sum(layer.get("size", 0) for layer in layers if isinstance(layer, dict) and isinstance(layer.get("size"), int)),
                pushed_at=_now(),
            )
            if repository.scan_on_push:
                image.scan = Scan("IN_PROGRESS", SCAN_DESCRIPTIONS["IN_PROGRESS"])
            repository.images[computed] = image
        if tag is not None:
            image.tags.append(tag)
        return image, tag

    def _detail(self, repository: Repository, image: Image) -> dict[str, Any]:
        scan = image.scan
        summary = None
        if scan is not None and scan.status == "COMPLETE":
            summary = {
                "imageScanCompletedAt": scan.completed_at,
                "vulnerabilitySourceUpdatedAt": scan.source_updated_at,
                "findingSeverityCounts": scan.counts(),
            }
        return {
            "registryId": repository.registry_id,
            "repositoryName": repository.name,
            "imageDigest": image.digest,
            "imageTags": list(image.tags) or None,
            "imageSizeInBytes": image.size,
            "imagePushedAt": image.pushed_at,
            "imageScanStatus": scan.status_output() if scan is not None else None,
            "imageScanFindingsSummary": summary,
            "imageManifestMediaType": image.media_type,
            "artifactMediaType": image.artifact_media_type,
        }

    def describe_images(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        repository = self._repository(self._registry_id(ctx, params), ctx.region, params["repositoryName"])
        image_ids = params.get("imageIds")
        if image_ids:
            if params.get("maxResults") is not None or params.get("nextToken") is not None:
                raise ApiError(
                    "InvalidParameterException",
                    "Invalid parameter at 'maxResults' failed to satisfy constraint: 'cannot be used together with imageIds'",
                )
            return {"imageDetails": [self._detail(repository, self._image(repository, image_id)) for image_id in image_ids]}
        status = (params.get("filter") or {}).get("tagStatus") or "ANY"
        images = [
            image
            for image in repository.images.values()
            if status == "ANY" or (status == "TAGGED") == bool(image.tags)
        ]
        scope = {"registry": repository.registry_id, "repository": repository.name, "tagStatus": status}
        page, next_token = _page([image.digest for image in images], params, scope)
        return {"imageDetails": [self._detail(repository, repository.images[d]) for d in page], "nextToken": next_token}

    def batch_get_image(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        repository = self._repository(self._registry_id(ctx, params), ctx.region, params["repositoryName"])
        accepted = params.get("acceptedMediaTypes")
        images, failures = [], []
        for image_id in params["imageIds"]:
            digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
            failure = None
            if digest is None and tag is None:
                failure = ("MissingDigestAndTag", "Invalid request parameters: both tag and digest cannot be null")
            elif digest is not None and not _DIGEST.fullmatch(digest):
                failure = ("InvalidImageDigest", "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'")
            elif tag is not None and not _TAG.fullmatch(tag):
                failure = ("InvalidImageTag", f"Invalid request parameters: image tag should satisfy the regex '{_TAG.pattern}'")
            else:
                image = self._find(repository, image_id)
                if image is None and digest is not None and tag is not None and digest in repository.images:
                    failure = ("ImageTagDoesNotMatchDigest", "Invalid request parameters: image tag does not match image digest")
                elif image is None:
                    failure = ("ImageNotFound", "Requested image not found")
                elif accepted is not None and image.media_type not in accepted:
                    failure = ("ImageNotFound", "Requested image not found: its media type is not accepted")
                else:
                    images.append(
                        {
                            "registryId": repository.registry_id,
                            "repositoryName": repository.name,
                            "imageId": {"imageDigest": image.digest, "imageTag": tag},
                            "imageManifest": image.manifest,
                            "imageManifestMediaType": image.media_type,
                        }
                    )
            if failure is not None:
                failures.append({"imageId": dict(image_id), "failureCode": failure[0], "failureReason": failure[1]})
        return {"images": images, "failures": failures}

    # --- scans -------------------------------------------------------------------------

    def start_image_scan(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        repository = self._repository(self._registry_id(ctx, params), ctx.region, params["repositoryName"])
        image = self._image(repository, params["imageId"])
        image.scan = Scan("IN_PROGRESS", SCAN_DESCRIPTIONS["IN_PROGRESS"])
        return {
            "registryId": repository.registry_id,
            "repositoryName": repository.name,
            "imageId": {"imageDigest": image.digest, "imageTag": params["imageId"].get("imageTag")},
            "imageScanStatus": image.scan.status_output(),
        }

    def describe_image_scan_findings(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        repository = self._repository(self._registry_id(ctx, params), ctx.region, params["repositoryName"])
        image_id = params["imageId"]
        image = self._image(repository, image_id)
        scan = image.scan
        if scan is None:
            raise ApiError(
                "ScanNotFoundException",
                f"Image scan does not exist for the image with '{_image_id_text(image_id)}' in the repository "
                f"with name '{repository.name}' in the registry with id '{repository.registry_id}'",
            )
        output: dict[str, Any] = {
            "registryId": repository.registry_id,
            "repositoryName": repository.name,
            "imageId": {"imageDigest": image.digest, "imageTag": image_id.get("imageTag")},
            "imageScanStatus": scan.status_output(),
        }
        if scan.status != "COMPLETE":
            return output
        scope = {"registry": repository.registry_id, "repository": repository.name, "image": image.digest, "scan": id(scan)}
        page, next_token = _page(list(range(len(scan.findings))), params, scope)
        output["imageScanFindings"] = {
            "imageScanCompletedAt": scan.completed_at,
            "vulnerabilitySourceUpdatedAt": scan.source_updated_at,
            "findingSeverityCounts": scan.counts(),
            "findings": [_finding_output(scan.findings[index]) for index in page],
        }
        output["nextToken"] = next_token
        return output

    # --- the admin API -----------------------------------------------------------------

    def admin_repository(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a repository: ``{repositoryName, imageTagMutability?, scanOnPush?, registryId?, region?}``."""
        unknown = set(body) - {"repositoryName", "imageTagMutability", "scanOnPush", "registryId", "region"}
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}")
        name = _text(body, "repositoryName")
        mutability = body.get("imageTagMutability", "MUTABLE")
        if mutability not in ("MUTABLE", "IMMUTABLE"):
            raise ValueError("imageTagMutability must be MUTABLE or IMMUTABLE")
        scan_on_push = body.get("scanOnPush", False)
        if not isinstance(scan_on_push, bool):
            raise ValueError("scanOnPush must be a boolean")
        ctx = _admin_context(body)
        with self._lock:
            return self.create_repository(
                ctx,
                {
                    "repositoryName": name,
                    "imageTagMutability": mutability,
                    "imageScanningConfiguration": {"scanOnPush": scan_on_push},
                },
            )["repository"]

    def admin_push(self, body: dict[str, Any]) -> dict[str, Any]:
        """Push an image: ``{repositoryName, imageTag?, imageManifest?, registryId?, region?}``.

        Without ``imageManifest`` a new single-layer manifest is made, a different one at
        every push (so two pushes of one tag are two images, as two builds are).
        """
        unknown = set(body) - {"repositoryName", "imageTag", "imageManifest", "imageManifestMediaType", "registryId", "region"}
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}")
        ctx = _admin_context(body)
        manifest = body.get("imageManifest")
        if isinstance(manifest, dict):
            manifest = json.dumps(manifest)
        if manifest is not None and not isinstance(manifest, str):
            raise ValueError("imageManifest must be a string or an object")
        tag = body.get("imageTag")
        if tag is not None and not isinstance(tag, str):
            raise ValueError("imageTag must be a string")
        media_type = body.get("imageManifestMediaType")
        if media_type is not None and not isinstance(media_type, str):
            raise ValueError("imageManifestMediaType must be a string")
        with self._lock:
            repository = self._repository(body.get("registryId") or ctx.account_id, ctx.region, _text(body, "repositoryName"))
            if manifest is None:
                manifest = self._generated_manifest(repository, tag)
            image, _ = self.push(repository, manifest, tag=tag, media_type=media_type)
            return {
                "registryId": repository.registry_id,
                "repositoryName": repository.name,
                "repositoryUri": repository.uri,
                "imageDigest": image.digest,
                "imageTag": tag,
                "imageTags": list(image.tags),
                "imageManifest": image.manifest,
            }

    def _generated_manifest(self, repository: Repository, tag: str | None) -> str:
        push = next(self._pushes)
        seed = f"{repository.arn}:{tag}:{push}".encode()
        layer = hashlib.sha256(seed + b":layer").hexdigest()
        config = hashlib.sha256(seed + b":config").hexdigest()
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_V2,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469, "digest": f"sha256:{config}"},
                "layers": [
                    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 3_623_807, "digest": f"sha256:{layer}"}
                ],
            },
            indent=3,
        )

    def admin_scan(self, body: dict[str, Any]) -> dict[str, Any]:
        """Set an image's scan: ``{repositoryName, imageDigest? | imageTag?, status, description?,
        findings?, registryId?, region?}``; each finding ``{name, severity, description?, uri?,
        packageName?, packageVersion?, attributes?}`` (attributes: an object of strings)."""
        unknown = set(body) - {"repositoryName", "imageDigest", "imageTag", "status", "description", "findings", "registryId", "region"}
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}")
        ctx = _admin_context(body)
        status = body.get("status")
        if status not in SCAN_STATES:
            raise ValueError(f"status must be one of {', '.join(SCAN_STATES)}")
        description = body.get("description", SCAN_DESCRIPTIONS[status])
        if not isinstance(description, str):
            raise ValueError("description must be a string")
        raw = body.get("findings", [])
        if not isinstance(raw, list):
            raise ValueError("findings must be a list")
        if raw and status != "COMPLETE":
            raise ValueError("only a COMPLETE scan has findings")
        findings = [_finding(item, index) for index, item in enumerate(raw)]
        image_id = {k: body[k] for k in ("imageDigest", "imageTag") if body.get(k) is not None}
        if not image_id or not all(isinstance(v, str) for v in image_id.values()):
            raise ValueError("give imageDigest or imageTag (strings)")
        with self._lock:
            repository = self._repository(body.get("registryId") or ctx.account_id, ctx.region, _text(body, "repositoryName"))
            image = self._find(repository, image_id)
            if image is None:
                raise LookupError(f"no image {_image_id_text(image_id)} in repository {repository.name}")
            now = _now()
            image.scan = Scan(
                status=status,
                description=description,
                findings=findings,
                completed_at=now if status == "COMPLETE" else None,
                source_updated_at=now - datetime.timedelta(hours=6) if status == "COMPLETE" else None,
            )
            return {
                "repositoryName": repository.name,
                "imageDigest": image.digest,
                "status": status,
                "findingSeverityCounts": image.scan.counts(),
            }


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _admin_context(body: dict[str, Any]) -> RequestContext:
    region = body.get("region", DEFAULT_REGION)
    registry = body.get("registryId", DEFAULT_ACCOUNT_ID)
    if not isinstance(region, str) or not isinstance(registry, str):
        raise ValueError("region and registryId must be strings")
    return RequestContext(access_key="admin", account_id=registry, region=region, signing_service="ecr")


def _finding(item: Any, index: int) -> dict[str, Any]:
    where = f"findings[{index}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object")
    unknown = set(item) - {"name", "severity", "description", "uri", "packageName", "packageVersion", "attributes"}
    if unknown:
        raise ValueError(f"{where} has no field(s) {sorted(unknown)}")
    if not isinstance(item.get("name"), str) or not item["name"]:
        raise ValueError(f"{where}.name must be a non-empty string (a CVE id)")
    if item.get("severity") not in SEVERITIES:
        raise ValueError(f"{where}.severity must be one of {', '.join(SEVERITIES)}")
    attributes = dict(item.get("attributes") or {})
    for key, member in (("package_name", "packageName"), ("package_version", "packageVersion")):
        if item.get(member) is not None:
            attributes[key] = item[member]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
        raise ValueError(f"{where}.attributes must map strings to strings")
    for member in ("description", "uri"):
        if item.get(member) is not None and not isinstance(item[member], str):
            raise ValueError(f"{where}.{member} must be a string")
    return {
        "name": item["name"],
        "severity": item["severity"],
        "description": item.get("description"),
        "uri": item.get("uri") or f"https://security-tracker.debian.org/tracker/{item['name']}",
        "attributes": attributes,
    }


def _finding_output(finding: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": finding["name"],
        "description": finding["description"],
        "uri": finding["uri"],
        "severity": finding["severity"],
        "attributes": [{"key": key, "value": value} for key, value in finding["attributes"].items()],
    }


def _page(keys: list[Any], params: dict[str, Any], scope: dict[str, Any]) -> tuple[list[Any], str | None]:
    """One page of ``keys`` after the request's ``nextToken``, at most ``maxResults`` long, and
    the token of the next page (None on the last).  A token names the key it continues after and
    the listing it belongs to; one of another listing is refused as ECR refuses it."""
    start = 0
    token = params.get("nextToken")
    if token is not None:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            if {key: decoded[key] for key in scope} != scope:
                raise ValueError(token)
            start = keys.index(decoded["after"]) + 1
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            raise ApiError(
                "InvalidParameterException", "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid token'"
            ) from None
    size = params.get("maxResults") or DEFAULT_PAGE
    page = keys[start : start + size]
    next_token = None
    if start + size < len(keys):
        next_token = base64.urlsafe_b64encode(json.dumps({**scope, "after": page[-1]}).encode()).decode()
    return page, next_token
