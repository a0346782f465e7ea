#!/usr/bin/env python3
"""Writes the environment stages of infra/pipeline.yaml from infra/environments.yml.

    .venv/bin/python infra/environments.py            # rewrites infra/pipeline.yaml
    .venv/bin/python infra/environments.py --check    # exit 1 (and a diff) if it is not current

Only the text between the ``# BEGIN generated`` / ``# END generated`` markers of
pipeline.yaml is written (the stages after Build, and eks-deploy's access
entries); everything else in the template is edited by hand as before. A
generator rather than ``Fn::ForEach``: the stages are a list of differently
shaped items (an approval stage only where asked), which ``Fn::ForEach``
cannot express, and the output is plain CloudFormation that cfn-lint, checkov
and the tests read as it is deployed.

Every environment deploys ``#{BuildVariables.IMAGE_URI}``, the build's image
pinned by digest: built once, promoted, never rebuilt.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ENVIRONMENTS = HERE / "environments.yml"
PIPELINE = HERE / "pipeline.yaml"

#: The build's image, pinned by digest (infra/buildspec-image.yml exports it).
IMAGE = "#{BuildVariables.IMAGE_URI}"
#: The execution the deploy belongs to: names eks-deploy's role session in the other account.
EXECUTION_ID = "#{codepipeline.PipelineExecutionId}"
REQUIRED = ("name", "cluster", "namespace", "deployment", "container", "approval")
#: Keys eks-deploy takes as they are: the rollback switch, and the release plan
#: (functions/eks-deploy/src/plan.rs).
PASSED_ON = ("rollbackOnFailure", "strategy", "alarms", "bakeAfter", "scanGate")
CROSS_ACCOUNT = ("roleArn", "externalId")
KNOWN = REQUIRED + PASSED_ON + CROSS_ACCOUNT

NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")
CLUSTER = re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}")
LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}")
# STS AssumeRole's ExternalId: 2 to 1224 of these characters.
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
#: CodePipeline takes at most this many characters in an action configuration value.
MAX_CONFIGURATION_VALUE = 1000
#: The generated stages and access entries (Source and Build before them are hand-written).
MAX_ENVIRONMENTS = 20


class InvalidEnvironments(ValueError):
    """A mistake in environments.yml, naming the field at fault."""


@dataclass(frozen=True)
class Environment:
    name: str
    cluster: str
    namespace: str
    deployment: str
    container: str
    approval: bool
    passed_on: dict[str, Any] = field(default_factory=dict)
    role_arn: str | None = None
    external_id: str | None = None

    @property
    def title(self) -> str:
        return pascal(self.name)

    def user_parameters(self) -> str:
        parameters: dict[str, Any] = {
            "cluster": self.cluster,
            "namespace": self.namespace,
            "deployment": self.deployment,
            "container": self.container,
            "image": IMAGE,
        }
        parameters.update(self.passed_on)
        # Only cross-account environments carry these: eks-deploy assumes the role, in a session
        # named <environment>-<execution id> (a Lambda invoke action's event does not carry the
        # execution id, so the pipeline passes it). Same-account deploys stay as they were.
        if self.role_arn is not None:
            parameters["roleArn"] = self.role_arn
            parameters["externalId"] = self.external_id
            parameters["environment"] = self.name
            parameters["pipelineExecutionId"] = EXECUTION_ID
        return json.dumps(parameters, separators=(",", ":"))


def pascal(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", text) if part)


def load(path: Path = ENVIRONMENTS) -> list[Environment]:
    """The environments of ``path``, checked; a mistake raises :class:`InvalidEnvironments`."""
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or set(document) != {"environments"}:
        raise InvalidEnvironments(f"{path.name}: expected a mapping with one key, environments")
    items = document["environments"]
    if not isinstance(items, list) or not items:
        raise InvalidEnvironments("environments: expected a non-empty list")
    if len(items) > MAX_ENVIRONMENTS:
        raise InvalidEnvironments(f"environments: {len(items)} environments, at most {MAX_ENVIRONMENTS}")
    environments = [environment(f"environments[{i}]", item) for i, item in enumerate(items)]
    for kind, key in (("name", lambda e: e.name), ("stage name", lambda e: e.title)):
        seen: set[str] = set()
        for i, env in enumerate(environments):
            if key(env) in seen:
                raise InvalidEnvironments(f"environments[{i}].name: the {kind} {key(env)!r} is used twice")
            seen.add(key(env))
    targets: set[tuple[str | None, str, str, str]] = set()
    for i, env in enumerate(environments):
        account = env.role_arn.split(":")[4] if env.role_arn else None
        target = (account, env.cluster, env.namespace, env.deployment)
        if target in targets:
            raise InvalidEnvironments(
                f"environments[{i}]: {env.cluster}/{env.namespace}/{env.deployment} is already an earlier environment"
            )
        targets.add(target)
    entries = [pascal(cluster) for cluster in same_account_clusters(environments)]
    if len(set(entries)) != len(entries):
        raise InvalidEnvironments("environments: two cluster names differ only in '-' and '_'")
    return environments


def environment(path: str, item: Any) -> Environment:
    if not isinstance(item, dict):
        raise InvalidEnvironments(f"{path}: expected a mapping")
    for key in item:
        if key not in KNOWN:
            raise InvalidEnvironments(f"{path}.{key}: unknown key (expected one of {', '.join(KNOWN)})")
    for key in REQUIRED:
        if key not in item:
            raise InvalidEnvironments(f"{path}.{key}: missing")

    def text(key: str, pattern: re.Pattern[str], what: str) -> str:
        value = item[key]
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise InvalidEnvironments(f"{path}.{key}: {value!r} is not {what}")
        return value

    name = text("name", NAME, "a name (a lower-case letter, then letters, digits and '-', at most 30)")
    cluster = text("cluster", CLUSTER, "an EKS cluster name")
    namespace = text("namespace", LABEL, "a Kubernetes namespace name")
    deployment = item["deployment"]
    if not isinstance(deployment, str) or len(deployment) > 253 or not all(
        LABEL.fullmatch(part) for part in deployment.split(".")
    ):
        raise InvalidEnvironments(f"{path}.deployment: {deployment!r} is not a Deployment name")
    container = text("container", LABEL, "a container name")
    approval = item["approval"]
    if not isinstance(approval, bool):
        raise InvalidEnvironments(f"{path}.approval: expected true or false, got {approval!r}")
    passed_on = {key: item[key] for key in PASSED_ON if key in item}
    if "rollbackOnFailure" in passed_on and not isinstance(passed_on["rollbackOnFailure"], bool):
        raise InvalidEnvironments(f"{path}.rollbackOnFailure: expected true or false")
    role_arn = external_id = None
    if "roleArn" in item or "externalId" in item:
        if "roleArn" not in item:
            raise InvalidEnvironments(f"{path}.roleArn: missing (externalId is given; it goes with a role)")
        if "externalId" not in item:
            raise InvalidEnvironments(
                f"{path}.externalId: missing (the target account's role requires one: infra/target-account.yaml)"
            )
        role_arn = text("roleArn", ROLE_ARN, "an IAM role ARN")
        external_id = text("externalId", EXTERNAL_ID, "an ExternalId (2 to 1224 of letters, digits and +=,.@:/-_)")
    env = Environment(name, cluster, namespace, deployment, container, approval, passed_on, role_arn, external_id)
    if len(env.user_parameters()) > MAX_CONFIGURATION_VALUE:
        raise InvalidEnvironments(
            f"{path}: its eks-deploy parameters are {len(env.user_parameters())} characters, "
            f"more than the {MAX_CONFIGURATION_VALUE} CodePipeline takes"
        )
    return env


def same_account_clusters(environments: list[Environment]) -> list[str]:
    """The clusters of this account, first seen first: each gets eks-deploy's access entry here."""
    clusters: list[str] = []
    for env in environments:
        if env.role_arn is None and env.cluster not in clusters:
            clusters.append(env.cluster)
    return clusters


def quoted(text: str) -> str:
    """A YAML single-quoted scalar: nothing in it is special but the quote itself."""
    return "'" + text.replace("'", "''") + "'"


def stages(environments: list[Environment]) -> list[str]:
    lines: list[str] = []
    previous: Environment | None = None
    for env in environments:
        if env.approval:
            if previous is None:
                question = (
                    f"Deploy #{{SourceVariables.CommitId}} (#{{SourceVariables.CommitMessage}}), "
                    f"image #{{BuildVariables.IMAGE_DIGEST}}, to {env.name}?"
                )
            else:
                question = (
                    f"Promote #{{SourceVariables.CommitId}} (#{{SourceVariables.CommitMessage}}), "
                    f"image #{{BuildVariables.IMAGE_DIGEST}}, from {previous.name} to {env.name}?"
                )
            lines += [
                f"        - Name: Approve{env.title}",
                "          Actions:",
                f"            - Name: {env.title}Gate",
                "              ActionTypeId:",
                "                Category: Approval",
                "                Owner: AWS",
                "                Provider: Manual",
                '                Version: "1"',
                "              Configuration:",
                "                # approval-notify mails each approver their own signed links.",
                "                NotificationArn: !Ref ApprovalRequestsTopicArn",
                f"                CustomData: {quoted(question)}",
                "              RunOrder: 1",
            ]
        where = f"{env.cluster} ({env.role_arn.split(':')[4]})" if env.role_arn else env.cluster
        lines += [
            f"        # {env.name}: {env.namespace}/{env.deployment} in {where}.",
            f"        - Name: Deploy{env.title}",
            "          Actions:",
            "            - Name: Deploy",
            f"              Namespace: Deploy{env.title}Variables",
            "              ActionTypeId:",
            "                Category: Invoke",
            "                Owner: AWS",
            "                Provider: Lambda",
            '                Version: "1"',
            "              Configuration:",
            "                FunctionName: !Ref DeployFunctionName",
            f"                UserParameters: {quoted(env.user_parameters())}",
            "              RunOrder: 1",
        ]
        previous = env
    return lines


def access_entries(environments: list[Environment]) -> list[str]:
    clusters = same_account_clusters(environments)
    lines: list[str] = []
    for cluster in clusters:
        # The last cluster keeps the id the one-cluster pipeline gave its entry: a renamed entry
        # would be created before the old one is deleted, and EKS refuses a principal's second
        # entry in a cluster.
        logical_id = "DeployAccessEntry" if cluster == clusters[-1] else f"DeployAccessEntry{pascal(cluster)}"
        lines += [
            f"  {logical_id}:",
            "    Type: AWS::EKS::AccessEntry",
            "    Properties:",
            f"      ClusterName: {cluster}",
            "      PrincipalArn: !Ref DeployFunctionRoleArn",
            "      Type: STANDARD",
            "      KubernetesGroups:",
            "        - eks-deploy",
            "",
        ]
    return lines[:-1]


def replace_between(text: str, region: str, lines: list[str]) -> str:
    begin = re.compile(rf"^[ \t]*# BEGIN generated {re.escape(region)}\b.*\n", re.M)
    end = re.compile(rf"^[ \t]*# END generated {re.escape(region)}\b.*$", re.M)
    opening = begin.search(text)
    closing = end.search(text, opening.end()) if opening else None
    if opening is None or closing is None:
        raise InvalidEnvironments(f"{PIPELINE.name}: the '# BEGIN generated {region}' / '# END generated {region}' markers are missing")
    return text[: opening.end()] + "".join(line + "\n" for line in lines) + text[closing.start() :]


def render(pipeline_text: str, environments: list[Environment]) -> str:
    text = replace_between(pipeline_text, "stages", stages(environments))
    return replace_between(text, "access entries", access_entries(environments))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether pipeline.yaml is current")
    parser.add_argument("--environments", type=Path, default=ENVIRONMENTS)
    parser.add_argument("--pipeline", type=Path, default=PIPELINE)
    args = parser.parse_args(argv)
    try:
        environments = load(args.environments)
        current = args.pipeline.read_text()
        wanted = render(current, environments)
    except InvalidEnvironments as error:
        print(f"{args.environments}: {error}", file=sys.stderr)
        return 2
    if args.check:
        if wanted == current:
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(current.splitlines(True), wanted.splitlines(True), str(args.pipeline), "generated")
        )
        print(f"{args.pipeline} is not what {args.environments.name} gives: run infra/environments.py", file=sys.stderr)
        return 1
    if wanted != current:
        args.pipeline.write_text(wanted)
    clusters = same_account_clusters(environments)
    print(f"{args.pipeline.name}: {len(environments)} environments; this account's clusters: {','.join(clusters)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
