"""Tests of the emulated CodeBuild test reports (aws_ext/reports.py) through boto3 and raw HTTP.

One in-process server (random port on 127.0.0.1, no Kubernetes emulator);
every test starts from POST /_emulator/reset.  Every boto3 response is also
checked against the output shape's required members.
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model_checks  # noqa: E402
from aws_ext import make_app  # noqa: E402

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/codebuild-app"

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


def codebuild_json(operation: str, body: Any) -> tuple[int, Any]:
    return model_checks.raw_json_call(ENDPOINT, "codebuild", f"CodeBuild_20161006.{operation}", body)


def cases(status: str, count: int, prefix: str = "shop::cart") -> list[dict[str, Any]]:
    return [
        {"prefix": prefix, "name": f"{status.lower()}_{i}", "status": status, "durationInNanoSeconds": 1_000_000}
        | ({"message": f"assertion failed: {i}\nat src/cart.rs:{i}"} if status in ("FAILED", "ERROR") else {})
        for i in range(count)
    ]


class ReportsTestCase(unittest.TestCase):
    def setUp(self) -> None:
        status, _ = http("POST", "/_emulator/reset")
        self.assertEqual(status, 200)
        self.codebuild = model_checks.client(ENDPOINT, "codebuild", _after_call)
        self.codebuild.create_project(
            name="shop-pr",
            source={"type": "CODECOMMIT", "location": "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/shop"},
            artifacts={"type": "NO_ARTIFACTS"},
            environment={
                "type": "LINUX_CONTAINER",
                "image": "aws/codebuild/standard:7.0",
                "computeType": "BUILD_GENERAL1_SMALL",
            },
            serviceRole=ROLE,
        )
        self.build = self.codebuild.start_build(projectName="shop-pr")["build"]

    def file(self, group: str, test_cases: list[dict[str, Any]], **extra: Any) -> str:
        status, answer = http(
            "POST", "/_emulator/codebuild/report", {"buildId": self.build["id"], "group": group, "testCases": test_cases, **extra}
        )
        self.assertEqual(status, 200, answer)
        return answer["reportArn"]

    def page(self, arn: str, **params: Any) -> dict[str, Any]:
        return self.codebuild.describe_test_cases(reportArn=arn, **params)

    def assertClientError(self, code: str, call: Any, *args: Any, **kwargs: Any) -> None:
        with self.assertRaises(ClientError) as raised:
            call(*args, **kwargs)
        self.assertEqual(raised.exception.response["Error"]["Code"], code)


class FilingTests(ReportsTestCase):
    def test_a_report_is_filed_under_the_projects_group_and_listed_on_the_build(self) -> None:
        arn = self.file("tests", cases("SUCCEEDED", 3) + cases("FAILED", 2) + cases("SKIPPED", 1))
        self.assertRegex(arn, rf"^arn:aws:codebuild:us-east-1:{ACCOUNT}:report/shop-pr-tests:[0-9a-f-]{{36}}$")
        lint = self.file("lint", cases("SUCCEEDED", 1))

        build = self.codebuild.batch_get_builds(ids=[self.build["id"]])["builds"][0]
        self.assertEqual(build["reportArns"], [arn, lint], "in filing order")

        answer = self.codebuild.batch_get_reports(reportArns=[lint, arn, "arn:aws:codebuild:us-east-1:1:report/x:y"])
        self.assertEqual([r["arn"] for r in answer["reports"]], [lint, arn])
        self.assertEqual(answer["reportsNotFound"], ["arn:aws:codebuild:us-east-1:1:report/x:y"])
        report = answer["reports"][1]
        self.assertEqual(report["type"], "TEST")
        self.assertEqual(report["name"], "shop-pr-tests")
        self.assertEqual(report["reportGroupArn"], f"arn:aws:codebuild:us-east-1:{ACCOUNT}:report-group/shop-pr-tests")
        self.assertEqual(report["executionId"], self.build["arn"])
        self.assertEqual(report["status"], "FAILED", "a failed case fails the report")
        self.assertEqual((report["expired"] - report["created"]).days, 30)
        self.assertEqual(report["exportConfig"], {"exportConfigType": "NO_EXPORT"})
        self.assertIs(report["truncated"], False)
        self.assertEqual(
            report["testSummary"],
            {
                "total": 6,
                "statusCounts": {"SUCCEEDED": 3, "FAILED": 2, "ERROR": 0, "SKIPPED": 1, "UNKNOWN": 0},
                "durationInNanoSeconds": 6_000_000,
            },
        )
        self.assertEqual(answer["reports"][0]["status"], "SUCCEEDED")

    def test_a_build_without_reports_lists_none(self) -> None:
        build = self.codebuild.batch_get_builds(ids=[self.build["id"]])["builds"][0]
        self.assertNotIn("reportArns", build)
        answer = self.codebuild.batch_get_reports(reportArns=["arn:aws:codebuild:us-east-1:1:report/x:y"])
        self.assertEqual(answer.get("reports", []), [])

    def test_reports_are_filed_when_the_build_completes_and_a_bad_one_changes_nothing(self) -> None:
        bad = {"buildId": self.build["id"], "status": "FAILED", "reports": [{"group": "tests", "testCases": [{"name": "x", "status": "BROKEN"}]}]}
        status, answer = http("POST", "/_emulator/codebuild/complete", bad)
        self.assertEqual(status, 400, answer)
        self.assertIn("testCases[0].status", answer["error"])
        build = self.codebuild.batch_get_builds(ids=[self.build["id"]])["builds"][0]
        self.assertEqual(build["buildStatus"], "IN_PROGRESS", "nothing changed")

        good = {**bad, "reports": [{"group": "tests", "testCases": cases("FAILED", 1)}, {"group": "lint", "testCases": []}]}
        status, answer = http("POST", "/_emulator/codebuild/complete", good)
        self.assertEqual(status, 200, answer)
        build = self.codebuild.batch_get_builds(ids=[self.build["id"]])["builds"][0]
        self.assertEqual(build["buildStatus"], "FAILED")
        names = [arn.split(":report/")[1].split(":")[0] for arn in build["reportArns"]]
        self.assertEqual(names, ["shop-pr-tests", "shop-pr-lint"])

    def test_a_group_arn_files_into_that_group_of_the_same_account_only(self) -> None:
        group = f"arn:aws:codebuild:us-east-1:{ACCOUNT}:report-group/shared-tests"
        arn = self.file(group, cases("SUCCEEDED", 1))
        self.assertIn(":report/shared-tests:", arn)
        status, answer = http(
            "POST",
            "/_emulator/codebuild/report",
            {"buildId": self.build["id"], "group": "arn:aws:codebuild:eu-west-1:999999999999:report-group/x1", "testCases": []},
        )
        self.assertEqual(status, 400, answer)

    def test_a_test_sets_the_status_of_a_report_in_the_making(self) -> None:
        arn = self.file("tests", cases("SUCCEEDED", 2), status="GENERATING")
        self.assertEqual(self.codebuild.batch_get_reports(reportArns=[arn])["reports"][0]["status"], "GENERATING")
        for status in ("INCOMPLETE", "SUCCEEDED"):
            code, answer = http("POST", "/_emulator/codebuild/report-status", {"reportArn": arn, "status": status})
            self.assertEqual(code, 200, answer)
            self.assertEqual(self.codebuild.batch_get_reports(reportArns=[arn])["reports"][0]["status"], status)
        self.assertEqual(http("POST", "/_emulator/codebuild/report-status", {"reportArn": arn, "status": "DONE"})[0], 400)
        self.assertEqual(http("POST", "/_emulator/codebuild/report-status", {"reportArn": arn + "0", "status": "FAILED"})[0], 404)

    def test_admin_errors(self) -> None:
        def file(body: dict[str, Any]) -> int:
            return http("POST", "/_emulator/codebuild/report", body)[0]

        self.assertEqual(file({"buildId": "shop-pr:nope", "group": "tests", "testCases": []}), 404)
        self.assertEqual(file({"buildId": self.build["id"], "group": "tests"}), 400)
        self.assertEqual(file({"buildId": self.build["id"], "group": "a b", "testCases": []}), 400)
        self.assertEqual(file({"buildId": self.build["id"], "group": "tests", "testCases": [{"status": "FAILED"}]}), 400)
        self.assertEqual(file({"buildId": self.build["id"], "group": "tests", "testCases": [], "pageLimit": 0}), 400)
        self.assertEqual(file({"buildId": self.build["id"], "group": "tests", "testCases": [], "status": "DONE"}), 400)

    def test_reset_forgets_reports(self) -> None:
        arn = self.file("tests", cases("SUCCEEDED", 1))
        http("POST", "/_emulator/reset")
        self.assertClientError("ResourceNotFoundException", self.page, arn)


class DescribeTestCasesTests(ReportsTestCase):
    def setUp(self) -> None:
        super().setUp()
        mixed = []
        for i in range(250):
            mixed += cases("SUCCEEDED", 1, prefix=f"shop::p{i}")
            if i % 2 == 0:
                mixed.append({"prefix": "shop::cart", "name": f"fails_{i}", "status": "FAILED", "message": f"boom {i}"})
        self.mixed = mixed
        self.arn = self.file("tests", mixed)

    def test_pages_hold_at_most_max_results_and_the_token_continues_in_order(self) -> None:
        first = self.page(self.arn, maxResults=3)
        self.assertEqual([c["name"] for c in first["testCases"]], ["succeeded_0", "fails_0", "succeeded_0"])
        self.assertIn("nextToken", first)
        second = self.page(self.arn, maxResults=3, nextToken=first["nextToken"])
        self.assertEqual([c["prefix"] for c in second["testCases"]], ["shop::p2", "shop::cart", "shop::p3"])

        everything, token, calls = [], None, 0
        while True:
            page = self.page(self.arn, **({"nextToken": token} if token else {}))
            calls += 1
            self.assertLessEqual(len(page["testCases"]), 100, "the default page is 100")
            everything += page["testCases"]
            token = page.get("nextToken")
            if token is None:
                break
        self.assertEqual(calls, 4, "375 cases in pages of 100")
        self.assertEqual(len(everything), len(self.mixed))
        case = everything[1]
        self.assertEqual(
            {k: case[k] for k in ("reportArn", "prefix", "name", "status", "message", "testRawDataPath")},
            {
                "reportArn": self.arn,
                "prefix": "shop::cart",
                "name": "fails_0",
                "status": "FAILED",
                "message": "boom 0",
                "testRawDataPath": "reports/junit.xml",
            },
        )

    def test_the_status_filter_applies_before_paging(self) -> None:
        page = self.page(self.arn, filter={"status": "FAILED"}, maxResults=10)
        self.assertEqual([c["name"] for c in page["testCases"]], [f"fails_{i}" for i in range(0, 20, 2)])
        rest = self.page(self.arn, filter={"status": "FAILED"}, maxResults=100, nextToken=page["nextToken"])
        self.assertEqual(len(rest["testCases"]), 100)
        last = self.page(self.arn, filter={"status": "FAILED"}, maxResults=100, nextToken=rest["nextToken"])
        self.assertEqual([c["name"] for c in last["testCases"]][-1], "fails_248")
        self.assertEqual(len(last["testCases"]), 15, "125 failing cases in all")
        self.assertNotIn("nextToken", last, "no token on the last page")
        self.assertEqual(self.page(self.arn, filter={"status": "ERROR"})["testCases"], [])

    def test_the_keyword_filter_matches_name_or_prefix(self) -> None:
        by_prefix = self.page(self.arn, filter={"keyword": "shop::p24"}, maxResults=100)
        self.assertEqual([c["prefix"] for c in by_prefix["testCases"]], [f"shop::p{i}" for i in [24, *range(240, 250)]])
        by_name = self.page(self.arn, filter={"keyword": "fails_24", "status": "FAILED"})
        self.assertEqual([c["name"] for c in by_name["testCases"]], ["fails_24", "fails_240", "fails_242", "fails_244", "fails_246", "fails_248"])

    def test_a_token_belongs_to_its_report_and_filter(self) -> None:
        token = self.page(self.arn, maxResults=1)["nextToken"]
        self.assertClientError("InvalidInputException", self.page, self.arn, filter={"status": "FAILED"}, nextToken=token)
        other = self.file("lint", cases("SUCCEEDED", 5))
        self.assertClientError("InvalidInputException", self.page, other, nextToken=token)
        self.assertClientError("InvalidInputException", self.page, self.arn, nextToken="not-a-token")

    def test_a_page_limit_makes_pages_shorter_than_asked_and_the_token_still_leads_on(self) -> None:
        arn = self.file("tests", cases("FAILED", 7), pageLimit=3)
        sizes, token = [], None
        while True:
            page = self.page(arn, filter={"status": "FAILED"}, maxResults=10, **({"nextToken": token} if token else {}))
            sizes.append(len(page["testCases"]))
            token = page.get("nextToken")
            if token is None:
                break
        self.assertEqual(sizes, [3, 3, 1])

    def test_refusals(self) -> None:
        self.assertClientError("ResourceNotFoundException", self.page, f"arn:aws:codebuild:us-east-1:{ACCOUNT}:report/shop-pr-tests:nope")
        self.assertClientError("InvalidInputException", self.page, "shop-pr-tests:nope")
        self.assertClientError("InvalidInputException", self.page, self.arn, filter={"status": "PASSED"})
        status, body = codebuild_json("DescribeTestCases", {"reportArn": self.arn, "maxResults": 101})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))
        status, body = codebuild_json("DescribeTestCases", {"reportArn": self.arn, "maxResults": 0})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))
        status, body = codebuild_json("BatchGetReports", {"reportArns": []})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))
        status, body = codebuild_json("BatchGetReports", {"reportArns": [self.arn] * 101})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))

    def test_another_region_does_not_see_the_report(self) -> None:
        elsewhere = model_checks.client(ENDPOINT, "codebuild", _after_call, region="eu-west-1")
        self.assertEqual(elsewhere.batch_get_reports(reportArns=[self.arn])["reportsNotFound"], [self.arn])


class RoundTripTests(ReportsTestCase):
    """Every report operation we implement answered at least once through boto3's parser."""

    def test_every_implemented_operation_round_trips(self) -> None:
        arn = self.file("tests", cases("FAILED", 1))
        CHECKED_OPERATIONS.clear()
        self.codebuild.batch_get_reports(reportArns=[arn])
        self.codebuild.describe_test_cases(reportArn=arn)
        implemented = {operation for (_, operation) in APP._report_handlers}
        self.assertEqual(implemented - CHECKED_OPERATIONS, set())


if __name__ == "__main__":
    unittest.main()
