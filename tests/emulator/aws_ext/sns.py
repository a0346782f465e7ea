"""SNS: Publish's subject rules, and read-back of what was published and what each subscriber receives.

moto takes any subject up to 100 characters, line breaks and non-ASCII text
included; SNS does not.  ``publish_refusal`` holds a Publish request to the
rules the Publish API reference has given (``Subjects must be ASCII text that
begins with a letter, number, or punctuation mark; must not include line
breaks or control characters; and must be less than 100 characters long``),
and the AWS emulator answers a subject that breaks them as SNS does:
``InvalidParameter`` / ``Invalid parameter: Subject``, nothing published.

moto delivers to SQS, HTTP and Lambda subscriptions but only records email
ones.  ``inbox(endpoint)`` applies every subscription's filter policy (moto's
own matcher) to the topic's published messages, so a test can see exactly
what an email subscriber - an approver - would find in their inbox.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

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
