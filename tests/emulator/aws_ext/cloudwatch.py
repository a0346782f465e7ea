"""CloudWatch metric alarms over every protocol the SDKs speak, on moto's alarm store.

botocore's model of CloudWatch lists ``smithy-rpc-v2-cbor``, ``json`` and
``query``; the Rust SDK (aws-sdk-cloudwatch) speaks Smithy RPC v2 CBOR only
(``POST /service/GraniteServiceVersion20100801/operation/<Operation>``,
``smithy-protocol: rpc-v2-cbor``, CBOR bodies, timestamps as tag 1), boto3
the JSON 1.0 protocol, older tools the query protocol.  moto 5.2.5 speaks
query and JSON but no CBOR, and its DescribeAlarms ignores ``MaxRecords``,
``NextToken`` and ``AlarmTypes`` and ANDs no filters.  So the alarm
operations below are answered here for CBOR and JSON (validated against the
model like the rest of the emulator), on moto's own store
(``cloudwatch_backends``), so an alarm made through the query protocol is the
same alarm:

* PutMetricAlarm: a new alarm starts ``INSUFFICIENT_DATA`` (``Unchecked:
  Initial alarm creation``), as in CloudWatch; updating one keeps its state;
* SetAlarmState: ``StateReasonData`` must be JSON (``InvalidFormat``), an
  unknown alarm is ``ResourceNotFound``; a change of state moves
  ``StateUpdatedTimestamp`` and ``StateTransitionedTimestamp``;
* DescribeAlarms: the filters (``AlarmNames``, ``AlarmNamePrefix``,
  ``StateValue``, ``ActionPrefix``, ``AlarmTypes``) all apply; names that do
  not exist are simply absent; alarms come in name order, ``MaxRecords``
  (1-100, default 50) at a time with an opaque ``NextToken``
  (``InvalidNextToken`` for a token of another listing).

The admin API (``POST /_emulator/cloudwatch/alarm`` and
``/cloudwatch/alarm-state``) makes alarms and sets states through the same code.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import threading
from collections.abc import Callable
from typing import Any

from moto.cloudwatch.models import Alarm, CloudWatchBackend, Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID

from .context import DEFAULT_REGION, RequestContext
from .model import ApiError

STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
DEFAULT_PAGE = 50
INITIAL_REASON = "Unchecked: Initial alarm creation"


def _aware(moment: datetime.datetime | None) -> datetime.datetime | None:
    """moto keeps naive UTC times; the model's timestamps are aware."""
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.timezone.utc)


def _now() -> datetime.datetime:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _metric_queries(metrics: list[dict[str, Any]]) -> list[MetricDataQuery]:
    queries = []
    for metric in metrics:
        stat = metric.get("MetricStat")
        metric_stat = None
        if stat is not None:
            inner = stat["Metric"]
            metric_stat = MetricStat(
                metric=Metric(
                    metric_name=inner.get("MetricName"),
                    namespace=inner.get("Namespace"),
                    dimensions=[Dimension(name=d["Name"], value=d["Value"]) for d in inner.get("Dimensions", [])],
                ),
                period=stat["Period"],
                stat=stat["Stat"],
                unit=stat.get("Unit"),
            )
        queries.append(
            MetricDataQuery(
                query_id=metric["Id"],
                label=metric.get("Label"),
                period=metric.get("Period"),
                return_data=metric.get("ReturnData"),
                expression=metric.get("Expression"),
                metric_stat=metric_stat,
            )
        )
    return queries


def _query_output(query: MetricDataQuery) -> dict[str, Any]:
    stat = None
    if query.metric_stat is not None:
        metric = query.metric_stat.metric
        stat = {
            "Metric": {
                "Namespace": metric.namespace,
                "MetricName": metric.metric_name,
                "Dimensions": [{"Name": d.name, "Value": d.value} for d in metric.dimensions] or None,
            },
            "Period": query.metric_stat.period,
            "Stat": query.metric_stat.stat,
            "Unit": query.metric_stat.unit,
        }
    return {
        "Id": query.id,
        "MetricStat": stat,
        "Expression": query.expression,
        "Label": query.label,
        "ReturnData": query.return_data,
        "Period": query.period,
    }


def alarm_output(alarm: Alarm) -> dict[str, Any]:
    """The ``MetricAlarm`` shape of one of moto's alarms."""
    return {
        "AlarmName": alarm.name,
        "AlarmArn": alarm.alarm_arn,
        "AlarmDescription": alarm.description,
        "AlarmConfigurationUpdatedTimestamp": _aware(alarm.configuration_updated_timestamp),
        "ActionsEnabled": bool(alarm.actions_enabled),
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": list(alarm.insufficient_data_actions),
        "StateValue": alarm.state_value,
        "StateReason": alarm.state_reason,
        "StateReasonData": alarm.state_reason_data if alarm.state_reason_data not in (None, "{}") else None,
        "StateUpdatedTimestamp": _aware(alarm.state_updated_timestamp),
        "StateTransitionedTimestamp": _aware(getattr(alarm, "state_transitioned_timestamp", alarm.state_updated_timestamp)),
        "MetricName": alarm.metric_name,
        "Namespace": alarm.namespace,
        "Statistic": alarm.statistic,
        "ExtendedStatistic": alarm.extended_statistic,
        "Dimensions": [{"Name": d.name, "Value": d.value} for d in alarm.dimensions],
        "Period": alarm.period,
        "Unit": alarm.unit,
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm,
        "Threshold": float(alarm.threshold) if alarm.threshold is not None else None,
        "ComparisonOperator": alarm.comparison_operator,
        "TreatMissingData": alarm.treat_missing_data,
        "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile,
        "Metrics": [_query_output(q) for q in alarm.metric_data_queries] or None,
        "ThresholdMetricId": alarm.threshold_metric_id,
    }


class Alarms:
    """PutMetricAlarm, DescribeAlarms and SetAlarmState on moto's store, and the admin API's
    ways to make alarms and set their states."""

    def __init__(self, lock: threading.RLock):
        self._lock = lock

    def operations(self) -> dict[str, Callable[[RequestContext, dict[str, Any]], dict[str, Any]]]:
        return {
            "PutMetricAlarm": self.put_metric_alarm,
            "DescribeAlarms": self.describe_alarms,
            "SetAlarmState": self.set_alarm_state,
        }

    @staticmethod
    def _backend(ctx: RequestContext) -> CloudWatchBackend:
        return cloudwatch_backends[ctx.account_id][ctx.region]

    def put_metric_alarm(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        metrics = params.get("Metrics")
        single = any(params.get(k) is not None for k in ("MetricName", "Namespace", "Statistic", "ExtendedStatistic"))
        if metrics and single:
            raise ApiError(
                "ValidationException",
                "1 validation error detected: Metrics cannot be used together with MetricName, Namespace, Statistic or ExtendedStatistic",
            )
        if not metrics and (params.get("MetricName") is None or params.get("Namespace") is None or params.get("Period") is None):
            raise ApiError(
                "ValidationException",
                "1 validation error detected: an alarm needs MetricName, Namespace and Period, or Metrics",
            )
        if not metrics and (params.get("Statistic") is None) == (params.get("ExtendedStatistic") is None):
            raise ApiError("ValidationException", "1 validation error detected: give exactly one of Statistic and ExtendedStatistic")
        backend = self._backend(ctx)
        previous = backend.alarms.get(params["AlarmName"])
        alarm = backend.put_metric_alarm(
            name=params["AlarmName"],
            namespace=params.get("Namespace"),
            metric_name=params.get("MetricName"),
            metric_data_queries=_metric_queries(metrics) if metrics else None,
            comparison_operator=params["ComparisonOperator"],
            evaluation_periods=params["EvaluationPeriods"],
            datapoints_to_alarm=params.get("DatapointsToAlarm"),
            period=params.get("Period"),
            threshold=params.get("Threshold"),
            statistic=params.get("Statistic"),
            extended_statistic=params.get("ExtendedStatistic"),
            description=params.get("AlarmDescription"),
            dimensions=params.get("Dimensions", []),
            alarm_actions=params.get("AlarmActions", []),
            ok_actions=params.get("OKActions", []),
            insufficient_data_actions=params.get("InsufficientDataActions", []),
            unit=params.get("Unit"),
            actions_enabled=params.get("ActionsEnabled", True),
            treat_missing_data=params.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=params.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=params.get("ThresholdMetricId"),
            tags=params.get("Tags", []),
        )
        now = _now()
        alarm.configuration_updated_timestamp = now
        if previous is None:
            alarm.state_value, alarm.state_reason, alarm.state_reason_data = "INSUFFICIENT_DATA", INITIAL_REASON, None
            alarm.state_updated_timestamp = alarm.state_transitioned_timestamp = now
        else:
            for name in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp", "history"):
                setattr(alarm, name, getattr(previous, name))
            alarm.state_transitioned_timestamp = getattr(previous, "state_transitioned_timestamp", previous.state_updated_timestamp)
        return {}

    def set_alarm_state(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        data = params.get("StateReasonData")
        if data is not None:
            try:
                json.loads(data)
            except ValueError:
                raise ApiError("InvalidFormatFault", "StateReasonData is not valid JSON") from None
        alarm = self._backend(ctx).alarms.get(params["AlarmName"])
        if alarm is None:
            raise ApiError("ResourceNotFound", f"Alarm {params['AlarmName']} not found")
        self.set_state(alarm, params["StateValue"], params["StateReason"], data)
        return {}

    @staticmethod
    def set_state(alarm: Alarm, value: str, reason: str, data: str | None) -> None:
        """CloudWatch records a state update only when the state changes; setting the state an
        alarm is already in changes nothing, not even the reason."""
        if value == alarm.state_value:
            return
        alarm.update_state(reason, data, value)
        now = _now()
        alarm.state_updated_timestamp = alarm.state_transitioned_timestamp = now

    def describe_alarms(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        types = params.get("AlarmTypes") or ["MetricAlarm"]
        if params.get("ChildrenOfAlarmName") is not None or params.get("ParentsOfAlarmName") is not None or "MetricAlarm" not in types:
            # Composite alarms are not emulated: none exists, so none has children or parents.
            return {"MetricAlarms": [], "CompositeAlarms": []}
        names = params.get("AlarmNames")
        prefix = params.get("AlarmNamePrefix")
        state = params.get("StateValue")
        action = params.get("ActionPrefix")
        alarms = sorted(
            (
                alarm
                for alarm in self._backend(ctx).alarms.values()
                if alarm.rule is None
                and (not names or alarm.name in names)
                and (prefix is None or alarm.name.startswith(prefix))
                and (state is None or alarm.state_value == state)
                and (action is None or any(a.startswith(action) for a in alarm.alarm_actions))
            ),
            key=lambda alarm: alarm.name,
        )
        scope = {
            "account": ctx.account_id,
            "region": ctx.region,
            "names": sorted(names or []),
            "prefix": prefix,
            "state": state,
            "action": action,
        }
        start = 0
        token = params.get("NextToken")
        if token is not None:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
                if {key: decoded[key] for key in scope} != scope:
                    raise ValueError(token)
                after = decoded["after"]
                if not isinstance(after, str):
                    raise ValueError(token)
            except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
                raise ApiError("InvalidNextToken", "The service returned an error: invalid NextToken") from None
            start = next((i for i, alarm in enumerate(alarms) if alarm.name > after), len(alarms))
        size = params.get("MaxRecords") or DEFAULT_PAGE
        page = alarms[start : start + size]
        next_token = None
        if start + size < len(alarms):
            next_token = base64.urlsafe_b64encode(json.dumps({**scope, "after": page[-1].name}).encode()).decode()
        return {"MetricAlarms": [alarm_output(a) for a in page], "CompositeAlarms": [], "NextToken": next_token}

    # --- the admin API -----------------------------------------------------------------

    def admin_alarm(self, body: dict[str, Any]) -> dict[str, Any]:
        """Make (or update) a metric alarm: ``{alarmName, metricName?, namespace?, threshold?,
        stateValue?, stateReason?, accountId?, region?}``: a 5xx-count alarm on one minute by
        default, in ``INSUFFICIENT_DATA`` unless ``stateValue`` says otherwise."""
        unknown = set(body) - {"alarmName", "metricName", "namespace", "threshold", "stateValue", "stateReason", "accountId", "region"}
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}")
        ctx = _admin_context(body)
        name = _text(body, "alarmName")
        threshold = body.get("threshold", 1.0)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ValueError("threshold must be a number")
        params = {
            "AlarmName": name,
            "MetricName": body.get("metricName", "HTTPCode_Target_5XX_Count"),
            "Namespace": body.get("namespace", "AWS/ApplicationELB"),
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": float(threshold),
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        }
        if not isinstance(params["MetricName"], str) or not isinstance(params["Namespace"], str):
            raise ValueError("metricName and namespace must be strings")
        with self._lock:
            self.put_metric_alarm(ctx, params)
            alarm = self._backend(ctx).alarms[name]
            if body.get("stateValue") is not None:
                self._admin_state(alarm, body)
            return _wire(alarm_output(alarm))

    def admin_state(self, body: dict[str, Any]) -> dict[str, Any]:
        """Set an alarm's state: ``{alarmName, stateValue, stateReason?, stateReasonData?, accountId?, region?}``."""
        unknown = set(body) - {"alarmName", "stateValue", "stateReason", "stateReasonData", "accountId", "region"}
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}")
        ctx = _admin_context(body)
        name = _text(body, "alarmName")
        with self._lock:
            alarm = self._backend(ctx).alarms.get(name)
            if alarm is None:
                raise LookupError(f"no alarm {name} in {ctx.account_id}/{ctx.region}")
            self._admin_state(alarm, body)
            return _wire(alarm_output(alarm))

    def _admin_state(self, alarm: Alarm, body: dict[str, Any]) -> None:
        value = body.get("stateValue")
        if value not in STATES:
            raise ValueError(f"stateValue must be one of {', '.join(STATES)}")
        reason = body.get("stateReason", f"Set to {value} by the test")
        data = body.get("stateReasonData")
        if not isinstance(reason, str) or (data is not None and not isinstance(data, str)):
            raise ValueError("stateReason and stateReasonData must be strings")
        if data is not None:
            try:
                json.loads(data)
            except ValueError:
                raise ValueError("stateReasonData must be JSON") from None
        self.set_state(alarm, value, reason, data)


def _wire(output: dict[str, Any]) -> dict[str, Any]:
    """An alarm as JSON for the admin API: no absent members, timestamps in ISO 8601."""
    return {
        key: value.isoformat() if isinstance(value, datetime.datetime) else value
        for key, value in output.items()
        if value is not None
    }


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _admin_context(body: dict[str, Any]) -> RequestContext:
    region = body.get("region", DEFAULT_REGION)
    account = body.get("accountId", DEFAULT_ACCOUNT_ID)
    if not isinstance(region, str) or not isinstance(account, str):
        raise ValueError("region and accountId must be strings")
    return RequestContext(access_key="admin", account_id=account, region=region, signing_service="monitoring")
