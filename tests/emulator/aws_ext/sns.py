"""SNS: Publish's subject rules, and read-back of what was published and what each subscriber receives.

moto takes any subject up to 100 characters, line breaks and non-ASCII text
included; SNS does not.  ``publish_refusal`` holds a Publish request to the
rules the Publish API reference has given (``Subjects must be ASCII text that
begins with a letter, number, or punctuation mark; must not include line
breaks or control characters; and must be less than 100 characters long``),
and the AWS emulator answers a subject that breaks them as SNS does:
``InvalidParameter`` / ``Invalid parameter: Subject``, nothing published.

PublishBatch: moto checks the number of entries (at most 10) and that their
ids are distinct.  ``batch_refusal`` adds the other refusals of the whole
request the PublishBatch API reference lists (``EmptyBatchRequest``,
``InvalidBatchEntryId``: "can contain alphanumeric characters, hyphens and
underscores... up to 80 letters long", ``BatchRequestTooLong``: the entries'
messages, subjects and attributes together over 262,144 bytes), and an entry
whose subject breaks the rules above fails alone (``InvalidParameter``,
``SenderFault`` true, nothing published for it; the reference does not say
whether SNS fails the entry or the request, and the entry is what its
``Failed`` list exists for).  ``split_batch`` takes entries out of a request
before moto sees it, for those refusals and for the faults that fail chosen
entries (``faults.py``, ``entries``); ``batch_answer`` writes the answer
with them added to moto's ``Failed`` list.

moto delivers to SQS, HTTP and Lambda subscriptions but only records email
ones.  ``inbox(endpoint)`` applies every subscription's filter policy (moto's
own matcher) to the topic's published messages, so a test can see exactly
what an email subscriber - an approver - would find in their inbox.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from moto.sns.models import sns_backends

#: "less than 100 characters long".
MAX_SUBJECT_CHARS = 99


def subject_problem(subject: str) -> str | None:
    """Why SNS refuses ``subject``, or None when it takes it."""
    if not subject:
        return "it is empty"
    if len(subject) > MAX_SUBJECT_CHARS:
        return f"it has {len(subject)} characters (at most {MAX_SUBJECT_CHARS})"
    if any(not " " <= c <= "~" for c in subject):
        return "it holds a character that is not printable ASCII (a line break, a control character or non-ASCII text)"
    if subject[0] == " ":
        return "it begins with a space"
    return None


def publish_refusal(body: bytes) -> str | None:
    """The message of SNS's refusal of a Publish request with form ``body``, or None."""
    params = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if params.get("Action") != ["Publish"] or "Subject" not in params:
        return None
    if subject_problem(params["Subject"][0]) is None:
        return None
    return "Invalid parameter: Subject"


#: "The maximum total payload size ... 256 KB (262,144 bytes)".
MAX_BATCH_BYTES = 262_144
_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ENTRY_FIELD = re.compile(r"PublishBatchRequestEntries\.member\.(\d+)\.(.+)")
_NAMESPACE = "http://sns.amazonaws.com/doc/2010-03-31/"


def _form(body: bytes) -> list[tuple[str, str]]:
    return [(k, v) for k, values in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items() for v in values]


def is_publish_batch(body: bytes) -> bool:
    return ("Action", "PublishBatch") in _form(body)


def batch_entries(body: bytes) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """A PublishBatch form: its parameters other than entries, and each entry's fields in order."""
    others: list[tuple[str, str]] = []
    entries: dict[int, dict[str, str]] = {}
    for key, value in _form(body):
        match = _ENTRY_FIELD.fullmatch(key)
        if match:
            entries.setdefault(int(match[1]), {})[match[2]] = value
        else:
            others.append((key, value))
    return others, [entries[n] for n in sorted(entries)]


def _entry_bytes(entry: dict[str, str]) -> int:
    """An entry's message, subject and attribute names, types and values, in bytes."""
    return sum(
        len(value.encode())
        for key, value in entry.items()
        if key in ("Message", "Subject") or key.startswith("MessageAttributes.")
    )


def batch_refusal(body: bytes) -> tuple[str, str] | None:
    """``(code, message)`` of SNS's refusal of the whole PublishBatch request ``body``, or None."""
    _, entries = batch_entries(body)
    if not entries:
        return "EmptyBatchRequest", "The batch request doesn't contain any entries."
    if any(not _ENTRY_ID.fullmatch(entry.get("Id", "")) for entry in entries):
        return "InvalidBatchEntryId", "The Id of a batch entry in a batch request doesn't abide by the specification."
    if sum(_entry_bytes(entry) for entry in entries) > MAX_BATCH_BYTES:
        return "BatchRequestTooLong", f"The length of all the messages put together is more than the limit ({MAX_BATCH_BYTES} bytes)."
    return None


def entry_text(entry: dict[str, str]) -> str:
    """What a fault's ``entries`` expression is searched in: the entry's fields, one a line."""
    return "\n".join(f"{key}={value}" for key, value in sorted(entry.items()))


def split_batch(
    body: bytes, failing: Callable[[dict[str, str]], tuple[str, str, bool] | None]
) -> tuple[bytes, list[dict[str, Any]]]:
    """The PublishBatch ``body`` without the entries ``failing`` fails (it gives their
    ``(code, message, sender_fault)``), renumbered, and those entries' ``Failed`` answers."""
    others, entries = batch_entries(body)
    kept: list[dict[str, str]] = []
    failed: list[dict[str, Any]] = []
    for entry in entries:
        failure = failing(entry)
        if failure is None:
            kept.append(entry)
        else:
            code, message, sender_fault = failure
            failed.append({"Id": entry.get("Id", ""), "Code": code, "Message": message, "SenderFault": sender_fault})
    fields = list(others)
    for number, entry in enumerate(kept, start=1):
        fields.extend((f"PublishBatchRequestEntries.member.{number}.{key}", value) for key, value in entry.items())
    return urlencode(fields).encode(), failed


def subject_failure(entry: dict[str, str]) -> tuple[str, str, bool] | None:
    """An entry's failure for a subject SNS refuses (see ``subject_problem``), or None."""
    if "Subject" in entry and subject_problem(entry["Subject"]) is not None:
        return "InvalidParameter", "Invalid parameter: Subject", True
    return None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def batch_answer(moto_answer: bytes | None, failed: list[dict[str, Any]]) -> bytes:
    """The PublishBatch answer: moto's successful and failed entries (none when moto was not
    asked: every entry failed here), then ``failed``."""
    successful: list[dict[str, str]] = []
    refused: list[dict[str, Any]] = []
    if moto_answer is not None:
        root = ElementTree.fromstring(moto_answer)
        for element in root.iter():
            if _local(element.tag) not in ("Successful", "Failed"):
                continue
            for member in element:
                fields = {_local(child.tag): (child.text or "") for child in member}
                (successful if _local(element.tag) == "Successful" else refused).append(fields)
    refused.extend(failed)

    def members(items: list[dict[str, Any]]) -> str:
        return "".join(
            "<member>"
            + "".join(
                f"<{key}>{escape(str(value).lower() if isinstance(value, bool) else str(value))}</{key}>"
                for key, value in item.items()
            )
            + "</member>"
            for item in items
        )

    return (
        f'<PublishBatchResponse xmlns="{_NAMESPACE}"><PublishBatchResult>'
        f"<Successful>{members(successful)}</Successful><Failed>{members(refused)}</Failed>"
        f"</PublishBatchResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
        f"</ResponseMetadata></PublishBatchResponse>"
    ).encode()


def _topics() -> list[Any]:
    topics = []
    for regions in list(sns_backends.values()):
        for backend in list(regions.values()):
            topics.extend(list(backend.topics.values()))
    return topics


def _message(topic: Any, sent: tuple[Any, ...]) -> dict[str, Any]:
    message_id, message, subject, attributes, _group = sent
    return {
        "topicArn": topic.arn,
        "messageId": message_id,
        "subject": subject,
        "message": message,
        "attributes": {name: value.get("Value") for name, value in (attributes or {}).items()},
    }


def published(topic_arn: str | None = None) -> list[dict[str, Any]]:
    """Every message published (to ``topic_arn``, or to any topic), oldest first."""
    return [
        _message(topic, sent)
        for topic in _topics()
        if topic_arn is None or topic.arn == topic_arn
        for sent in list(topic.sent_notifications)
    ]


def inbox(endpoint: str) -> list[dict[str, Any]]:
    """The messages that the subscriptions of ``endpoint`` (an email address...) receive."""
    received = []
    for topic in _topics():
        backend = topic.sns_backend
        subscriptions = [s for s in list(backend.subscriptions.values()) if s.topic.arn == topic.arn and s.endpoint == endpoint]
        for sent in list(topic.sent_notifications):
            _, message, _, attributes, _ = sent
            if any(
                s._filter_policy_matcher is None or s._filter_policy_matcher.matches(attributes, message)
                for s in subscriptions
            ):
                received.append(_message(topic, sent))
    return received
