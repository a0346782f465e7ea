"""moto 5.2.5 server extended with the AWS operations it lacks, checked against botocore's models.

``model``        validation and serialization from botocore's service models
``context``      account/region/caller of a request, resolved as moto does
``codecommit``   branches and commits on moto's repositories
``codepipeline`` pipeline executions that run stage by stage
``codebuild``    builds with numbers, phases and overrides, and their EventBridge events
``pullrequests`` pull requests on those branches: comments, approval states, their events
``ecr``          ECR repositories, images (digest pinning, tag immutability) and scan findings
``cloudwatch``   CloudWatch metric alarms over Smithy RPC v2 CBOR and JSON, on moto's store
``app``          the WSGI application (``make_app``) with the ``/_emulator`` admin API
"""

from .app import EmulatorApp, known_cluster_names, make_app

__all__ = ["EmulatorApp", "known_cluster_names", "make_app"]
