"""Read-back of what moto's SNS published, and of what each subscriber would receive.

moto delivers to SQS, HTTP and Lambda subscriptions but only records email
ones.  ``inbox(endpoint)`` applies every subscription's filter policy (moto's
own matcher) to the topic's published messages, so a test can see exactly
what an email subscriber - an approver - would find in their inbox.
"""

from __future__ import annotations

from typing import Any

from moto.sns.models import sns_backends


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
