"""Tests of the emulated CloudWatch alarms (aws_ext/cloudwatch.py) over Smithy RPC v2 CBOR, the
protocol of the Rust SDK, and over boto3 (JSON 1.0) and the query protocol.

CBOR requests are written with cbor2 exactly as aws-sdk-cloudwatch sends them (``POST
/service/GraniteServiceVersion20100801/operation/<Operation>``, ``smithy-protocol:
rpc-v2-cbor``); every CBOR answer is also parsed by botocore's own RPC v2 CBOR parser against
the model, as a second client would read it.
"""

from __future__ import annotations

import datetime
import gzip
import json
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import botocore
import botocore.config
import botocore.session
import cbor2
from botocore import parsers
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model_checks  # noqa: E402
from aws_ext import make_app, model  # noqa: E402

APP = make_app(None)
SERVER: Any = None
ENDPOINT = ""
AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=00"
)


def setUpModule() -> None:
    global SERVER, ENDPOINT
    SERVER, ENDPOINT = model_checks.start_server(APP)


def tearDownModule() -> None:
    model_checks.stop_server(SERVER)


def _after_call(http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
    if http_response.status_code == 200:
        model_checks.checked_output(parsed, model)


def http(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return model_checks.raw_request(ENDPOINT, method, path, body, None)


class CborAnswer:
    def __init__(self, status: int, headers: Any, body: bytes, operation: str):
        self.status = status
        self.headers = headers
        self.body = body
        self.document = cbor2.loads(body) if body else None
        self.operation = operation

    def parsed(self) -> dict[str, Any]:
        """The answer as botocore's RPC v2 CBOR parser reads it with the operation's model."""
        operation = model.operation_model("cloudwatch", self.operation)
        response = {"status_code": self.status, "headers": dict(self.headers.items()), "body": self.body}
        response["headers"] = {k.lower(): v for k, v in response["headers"].items()}
        return parsers.create_parser("smithy-rpc-v2-cbor").parse(response, operation.output_shape)


def cbor_call(operation: str, params: Any, raw: bytes | None = None, headers: dict[str, str] | None = None) -> CborAnswer:
    data = raw if raw is not None else cbor2.dumps(params)
    request = urllib.request.Request(
        f"{ENDPOINT}/service/GraniteServiceVersion20100801/operation/{operation}",
        data=data,
        method="POST",
        headers={
            "smithy-protocol": "rpc-v2-cbor",
            "Content-Type": "application/cbor",
            "Accept": "application/cbor",
            "Authorization": AUTHORIZATION,
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=model_checks.TIMEOUT) as response:
            return CborAnswer(response.status, response.headers, response.read(), operation)
    except urllib.error.HTTPError as error:
        with error:
            return CborAnswer(error.code, error.headers, error.read(), operation)


def alarm_params(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "AlarmName": name,
        "MetricName": "HTTPCode_Target_5XX_Count",
        "Namespace": "AWS/ApplicationELB",
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 3,
        "Threshold": 3,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Dimensions": [{"Name": "LoadBalancer", "Value": "app/shop/50dc6c495c0c9188"}],
        **extra,
    }


class CloudWatchTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.assertEqual(http("POST", "/_emulator/reset")[0], 200)

    def put(self, name: str, **extra: Any) -> None:
        answer = cbor_call("PutMetricAlarm", alarm_params(name, **extra))
        self.assertEqual(answer.status, 200, answer.document)

    def describe(self, **params: Any) -> CborAnswer:
        answer = cbor_call("DescribeAlarms", params)
        self.assertEqual(answer.status, 200, answer.document)
        return answer


class CborProtocolTests(CloudWatchTestCase):
    def test_an_alarm_is_made_set_and_described_over_cbor(self) -> None:
        self.put("shop-5xx")
        answer = self.describe(AlarmNames=["shop-5xx"])
        self.assertEqual(answer.headers["smithy-protocol"], "rpc-v2-cbor")
        self.assertEqual(answer.headers["Content-Type"], "application/cbor")
        alarm = answer.document["MetricAlarms"][0]
        self.assertEqual(alarm["StateValue"], "INSUFFICIENT_DATA")
        self.assertEqual(alarm["StateReason"], "Unchecked: Initial alarm creation")
        set_state = cbor_call(
            "SetAlarmState",
            {
                "AlarmName": "shop-5xx",
                "StateValue": "ALARM",
                "StateReason": "Threshold Crossed: 3 datapoints [5.0, 4.0, 7.0] were greater than or equal to the threshold (3.0).",
                "StateReasonData": json.dumps({"version": "1.0", "queryDate": "2026-12-07T03:00:00.000+0000"}),
            },
        )
        self.assertEqual((set_state.status, set_state.body), (200, b""))
        self.assertEqual(set_state.headers["smithy-protocol"], "rpc-v2-cbor")
        before = datetime.datetime.now(datetime.timezone.utc)
        alarm = self.describe(AlarmNames=["shop-5xx"]).document["MetricAlarms"][0]
        self.assertEqual(alarm["StateValue"], "ALARM")
        self.assertTrue(alarm["StateReason"].startswith("Threshold Crossed: 3 datapoints"))
        self.assertIsInstance(alarm["StateUpdatedTimestamp"], datetime.datetime)
        self.assertLess(abs((alarm["StateUpdatedTimestamp"] - before).total_seconds()), 60)
        self.assertEqual(alarm["Dimensions"], [{"Name": "LoadBalancer", "Value": "app/shop/50dc6c495c0c9188"}])

    def test_doubles_are_cbor_floats_and_timestamps_tag_1_over_floats(self) -> None:
        # The Rust SDK's decoder takes nothing else: an integer Threshold or an untagged time fails it.
        self.put("shop-5xx")
        answer = self.describe(AlarmNames=["shop-5xx"])
        self.assertIsInstance(answer.document["MetricAlarms"][0]["Threshold"], float)
        self.assertIn(b"\xc1\xfb", answer.body)  # tag 1, then a float64
        parsed = answer.parsed()
        alarm = parsed["MetricAlarms"][0]
        self.assertEqual(alarm["Threshold"], 3.0)
        self.assertIsInstance(alarm["StateUpdatedTimestamp"], datetime.datetime)
        model_checks.checked_output(parsed, model.operation_model("cloudwatch", "DescribeAlarms"))

    def test_unknown_alarm_names_are_simply_absent(self) -> None:
        self.put("shop-5xx")
        answer = self.describe(AlarmNames=["shop-5xx", "shop-p99-latency"])
        self.assertEqual([a["AlarmName"] for a in answer.document["MetricAlarms"]], ["shop-5xx"])
        self.assertEqual(self.describe(AlarmNames=["nope"]).document["MetricAlarms"], [])

    def test_filters_combine_and_pages_follow_next_token(self) -> None:
        for i in range(7):
            self.put(f"shop-{i}")
        self.put("other-0")
        http("POST", "/_emulator/cloudwatch/alarm-state", {"alarmName": "shop-3", "stateValue": "ALARM"})
        self.assertEqual(
            [a["AlarmName"] for a in self.describe(AlarmNamePrefix="shop-", StateValue="ALARM").document["MetricAlarms"]], ["shop-3"]
        )
        names, token, pages = [], None, 0
        while pages < 10:
            document = self.describe(AlarmNamePrefix="shop-", MaxRecords=3, **({"NextToken": token} if token else {})).document
            pages += 1
            self.assertLessEqual(len(document["MetricAlarms"]), 3)
            names += [a["AlarmName"] for a in document["MetricAlarms"]]
            token = document.get("NextToken")
            if token is None:
                break
        self.assertEqual((names, pages), ([f"shop-{i}" for i in range(7)], 3))
        self.assertEqual(self.describe(AlarmTypes=["CompositeAlarm"]).document["MetricAlarms"], [])

    def test_refusals_come_in_cbor_with_the_query_code(self) -> None:
        missing = cbor_call("SetAlarmState", {"AlarmName": "nope", "StateValue": "ALARM", "StateReason": "test"})
        self.assertEqual(missing.status, 404)
        self.assertEqual(missing.headers["smithy-protocol"], "rpc-v2-cbor")
        self.assertEqual(missing.document["__type"], "com.amazonaws.cloudwatch#ResourceNotFound")
        self.assertEqual(missing.headers["x-amzn-query-error"], "ResourceNotFound;Sender")
        error = parsers.create_parser("smithy-rpc-v2-cbor").parse(
            {"status_code": 404, "headers": {k.lower(): v for k, v in missing.headers.items()}, "body": missing.body},
            model.operation_model("cloudwatch", "SetAlarmState").output_shape,
        )
        self.assertEqual(error["Error"]["Code"], "ResourceNotFound")
        self.put("shop-5xx")
        bad_json = cbor_call(
            "SetAlarmState", {"AlarmName": "shop-5xx", "StateValue": "ALARM", "StateReason": "test", "StateReasonData": "{nope"}
        )
        self.assertEqual((bad_json.status, bad_json.document["__type"]), (400, "com.amazonaws.cloudwatch#InvalidFormatFault"))
        self.assertEqual(bad_json.headers["x-amzn-query-error"], "InvalidFormat;Sender")
        token = cbor_call("DescribeAlarms", {"NextToken": "garbage"})
        self.assertEqual((token.status, token.document["__type"]), (400, "com.amazonaws.cloudwatch#InvalidNextToken"))

    def test_the_model_refuses_what_cloudwatch_refuses(self) -> None:
        cases = [
            ({"StateValue": "BROKEN"}, "ValidationException", "Member must satisfy enum value set"),
            ({"MaxRecords": 101}, "ValidationException", "Member must have value less than or equal to 100"),
            ({"AlarmNames": [f"a{i}" for i in range(101)]}, "ValidationException", "Member must have length less than or equal to 100"),
            ({"AlarmNames": "shop-5xx"}, "SerializationException", "expected a list"),
            ({"Colour": "red"}, "SerializationException", "has no member named 'Colour'"),
        ]
        for params, code, text in cases:
            with self.subTest(params=params):
                answer = cbor_call("DescribeAlarms", params)
                self.assertEqual(answer.status, 400)
                self.assertEqual(answer.document["__type"], f"com.amazonaws.cloudwatch#{code}")
                self.assertIn(text, answer.document["message"])
        garbage = cbor_call("DescribeAlarms", None, raw=b"\xff\x00garbage")
        self.assertEqual((garbage.status, garbage.document["__type"]), (400, "com.amazonaws.cloudwatch#SerializationException"))
        required = cbor_call("SetAlarmState", {"AlarmName": "shop-5xx", "StateValue": "ALARM"})
        self.assertEqual(required.status, 400)
        self.assertIn("Value null at 'StateReason' failed to satisfy constraint: Member must not be null", required.document["message"])
        unknown = cbor_call("PutDashboard", {"DashboardName": "d", "DashboardBody": "{}"})
        self.assertEqual((unknown.status, unknown.document["__type"]), (400, "com.amazonaws.cloudwatch#UnknownOperationException"))
        nonsense = cbor_call("Nonsense", {})
        self.assertEqual((nonsense.status, nonsense.document["__type"]), (400, "com.amazonaws.cloudwatch#UnknownOperationException"))

    def test_setting_the_state_an_alarm_is_in_changes_nothing(self) -> None:
        self.put("shop-5xx")
        cbor_call("SetAlarmState", {"AlarmName": "shop-5xx", "StateValue": "OK", "StateReason": "first"})
        first = self.describe(AlarmNames=["shop-5xx"]).document["MetricAlarms"][0]
        cbor_call("SetAlarmState", {"AlarmName": "shop-5xx", "StateValue": "OK", "StateReason": "second"})
        second = self.describe(AlarmNames=["shop-5xx"]).document["MetricAlarms"][0]
        self.assertEqual((second["StateReason"], second["StateUpdatedTimestamp"]), ("first", first["StateUpdatedTimestamp"]))

    def test_updating_an_alarm_keeps_its_state(self) -> None:
        self.put("shop-5xx")
        cbor_call("SetAlarmState", {"AlarmName": "shop-5xx", "StateValue": "ALARM", "StateReason": "crossed"})
        self.put("shop-5xx", Threshold=10.5)
        alarm = self.describe(AlarmNames=["shop-5xx"]).document["MetricAlarms"][0]
        self.assertEqual((alarm["Threshold"], alarm["StateValue"], alarm["StateReason"]), (10.5, "ALARM", "crossed"))

    def test_injected_faults_answer_in_cbor(self) -> None:
        status, fault = http(
            "POST", "/_emulator/aws/faults", {"service": "monitoring", "operation": "DescribeAlarms", "status": 400, "match": "shop-5xx"}
        )
        self.assertEqual(status, 200, fault)
        other = cbor_call("DescribeAlarms", {"AlarmNames": ["other"]})
        self.assertEqual(other.status, 200)
        throttled = cbor_call("DescribeAlarms", {"AlarmNames": ["shop-5xx"]})
        self.assertEqual(throttled.status, 400)
        self.assertEqual(throttled.headers["smithy-protocol"], "rpc-v2-cbor")
        self.assertEqual(throttled.document["__type"], "ThrottlingException")
        self.assertEqual(throttled.headers["x-amzn-query-error"], "Throttling;Sender")
        self.assertEqual(cbor_call("DescribeAlarms", {"AlarmNames": ["shop-5xx"]}).status, 200)
        self.assertEqual(http("GET", f"/_emulator/aws/faults?id={fault['id']}")[1]["faults"][0]["served"], 1)
        requests = [r for r in http("GET", "/_emulator/aws/requests")[1]["requests"] if r["service"] == "monitoring"]
        # The faulted one was refused before it was served: only the two served are logged.
        self.assertEqual([r["operation"] for r in requests], ["DescribeAlarms"] * 2)
        # Each with the time it arrived, in order: a test can check the pace of alarm reads.
        times = [r["at"] for r in requests]
        self.assertEqual(times, sorted(times))
        self.assertLess(abs(times[-1] - time.time()), 60)


class BotocoreCborClientTests(CloudWatchTestCase):
    """botocore's own RPC v2 CBOR client (the model limited to that protocol): a second,
    independent CBOR encoder and decoder for every request and answer."""

    def setUp(self) -> None:
        super().setUp()
        self.folder = tempfile.TemporaryDirectory()
        self.addCleanup(self.folder.cleanup)
        source = Path(botocore.__file__).parent / "data/cloudwatch/2010-08-01"
        target = Path(self.folder.name) / "cloudwatch/2010-08-01"
        target.mkdir(parents=True)
        document = json.loads(gzip.decompress((source / "service-2.json.gz").read_bytes()))
        document["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
        (target / "service-2.json").write_text(json.dumps(document))
        (target / "endpoint-rule-set-1.json.gz").write_bytes((source / "endpoint-rule-set-1.json.gz").read_bytes())
        session = botocore.session.get_session()
        session.get_component("data_loader").search_paths.insert(0, self.folder.name)
        self.cloudwatch = boto3.Session(botocore_session=session).client(
            "cloudwatch",
            endpoint_url=ENDPOINT,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )
        self.sent: list[str] = []
        self.cloudwatch.meta.events.register(
            "before-send", lambda request, **kwargs: self.sent.append(request.headers.get("smithy-protocol", b""))
        )

    def test_a_cbor_client_makes_sets_and_reads_alarms(self) -> None:
        self.cloudwatch.put_metric_alarm(**alarm_params("shop-5xx", Threshold=2.5))
        self.cloudwatch.set_alarm_state(AlarmName="shop-5xx", StateValue="ALARM", StateReason="Threshold Crossed")
        answer = self.cloudwatch.describe_alarms(AlarmNames=["shop-5xx", "shop-p99"])
        model_checks.checked_output(answer, model.operation_model("cloudwatch", "DescribeAlarms"))
        alarm = answer["MetricAlarms"][0]
        self.assertEqual((alarm["AlarmName"], alarm["StateValue"], alarm["Threshold"]), ("shop-5xx", "ALARM", 2.5))
        self.assertIsInstance(alarm["StateUpdatedTimestamp"], datetime.datetime)
        with self.assertRaises(ClientError) as context:
            self.cloudwatch.set_alarm_state(AlarmName="nope", StateValue="OK", StateReason="x")
        self.assertEqual(context.exception.response["Error"]["Code"], "ResourceNotFound")
        self.assertEqual(context.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)
        self.assertEqual(set(self.sent), {b"rpc-v2-cbor"})


class OtherProtocolTests(CloudWatchTestCase):
    def test_boto3_and_cbor_see_the_same_alarms(self) -> None:
        cloudwatch = model_checks.client(ENDPOINT, "cloudwatch", _after_call)
        cloudwatch.put_metric_alarm(**alarm_params("shop-5xx"))
        self.assertEqual(self.describe(AlarmNames=["shop-5xx"]).document["MetricAlarms"][0]["StateValue"], "INSUFFICIENT_DATA")
        cbor_call("SetAlarmState", {"AlarmName": "shop-5xx", "StateValue": "ALARM", "StateReason": "crossed"})
        alarms = cloudwatch.describe_alarms(AlarmNames=["shop-5xx", "nope"])["MetricAlarms"]
        self.assertEqual([(a["AlarmName"], a["StateValue"]) for a in alarms], [("shop-5xx", "ALARM")])
        with self.assertRaises(ClientError) as context:
            cloudwatch.set_alarm_state(AlarmName="nope", StateValue="OK", StateReason="x")
        self.assertEqual(context.exception.response["Error"]["Code"], "ResourceNotFound")

    def test_the_query_protocol_still_reaches_moto_on_the_same_store(self) -> None:
        self.put("shop-5xx")
        form = urllib.parse.urlencode(
            {"Action": "DescribeAlarms", "Version": "2010-08-01", "AlarmNames.member.1": "shop-5xx"}
        ).encode()
        request = urllib.request.Request(
            ENDPOINT + "/",
            data=form,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": AUTHORIZATION},
        )
        with urllib.request.urlopen(request, timeout=model_checks.TIMEOUT) as response:
            body = response.read().decode()
        self.assertIn("<AlarmName>shop-5xx</AlarmName>", body)
        self.assertIn("<StateValue>INSUFFICIENT_DATA</StateValue>", body)
        # A fault on the query protocol answers the query protocol's error document.
        http("POST", "/_emulator/aws/faults", {"service": "monitoring", "operation": "DescribeAlarms", "status": 400})
        with self.assertRaises(urllib.error.HTTPError) as context:
            urllib.request.urlopen(request, timeout=model_checks.TIMEOUT)
        with context.exception as error:
            self.assertEqual(error.code, 400)
            self.assertIn("<Code>Throttling</Code>", error.read().decode())


class AdminTests(CloudWatchTestCase):
    def test_the_admin_api_makes_alarms_and_sets_their_state(self) -> None:
        status, alarm = http("POST", "/_emulator/cloudwatch/alarm", {"alarmName": "shop-5xx"})
        self.assertEqual(status, 200, alarm)
        self.assertEqual(alarm["StateValue"], "INSUFFICIENT_DATA")
        status, alarm = http(
            "POST",
            "/_emulator/cloudwatch/alarm-state",
            {"alarmName": "shop-5xx", "stateValue": "ALARM", "stateReason": "Threshold Crossed: 3 datapoints"},
        )
        self.assertEqual((status, alarm["StateValue"]), (200, "ALARM"))
        described = self.describe(AlarmNames=["shop-5xx"]).document["MetricAlarms"][0]
        self.assertEqual((described["StateValue"], described["StateReason"]), ("ALARM", "Threshold Crossed: 3 datapoints"))
        status, alarm = http("POST", "/_emulator/cloudwatch/alarm", {"alarmName": "shop-p99", "stateValue": "OK"})
        self.assertEqual((status, alarm["StateValue"]), (200, "OK"))

    def test_the_admin_api_refuses_what_does_not_fit(self) -> None:
        http("POST", "/_emulator/cloudwatch/alarm", {"alarmName": "shop-5xx"})
        cases = [
            ("/_emulator/cloudwatch/alarm", {"name": "x"}, 400),
            ("/_emulator/cloudwatch/alarm", {"alarmName": "x", "threshold": "high"}, 400),
            ("/_emulator/cloudwatch/alarm-state", {"alarmName": "nope", "stateValue": "ALARM"}, 404),
            ("/_emulator/cloudwatch/alarm-state", {"alarmName": "shop-5xx", "stateValue": "RED"}, 400),
            ("/_emulator/cloudwatch/alarm-state", {"alarmName": "shop-5xx", "stateValue": "ALARM", "stateReasonData": "{"}, 400),
        ]
        for path, body, expected in cases:
            with self.subTest(path=path, body=body):
                self.assertEqual(http("POST", path, body)[0], expected)
        self.assertEqual(self.describe(AlarmNames=["shop-5xx"]).document["MetricAlarms"][0]["StateValue"], "INSUFFICIENT_DATA")


if __name__ == "__main__":
    unittest.main()
