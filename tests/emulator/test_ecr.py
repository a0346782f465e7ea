"""Tests of the emulated ECR (aws_ext/ecr.py) through boto3, raw JSON calls and the admin API.

One in-process server (random port on 127.0.0.1, no Kubernetes emulator);
every test starts from POST /_emulator/reset.  Every boto3 answer is checked
against the output shape's required members.
"""

from __future__ import annotations

import hashlib
import json
import sys
import unittest
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model_checks  # noqa: E402
from aws_ext import make_app  # noqa: E402

ACCOUNT = "123456789012"
APP = make_app(None)
SERVER: Any = None
ENDPOINT = ""
CHECKED_OPERATIONS: set[str] = set()


def setUpModule() -> None:
    global SERVER, ENDPOINT
    SERVER, ENDPOINT = model_checks.start_server(APP)


def tearDownModule() -> None:
    model_checks.stop_server(SERVER)


def _after_call(http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
    if http_response.status_code == 200:
        model_checks.checked_output(parsed, model)
        CHECKED_OPERATIONS.add(model.name)


def http(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return model_checks.raw_request(ENDPOINT, method, path, body, None)


def ecr_json(operation: str, body: Any) -> tuple[int, Any]:
    return model_checks.raw_json_call(ENDPOINT, "ecr", f"AmazonEC2ContainerRegistry_V20150921.{operation}", body)


def manifest(layer: str, size: int = 1000) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 100,
                "digest": "sha256:" + hashlib.sha256(f"config-{layer}".encode()).hexdigest(),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": size,
                    "digest": "sha256:" + hashlib.sha256(layer.encode()).hexdigest(),
                }
            ],
        }
    )


def error_code(context: Any) -> str:
    return context.exception.response["Error"]["Code"]


class EcrTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.assertEqual(http("POST", "/_emulator/reset")[0], 200)
        self.ecr = model_checks.client(ENDPOINT, "ecr", _after_call)

    def repository(self, name: str = "shop", mutability: str = "IMMUTABLE", scan_on_push: bool = False) -> dict[str, Any]:
        return self.ecr.create_repository(
            repositoryName=name,
            imageTagMutability=mutability,
            imageScanningConfiguration={"scanOnPush": scan_on_push},
        )["repository"]

    def put(self, tag: str | None, body: str, repository: str = "shop") -> dict[str, Any]:
        return self.ecr.put_image(repositoryName=repository, imageManifest=body, **({"imageTag": tag} if tag else {}))["image"]


class RepositoryTests(EcrTestCase):
    def test_a_repository_is_created_with_its_mutability_and_scan_setting(self) -> None:
        repository = self.repository(scan_on_push=True)
        self.assertEqual(repository["repositoryArn"], f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/shop")
        self.assertEqual(repository["repositoryUri"], f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/shop")
        self.assertEqual(repository["imageTagMutability"], "IMMUTABLE")
        self.assertEqual(repository["imageScanningConfiguration"], {"scanOnPush": True})
        described = self.ecr.describe_repositories(repositoryNames=["shop"])["repositories"]
        self.assertEqual([r["repositoryArn"] for r in described], [repository["repositoryArn"]])
        default = self.ecr.create_repository(repositoryName="web")["repository"]
        self.assertEqual(default["imageTagMutability"], "MUTABLE")
        self.assertEqual(default["imageScanningConfiguration"], {"scanOnPush": False})

    def test_a_second_repository_of_the_same_name_is_refused(self) -> None:
        self.repository()
        with self.assertRaises(ClientError) as context:
            self.repository()
        self.assertEqual(error_code(context), "RepositoryAlreadyExistsException")
        self.assertIn("'shop' already exists in the registry with id '123456789012'", str(context.exception))

    def test_the_model_refuses_bad_names_and_mutabilities(self) -> None:
        status, body = ecr_json("CreateRepository", {"repositoryName": "Shop"})
        self.assertEqual(status, 400)
        self.assertEqual(body["__type"], "ValidationException")
        self.assertIn("at 'repositoryName' failed to satisfy constraint: Member must satisfy regular expression", body["message"])
        status, body = ecr_json("CreateRepository", {"repositoryName": "shop", "imageTagMutability": "FROZEN"})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))
        status, body = ecr_json("CreateRepository", {"repositoryName": "shop", "colour": "red"})
        self.assertEqual((status, body["__type"]), (400, "SerializationException"))

    def test_an_unknown_repository_is_refused_by_every_operation(self) -> None:
        calls = [
            lambda: self.ecr.describe_repositories(repositoryNames=["nope"]),
            lambda: self.put("v1", manifest("a"), repository="nope"),
            lambda: self.ecr.describe_images(repositoryName="nope"),
            lambda: self.ecr.batch_get_image(repositoryName="nope", imageIds=[{"imageTag": "v1"}]),
            lambda: self.ecr.describe_image_scan_findings(repositoryName="nope", imageId={"imageTag": "v1"}),
        ]
        for call in calls:
            with self.subTest(call=call), self.assertRaises(ClientError) as context:
                call()
            self.assertEqual(error_code(context), "RepositoryNotFoundException")
            self.assertIn("The repository with name 'nope' does not exist in the registry with id '123456789012'", str(context.exception))

    def test_operations_neither_side_serves_are_refused_not_sent_to_moto(self) -> None:
        self.repository()
        status, body = ecr_json("DeleteRepository", {"repositoryName": "shop"})
        self.assertEqual((status, body["__type"]), (400, "UnknownOperationException"))
        # moto's ECR never saw the repository: its store stays apart and unused
        self.assertEqual(len(self.ecr.describe_repositories()["repositories"]), 1)


class PutImageTests(EcrTestCase):
    def test_the_digest_is_the_sha256_of_the_manifest_bytes(self) -> None:
        self.repository()
        body = manifest("a", size=4321)
        image = self.put("v1", body)
        digest = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
        self.assertEqual(image["imageId"], {"imageDigest": digest, "imageTag": "v1"})
        self.assertEqual(image["imageManifest"], body)
        self.assertEqual(image["imageManifestMediaType"], "application/vnd.docker.distribution.manifest.v2+json")
        detail = self.ecr.describe_images(repositoryName="shop", imageIds=[{"imageDigest": digest}])["imageDetails"][0]
        self.assertEqual(detail["imageTags"], ["v1"])
        self.assertEqual(detail["imageSizeInBytes"], 4321)
        self.assertEqual(detail["artifactMediaType"], "application/vnd.docker.container.image.v1+json")
        self.assertNotIn("imageScanStatus", detail)

    def test_an_immutable_repository_refuses_moving_a_tag_to_another_image(self) -> None:
        self.repository(mutability="IMMUTABLE")
        first = self.put("abc123", manifest("a"))
        with self.assertRaises(ClientError) as context:
            self.put("abc123", manifest("b"))
        self.assertEqual(error_code(context), "ImageTagAlreadyExistsException")
        self.assertEqual(
            context.exception.response["Error"]["Message"],
            "The image tag 'abc123' already exists in the 'shop' repository and cannot be overwritten because the tag is immutable.",
        )
        # nothing changed: the tag still names the first image, the second was not stored
        details = self.ecr.describe_images(repositoryName="shop")["imageDetails"]
        self.assertEqual([(d["imageDigest"], d.get("imageTags")) for d in details], [(first["imageId"]["imageDigest"], ["abc123"])])

    def test_the_same_manifest_and_tag_again_is_refused_on_every_repository(self) -> None:
        for mutability in ("IMMUTABLE", "MUTABLE"):
            with self.subTest(mutability=mutability):
                name = f"shop-{mutability.lower()}"
                self.repository(name=name, mutability=mutability)
                image = self.put("v1", manifest("a"), repository=name)
                with self.assertRaises(ClientError) as context:
                    self.put("v1", manifest("a"), repository=name)
                self.assertEqual(error_code(context), "ImageAlreadyExistsException")
                self.assertIn(f"Image with digest '{image['imageId']['imageDigest']}' and tag 'v1' already exists", str(context.exception))

    def test_an_immutable_repository_lets_a_new_tag_point_at_an_existing_image(self) -> None:
        self.repository(mutability="IMMUTABLE")
        self.put("abc123", manifest("a"))
        self.put("release-1", manifest("a"))
        details = self.ecr.describe_images(repositoryName="shop")["imageDetails"]
        self.assertEqual(details[0]["imageTags"], ["abc123", "release-1"])

    def test_a_mutable_repository_moves_the_tag_and_leaves_the_old_image_untagged(self) -> None:
        self.repository(mutability="MUTABLE")
        old = self.put("latest", manifest("a"))["imageId"]["imageDigest"]
        new = self.put("latest", manifest("b"))["imageId"]["imageDigest"]
        self.assertEqual(
            self.ecr.describe_images(repositoryName="shop", imageIds=[{"imageTag": "latest"}])["imageDetails"][0]["imageDigest"], new
        )
        untagged = self.ecr.describe_images(repositoryName="shop", filter={"tagStatus": "UNTAGGED"})["imageDetails"]
        self.assertEqual([d["imageDigest"] for d in untagged], [old])
        self.assertNotIn("imageTags", untagged[0])

    def test_exclusion_filters_turn_the_rule_round_for_matching_tags(self) -> None:
        self.ecr.create_repository(
            repositoryName="shop",
            imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
            imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest*"}],
        )
        self.put("latest", manifest("a"))
        self.put("latest", manifest("b"))  # excluded: mutable
        self.put("v1", manifest("a"))
        with self.assertRaises(ClientError) as context:
            self.put("v1", manifest("c"))
        self.assertEqual(error_code(context), "ImageTagAlreadyExistsException")

    def test_bad_manifests_digests_and_tags_are_refused(self) -> None:
        self.repository()
        with self.assertRaises(ClientError) as context:
            self.put("v1", "not json")
        self.assertEqual(error_code(context), "InvalidParameterException")
        with self.assertRaises(ClientError) as context:
            self.ecr.put_image(repositoryName="shop", imageManifest=manifest("a"), imageTag="v1", imageDigest="sha256:" + "0" * 64)
        self.assertEqual(error_code(context), "ImageDigestDoesNotMatchException")
        with self.assertRaises(ClientError) as context:
            self.put("-leading-dash", manifest("a"))
        self.assertEqual(error_code(context), "InvalidParameterException")
        self.assertEqual(self.ecr.describe_images(repositoryName="shop")["imageDetails"], [])


class DescribeAndGetTests(EcrTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.repository()
        self.digests = [self.put(f"v{i}", manifest(str(i)))["imageId"]["imageDigest"] for i in range(5)]

    def test_images_are_found_by_tag_or_digest_and_an_unknown_one_is_refused(self) -> None:
        by_tag = self.ecr.describe_images(repositoryName="shop", imageIds=[{"imageTag": "v2"}])["imageDetails"]
        self.assertEqual([d["imageDigest"] for d in by_tag], [self.digests[2]])
        by_digest = self.ecr.describe_images(repositoryName="shop", imageIds=[{"imageDigest": self.digests[3]}])["imageDetails"]
        self.assertEqual(by_digest[0]["imageTags"], ["v3"])
        with self.assertRaises(ClientError) as context:
            self.ecr.describe_images(repositoryName="shop", imageIds=[{"imageTag": "v2"}, {"imageTag": "v9"}])
        self.assertEqual(error_code(context), "ImageNotFoundException")
        self.assertEqual(
            context.exception.response["Error"]["Message"],
            "The image with imageId {imageDigest:'null', imageTag:'v9'} does not exist within the repository "
            "with name 'shop' in the registry with id '123456789012'",
        )
        with self.assertRaises(ClientError) as context:  # a digest with a tag it does not carry
            self.ecr.describe_images(repositoryName="shop", imageIds=[{"imageDigest": self.digests[0], "imageTag": "v1"}])
        self.assertEqual(error_code(context), "ImageNotFoundException")

    def test_every_image_is_paged_by_max_results_and_next_token(self) -> None:
        seen, token, pages = [], None, 0
        while pages < 10:
            page = self.ecr.describe_images(repositoryName="shop", maxResults=2, **({"nextToken": token} if token else {}))
            pages += 1
            self.assertLessEqual(len(page["imageDetails"]), 2)
            seen += [d["imageDigest"] for d in page["imageDetails"]]
            token = page.get("nextToken")
            if token is None:
                break
        self.assertEqual((seen, pages), (self.digests, 3))
        with self.assertRaises(ClientError) as context:
            self.ecr.describe_images(repositoryName="shop", nextToken="garbage")
        self.assertEqual(error_code(context), "InvalidParameterException")
        status, body = ecr_json("DescribeImages", {"repositoryName": "shop", "maxResults": 1001})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))

    def test_batch_get_image_answers_what_it_finds_and_lists_the_rest_as_failures(self) -> None:
        answer = self.ecr.batch_get_image(
            repositoryName="shop",
            imageIds=[
                {"imageTag": "v1"},
                {"imageTag": "v9"},
                {"imageDigest": self.digests[0], "imageTag": "v1"},
                {"imageDigest": "not-a-digest"},
                {},
            ],
        )
        self.assertEqual([i["imageId"] for i in answer["images"]], [{"imageDigest": self.digests[1], "imageTag": "v1"}])
        self.assertEqual(json.loads(answer["images"][0]["imageManifest"]), json.loads(manifest("1")))
        self.assertEqual(
            [(f["imageId"], f["failureCode"]) for f in answer["failures"]],
            [
                ({"imageTag": "v9"}, "ImageNotFound"),
                ({"imageDigest": self.digests[0], "imageTag": "v1"}, "ImageTagDoesNotMatchDigest"),
                ({"imageDigest": "not-a-digest"}, "InvalidImageDigest"),
                ({}, "MissingDigestAndTag"),
            ],
        )
        self.assertEqual(answer["failures"][0]["failureReason"], "Requested image not found")


class ScanTests(EcrTestCase):
    def findings(self, count: int) -> list[dict[str, Any]]:
        severities = ["CRITICAL", "HIGH", "HIGH", "MEDIUM", "LOW"]
        return [
            {"name": f"CVE-2026-{1000 + i}", "severity": severities[i % 5], "packageName": f"lib{i}", "packageVersion": f"1.{i}"}
            for i in range(count)
        ]

    def test_an_image_never_scanned_has_no_scan(self) -> None:
        self.repository(scan_on_push=False)
        digest = self.put("v1", manifest("a"))["imageId"]["imageDigest"]
        with self.assertRaises(ClientError) as context:
            self.ecr.describe_image_scan_findings(repositoryName="shop", imageId={"imageTag": "v1"})
        self.assertEqual(error_code(context), "ScanNotFoundException")
        self.assertEqual(
            context.exception.response["Error"]["Message"],
            "Image scan does not exist for the image with '{imageDigest:'null', imageTag:'v1'}' "
            "in the repository with name 'shop' in the registry with id '123456789012'",
        )
        with self.assertRaises(ClientError) as context:
            self.ecr.describe_image_scan_findings(repositoryName="shop", imageId={"imageTag": "v2"})
        self.assertEqual(error_code(context), "ImageNotFoundException")
        # a scan started through the API is in progress until the test finishes it
        started = self.ecr.start_image_scan(repositoryName="shop", imageId={"imageDigest": digest})
        self.assertEqual(started["imageScanStatus"]["status"], "IN_PROGRESS")

    def test_a_push_to_a_scan_on_push_repository_starts_a_scan_that_the_test_completes(self) -> None:
        self.repository(scan_on_push=True)
        self.put("v1", manifest("a"))
        answer = self.ecr.describe_image_scan_findings(repositoryName="shop", imageId={"imageTag": "v1"})
        self.assertEqual(answer["imageScanStatus"], {"status": "IN_PROGRESS", "description": "The scan is in progress."})
        self.assertNotIn("imageScanFindings", answer)
        status, body = http(
            "POST", "/_emulator/ecr/scan", {"repositoryName": "shop", "imageTag": "v1", "status": "COMPLETE", "findings": self.findings(5)}
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(body["findingSeverityCounts"], {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 1, "LOW": 1})
        answer = self.ecr.describe_image_scan_findings(repositoryName="shop", imageId={"imageTag": "v1"})
        self.assertEqual(answer["imageScanStatus"]["status"], "COMPLETE")
        findings = answer["imageScanFindings"]
        self.assertEqual(findings["findingSeverityCounts"], {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 1, "LOW": 1})
        first = findings["findings"][0]
        self.assertEqual((first["name"], first["severity"]), ("CVE-2026-1000", "CRITICAL"))
        self.assertEqual(
            first["attributes"], [{"key": "package_name", "value": "lib0"}, {"key": "package_version", "value": "1.0"}]
        )
        detail = self.ecr.describe_images(repositoryName="shop", imageIds=[{"imageTag": "v1"}])["imageDetails"][0]
        self.assertEqual(detail["imageScanStatus"]["status"], "COMPLETE")
        self.assertEqual(detail["imageScanFindingsSummary"]["findingSeverityCounts"]["HIGH"], 2)

    def test_findings_are_paged_and_every_page_counts_them_all(self) -> None:
        self.repository(scan_on_push=True)
        self.put("v1", manifest("a"))
        http("POST", "/_emulator/ecr/scan", {"repositoryName": "shop", "imageTag": "v1", "status": "COMPLETE", "findings": self.findings(7)})
        names, token, pages = [], None, 0
        while pages < 10:
            page = self.ecr.describe_image_scan_findings(
                repositoryName="shop", imageId={"imageTag": "v1"}, maxResults=3, **({"nextToken": token} if token else {})
            )
            pages += 1
            self.assertEqual(sum(page["imageScanFindings"]["findingSeverityCounts"].values()), 7)
            names += [f["name"] for f in page["imageScanFindings"]["findings"]]
            token = page.get("nextToken")
            if token is None:
                break
        self.assertEqual((len(names), len(set(names)), pages), (7, 7, 3))
        status, body = ecr_json(
            "DescribeImageScanFindings", {"repositoryName": "shop", "imageId": {"imageTag": "v1"}, "maxResults": 0}
        )
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))

    def test_a_failed_scan_says_why_and_has_no_findings(self) -> None:
        self.repository(scan_on_push=True)
        self.put("v1", manifest("a"))
        status, _ = http("POST", "/_emulator/ecr/scan", {"repositoryName": "shop", "imageTag": "v1", "status": "FAILED"})
        self.assertEqual(status, 200)
        answer = self.ecr.describe_image_scan_findings(repositoryName="shop", imageId={"imageTag": "v1"})
        self.assertEqual(answer["imageScanStatus"]["status"], "FAILED")
        self.assertIn("UnsupportedImageError", answer["imageScanStatus"]["description"])
        self.assertNotIn("imageScanFindings", answer)


class AdminTests(EcrTestCase):
    def test_the_admin_api_creates_repositories_and_pushes_through_ecrs_rules(self) -> None:
        status, repository = http("POST", "/_emulator/ecr/repository", {"repositoryName": "shop", "imageTagMutability": "IMMUTABLE"})
        self.assertEqual(status, 200, repository)
        self.assertEqual(repository["imageTagMutability"], "IMMUTABLE")
        self.assertEqual(http("POST", "/_emulator/ecr/repository", {"repositoryName": "shop"})[1]["code"], "RepositoryAlreadyExistsException")
        status, first = http("POST", "/_emulator/ecr/image", {"repositoryName": "shop", "imageTag": "abc123"})
        self.assertEqual(status, 200, first)
        self.assertEqual(first["imageDigest"], "sha256:" + hashlib.sha256(first["imageManifest"].encode()).hexdigest())
        self.assertEqual(first["repositoryUri"], f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/shop")
        # a second build of the same commit makes another image: refused on an immutable repository
        status, refused = http("POST", "/_emulator/ecr/image", {"repositoryName": "shop", "imageTag": "abc123"})
        self.assertEqual((status, refused["code"]), (409, "ImageTagAlreadyExistsException"))
        status, refused = http(
            "POST", "/_emulator/ecr/image", {"repositoryName": "shop", "imageTag": "abc123", "imageManifest": first["imageManifest"]}
        )
        self.assertEqual((status, refused["code"]), (409, "ImageAlreadyExistsException"))
        found = self.ecr.describe_images(repositoryName="shop", imageIds=[{"imageTag": "abc123"}])["imageDetails"]
        self.assertEqual([d["imageDigest"] for d in found], [first["imageDigest"]])

    def test_the_admin_api_refuses_what_does_not_fit(self) -> None:
        self.repository()
        cases = [
            ("/_emulator/ecr/repository", {"repositoryName": "shop2", "imageTagMutability": "SOMETIMES"}, 400),
            ("/_emulator/ecr/repository", {"name": "shop2"}, 400),
            ("/_emulator/ecr/image", {"repositoryName": "nope", "imageTag": "v1"}, 404),
            ("/_emulator/ecr/image", {"repositoryName": "shop", "imageManifest": "{"}, 400),
            ("/_emulator/ecr/scan", {"repositoryName": "shop", "imageTag": "v1", "status": "COMPLETE"}, 404),
            ("/_emulator/ecr/scan", {"repositoryName": "shop", "imageTag": "v1", "status": "DONE"}, 400),
            ("/_emulator/ecr/scan", {"repositoryName": "shop", "status": "COMPLETE"}, 400),
        ]
        for path, body, expected in cases:
            with self.subTest(path=path, body=body):
                self.assertEqual(http("POST", path, body)[0], expected)
        http("POST", "/_emulator/ecr/image", {"repositoryName": "shop", "imageTag": "v1"})
        bad_findings = [
            [{"name": "CVE-1", "severity": "SEVERE"}],
            [{"severity": "HIGH"}],
            [{"name": "CVE-1", "severity": "HIGH", "cvss": 9}],
        ]
        for findings in bad_findings:
            with self.subTest(findings=findings):
                status, _ = http(
                    "POST", "/_emulator/ecr/scan", {"repositoryName": "shop", "imageTag": "v1", "status": "COMPLETE", "findings": findings}
                )
                self.assertEqual(status, 400)
        status, _ = http(
            "POST",
            "/_emulator/ecr/scan",
            {"repositoryName": "shop", "imageTag": "v1", "status": "IN_PROGRESS", "findings": [{"name": "CVE-1", "severity": "HIGH"}]},
        )
        self.assertEqual(status, 400)

    def test_reset_empties_the_registry(self) -> None:
        self.repository()
        http("POST", "/_emulator/reset")
        self.assertEqual(self.ecr.describe_repositories()["repositories"], [])


class FaultTests(EcrTestCase):
    def test_injected_faults_reach_ecr_calls(self) -> None:
        self.repository()
        status, fault = http("POST", "/_emulator/aws/faults", {"service": "ecr", "operation": "DescribeImages", "status": 400})
        self.assertEqual(status, 200)
        with self.assertRaises(ClientError) as context:
            self.ecr.describe_images(repositoryName="shop")
        self.assertEqual(error_code(context), "ThrottlingException")
        self.assertEqual(self.ecr.describe_images(repositoryName="shop")["imageDetails"], [])
        self.assertEqual(http("GET", f"/_emulator/aws/faults?id={fault['id']}")[1]["faults"][0]["served"], 1)


if __name__ == "__main__":
    unittest.main()
