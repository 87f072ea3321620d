"""`runcreds worker exec`'s child environment: the run's endpoint, and nothing of the worker's own that an
SDK would read before it (keys, profiles, shared files, the instance's metadata)."""

from __future__ import annotations

from runcreds_cli.serve import child_environment

WORKER = {
    "PATH": "/usr/bin",
    "AWS_REGION": "eu-west-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
    "AWS_ACCESS_KEY_ID": "AKIAWORKER",
    "AWS_SECRET_ACCESS_KEY": "worker-secret",
    "AWS_SESSION_TOKEN": "worker-token",
    "AWS_SECURITY_TOKEN": "worker-token",
    "AWS_PROFILE": "ci",
    "AWS_DEFAULT_PROFILE": "ci",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token",
    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/ci",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
}
SERVED = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/credentials",
          "AWS_CONTAINER_AUTHORIZATION_TOKEN": "t", "TF_VAR_runcreds_run_id": "01RUN"}  # fmt: skip


def test_the_child_gets_the_endpoint_and_no_credential_of_the_worker() -> None:
    env = child_environment(WORKER, SERVED)
    assert {k: env[k] for k in SERVED} == SERVED
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):  # fmt: skip
        assert name not in env, name
    assert "worker-secret" not in str(env) and "worker-token" not in str(env)
    # Shared files and the metadata service cannot stand in for the endpoint
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == env["AWS_CONFIG_FILE"] == "/dev/null"
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    # What the command needs of the worker's environment is kept
    assert env["AWS_REGION"] == "eu-west-1" and env["PATH"] == "/usr/bin"
