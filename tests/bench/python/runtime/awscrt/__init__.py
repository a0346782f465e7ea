"""Stands in for awscrt, which the Lambda Python runtime does not have.

The venv holds awscrt for the SAM CLI; with it botocore would sign with the CRT. The benchmark
puts this folder first on the baselines' PYTHONPATH so botocore imports as it does in Lambda.
"""

raise ImportError("awscrt is not part of the AWS Lambda Python runtime")
