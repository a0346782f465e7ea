"""CodeBuild test reports: report groups, the reports builds file in them, and their test cases.

moto 5.2.5 has none of this.  CodeBuild turns the JUnit (or other) files a
buildspec's ``reports:`` section names into a report per group and build; the
functions read them with BatchGetReports and DescribeTestCases.  Here:

* a test (or the flow) says which cases a build produced: the admin API
  attaches a report to a build (``POST /_emulator/codebuild/report``, or a
  ``reports`` list on ``/codebuild/complete``), under the group a buildspec
  key names as CodeBuild names it (``tests`` in project ``shop-pr`` files into
  ``shop-pr-tests``, created on first use as CodeBuild does when the build's
  role may create groups; a report group ARN files into that group);
* the build's ``reportArns`` (BatchGetBuilds) list it from then on, in filing
  order, and it outlives the build as reports do;
* BatchGetReports answers its summary (every status counted, the five
  statuses always present), ``reportsNotFound`` for the rest;
* DescribeTestCases pages its cases in filing order: the ``status`` filter
  (one of SUCCEEDED, FAILED, ERROR, SKIPPED, UNKNOWN) and the ``keyword``
  filter (a substring of the name or the prefix) apply before paging, a page
  holds at most ``maxResults`` cases (default 100, the model allows 1 to
  100), and an opaque ``nextToken`` (bound to the report and the filter) is
  given while cases remain;
* a test may set a report's status (``GENERATING``, ``INCOMPLETE``…) at any
  time (``POST /_emulator/codebuild/report-status``), and may make its pages
  shorter than ``maxResults`` (``pageLimit``): the API promises at most
  ``maxResults`` cases per page, not exactly that many, and a client must
  follow ``nextToken`` rather than count.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from moto.utilities.utils import get_partition

from .codebuild import Build, CodeBuildExtension
from .context import RequestContext
from .model import ApiError

CASE_STATUSES = ("SUCCEEDED", "FAILED", "ERROR", "SKIPPED", "UNKNOWN")
REPORT_STATUSES = ("GENERATING", "SUCCEEDED", "FAILED", "INCOMPLETE", "DELETING")
# A report expires 30 days after it is created (Report.expired).
RETENTION = datetime.timedelta(days=30)
DEFAULT_PAGE = 100
# CodeBuild's rule for report group names.
_GROUP_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def _now() -> datetime.datetime:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass
class Case:
    prefix: str | None
    name: str
    status: str
    duration_nanos: int
    message: str | None
    suite: str | None
    raw_data_path: str

    def to_output(self, report: Report) -> dict[str, Any]:
        return {
            "reportArn": report.arn,
            "testRawDataPath": self.raw_data_path,
            "prefix": self.prefix,
            "name": self.name,
            "status": self.status,
            "durationInNanoSeconds": self.duration_nanos,
            "message": self.message,
            "expired": report.expired,
            "testSuiteName": self.suite,
        }


@dataclass
class ReportGroup:
    name: str
    arn: str
    created: datetime.datetime


@dataclass
class Report:
    arn: str
    group: ReportGroup
    build_arn: str
    status: str
    created: datetime.datetime
    cases: list[Case] = field(default_factory=list)
    # At most this many cases per DescribeTestCases page, whatever maxResults asks (a test's knob).
    page_limit: int | None = None

    @property
    def expired(self) -> datetime.datetime:
        return self.created + RETENTION

    def summary(self) -> dict[str, Any]:
        counts = {status: 0 for status in CASE_STATUSES}
        for case in self.cases:
            counts[case.status] += 1
        return {
            "total": len(self.cases),
            "statusCounts": counts,
            "durationInNanoSeconds": sum(case.duration_nanos for case in self.cases),
        }

    def to_output(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "type": "TEST",
            "name": self.group.name,
            "reportGroupArn": self.group.arn,
            "executionId": self.build_arn,
            "status": self.status,
            "created": self.created,
            "expired": self.expired,
            "exportConfig": {"exportConfigType": "NO_EXPORT"},
            "truncated": False,
            "testSummary": self.summary(),
        }


class ReportNotFound(LookupError):
    pass


class TestReports:
    """The report operations, and the admin API's ways to file reports and change them."""

    def __init__(self, lock: threading.RLock, builds: CodeBuildExtension):
        self._lock = lock
        self._builds = builds
        # (account, region) -> group name -> group
        self._groups: dict[tuple[str, str], dict[str, ReportGroup]] = {}
        # report ARN -> report, every region (ARNs are unique)
        self._reports: dict[str, Report] = {}

    def operations(self) -> dict[str, Callable[[RequestContext, dict[str, Any]], dict[str, Any]]]:
        return {
            "BatchGetReports": self.batch_get_reports,
            "DescribeTestCases": self.describe_test_cases,
        }

    def reset(self) -> None:
        with self._lock:
            self._groups.clear()
            self._reports.clear()

    # --- the API -----------------------------------------------------------------------

    def batch_get_reports(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """The reports asked for, in that order; unknown ARNs in ``reportsNotFound``."""
        found, not_found = [], []
        for arn in params["reportArns"]:
            report = self._reports.get(arn)
            if report is None or not self._in(ctx, report):
                not_found.append(arn)
            else:
                found.append(report.to_output())
        # The output's Reports list has at least one member: an answer without any leaves it out.
        return {"reports": found or None, "reportsNotFound": not_found}

    def describe_test_cases(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["reportArn"]
        if ":report/" not in arn:
            raise ApiError("InvalidInputException", f"Invalid report ARN: {arn}")
        report = self._reports.get(arn)
        if report is None or not self._in(ctx, report):
            raise ApiError("ResourceNotFoundException", f"Report {arn} does not exist")
        wanted = params.get("filter") or {}
        status = wanted.get("status")
        if status is not None and status not in CASE_STATUSES:
            raise ApiError(
                "InvalidInputException",
                f"Invalid test case status filter {status}: must be one of {', '.join(CASE_STATUSES)}",
            )
        keyword = wanted.get("keyword")
        cases = [
            (index, case)
            for index, case in enumerate(report.cases)
            if (status is None or case.status == status)
            and (not keyword or keyword in case.name or keyword in (case.prefix or ""))
        ]
        scope = {"report": arn, "status": status, "keyword": keyword}
        token = params.get("nextToken")
        if token is not None:
            after = self._token_position(token, scope)
            cases = [(index, case) for index, case in cases if index > after]
        size = params.get("maxResults") or DEFAULT_PAGE
        if report.page_limit is not None:
            size = min(size, report.page_limit)
        page = cases[:size]
        next_token = None
        if len(cases) > size:
            next_token = base64.urlsafe_b64encode(json.dumps({**scope, "after": page[-1][0]}).encode()).decode()
        return {"testCases": [case.to_output(report) for _, case in page], "nextToken": next_token}

    @staticmethod
    def _token_position(token: str, scope: dict[str, Any]) -> int:
        """The index a token continues after; a token of another report or filter is refused."""
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            if {key: decoded[key] for key in scope} != scope:
                raise ValueError(token)
            return int(decoded["after"])
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            raise ApiError("InvalidInputException", "Invalid next token") from None

    @staticmethod
    def _in(ctx: RequestContext, report: Report) -> bool:
        """Whether the caller's account and region hold ``report``."""
        parts = report.arn.split(":")
        return parts[3] == ctx.region and parts[4] == ctx.account_id

    # --- filing reports (admin API) ------------------------------------------------------

    def attach(
        self,
        build_id: str,
        group: str,
        cases: list[dict[str, Any]],
        status: str | None = None,
        page_limit: int | None = None,
    ) -> Report:
        """File a report of ``cases`` for build ``build_id`` under ``group``.

        ``group`` is a buildspec's report key (filed as ``<project>-<key>``) or
        a report group ARN of the build's account and region.  Each case is
        ``{name, status, prefix?, message?, durationInNanoSeconds?,
        testSuiteName?}``.  The status defaults to FAILED when a case failed
        or errored, SUCCEEDED otherwise.  Raises ``BuildNotFound`` or
        ``ValueError`` for arguments that do not fit.
        """
        if status is not None and status not in REPORT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(REPORT_STATUSES)}")
        if page_limit is not None and (isinstance(page_limit, bool) or not isinstance(page_limit, int) or page_limit < 1):
            raise ValueError("pageLimit must be a positive integer")
        parsed = [self._case(case, index) for index, case in enumerate(cases)]
        with self._lock:
            build = self._builds.find_build(build_id)
            report_group = self._group(build, group)
            if status is None:
                status = "FAILED" if any(case.status in ("FAILED", "ERROR") for case in parsed) else "SUCCEEDED"
            partition = get_partition(build.region)
            report = Report(
                arn=f"arn:{partition}:codebuild:{build.region}:{build.account_id}:report/{report_group.name}:{uuid.uuid4()}",
                group=report_group,
                build_arn=build.arn,
                status=status,
                created=max(_now(), build.start_time),
                cases=parsed,
                page_limit=page_limit,
            )
            self._reports[report.arn] = report
            build.report_arns.append(report.arn)
            return report

    def attach_all(self, build_id: str, specs: Any, then: Callable[[], Any]) -> Any:
        """Check every report of ``specs`` (``[{group, testCases, status?, pageLimit?}]``),
        run ``then`` (the build's completion), then file them: a report that does not fit
        leaves the build as it was."""
        if not isinstance(specs, list) or not all(isinstance(spec, dict) for spec in specs):
            raise ValueError("reports must be a list of objects")
        with self._lock:
            build = self._builds.find_build(build_id)
            for index, spec in enumerate(specs):
                unknown = set(spec) - {"group", "testCases", "status", "pageLimit"}
                if unknown:
                    raise ValueError(f"reports[{index}] has no field(s) {sorted(unknown)}")
                if not isinstance(spec.get("group"), str) or not isinstance(spec.get("testCases"), list):
                    raise ValueError(f"reports[{index}] needs a group (string) and testCases (list)")
                self._group_name(build, spec["group"])
                for case_index, case in enumerate(spec["testCases"]):
                    self._case(case, case_index)
                if spec.get("status") is not None and spec["status"] not in REPORT_STATUSES:
                    raise ValueError(f"reports[{index}].status must be one of {', '.join(REPORT_STATUSES)}")
            result = then()
            for spec in specs:
                self.attach(build.id, spec["group"], spec["testCases"], spec.get("status"), spec.get("pageLimit"))
            return result

    def set_status(self, report_arn: str, status: str) -> Report:
        """A report's status changes (GENERATING to SUCCEEDED, say)."""
        if status not in REPORT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(REPORT_STATUSES)}")
        with self._lock:
            report = self._reports.get(report_arn)
            if report is None:
                raise ReportNotFound(f"no test report {report_arn}")
            report.status = status
            return report

    @staticmethod
    def _group_prefix(build: Build) -> str:
        return f"arn:{get_partition(build.region)}:codebuild:{build.region}:{build.account_id}:report-group/"

    def _group_name(self, build: Build, key: str) -> str:
        """The group a buildspec key or group ARN files into, as CodeBuild names it."""
        prefix = self._group_prefix(build)
        if key.startswith("arn:"):
            if not key.startswith(prefix):
                raise ValueError(f"{key} is not a report group ARN of the build's account and region")
            name = key[len(prefix) :]
        else:
            name = f"{build.project_name}-{key}"
        if not (2 <= len(name) <= 128) or not set(name) <= _GROUP_NAME_CHARS:
            raise ValueError(f"{name!r} is not a report group name (2 to 128 letters, digits, '-', '_')")
        return name

    def _group(self, build: Build, key: str) -> ReportGroup:
        name = self._group_name(build, key)
        groups = self._groups.setdefault((build.account_id, build.region), {})
        if name not in groups:
            groups[name] = ReportGroup(name=name, arn=self._group_prefix(build) + name, created=_now())
        return groups[name]

    @staticmethod
    def _case(case: Any, index: int) -> Case:
        where = f"testCases[{index}]"
        if not isinstance(case, dict):
            raise ValueError(f"{where} must be an object")
        unknown = set(case) - {"name", "status", "prefix", "message", "durationInNanoSeconds", "testSuiteName"}
        if unknown:
            raise ValueError(f"{where} has no field(s) {sorted(unknown)}")
        name, status = case.get("name"), case.get("status")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}.name must be a non-empty string")
        if status not in CASE_STATUSES:
            raise ValueError(f"{where}.status must be one of {', '.join(CASE_STATUSES)}")
        for member in ("prefix", "message", "testSuiteName"):
            if case.get(member) is not None and not isinstance(case[member], str):
                raise ValueError(f"{where}.{member} must be a string")
        duration = case.get("durationInNanoSeconds", 0)
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
            raise ValueError(f"{where}.durationInNanoSeconds must be a non-negative integer")
        return Case(
            prefix=case.get("prefix"),
            name=name,
            status=status,
            duration_nanos=duration,
            message=case.get("message"),
            suite=case.get("testSuiteName"),
            raw_data_path="reports/junit.xml",
        )
