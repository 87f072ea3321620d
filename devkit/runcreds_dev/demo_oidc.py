"""The demo's OIDC scene (docs/interface.md §7): a role that trusts runcreds' issuer, so its session is no
chained one and lasts four hours, in broker mode and in worker mode."""

from __future__ import annotations

import json
import time

from runcreds.logic import oidc
from runcreds.run_scope import RunScope
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.demo_support import ACCOUNT, FOUR_HOURS, OIDC_STACK, RUN_ID, run_phase_of, runcreds_cli, show, step
from runcreds_dev.stack import EmbeddedStack


def hours_ahead(expiration: str) -> float:
    return (time.mktime(time.strptime(expiration[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone - time.time()) / 3600


def oidc_four_hour_session(stack: EmbeddedStack, api: ApiClient) -> None:
    """docs/interface.md §7: the role trusts runcreds' OIDC issuer, so its session is no chained one: four hours."""
    issuer = stack.outputs["OidcIssuerUrl"]
    step(f"OIDC: the customer's IAM OIDC provider for {issuer} (client ID sts.amazonaws.com)")
    iam = stack.customer_client("iam")
    iam.create_open_id_connect_provider(Url=issuer, ClientIDList=[oidc.AUDIENCE], ThumbprintList=["0" * 40])
    role_arn = "arn:aws:iam::111122223333:role/acme-data-deployer"
    body = {"name": "data", "role_arn": role_arn, "trust": "oidc", "duration_seconds": FOUR_HOURS}
    integration_id = api.post(f"/accounts/{ACCOUNT}/integrations", body).body["id"]
    worker_mode = api.post(
        f"/accounts/{ACCOUNT}/integrations", {**body, "name": "data-worker", "assume_role_on_worker": True}
    ).body["id"]
    policy = api.get(f"/accounts/{ACCOUNT}/integrations/{integration_id}/trust-policy", stack=OIDC_STACK).body
    iam.create_role(
        RoleName="acme-data-deployer", AssumeRolePolicyDocument=json.dumps(policy), MaxSessionDuration=43200
    )
    show(f"POST /accounts/{ACCOUNT}/integrations", f"trust=oidc, duration_seconds={FOUR_HOURS}: {integration_id}")
    show("the route's trust policy, applied as-is", policy)
    for attached_id in (integration_id, worker_mode):
        attached = api.put(
            f"/accounts/{ACCOUNT}/stacks/{OIDC_STACK}/integrations/{attached_id}", {"read": True, "write": False}
        )
        show(f"attach ({attached.body.get('mode')} mode): {attached.status}", f"status={attached.body.get('status')}")
        if attached.status != 200:
            raise SystemExit(f"the OIDC attach failed: {attached.body}")

    step(f"'Run Phase Started' for the plan of run {RUN_ID} on {OIDC_STACK}: a token minted, exchanged by the vend")
    seen = len(stack.aws.strict_sts.web_identity_tokens)
    stack.put_event("Run Phase Started", {"account": ACCOUNT, "stack": OIDC_STACK, "run_id": RUN_ID, "phase": "plan"})
    stack.router.drain()
    header, claims = (
        json.loads(oidc.b64url_decode(part)) for part in stack.aws.strict_sts.web_identity_tokens[seen].split(".")[:2]
    )
    show(
        "the token's header and claims (docs/interface.md §7; its signature is never shown)",
        {"header": header, "claims": claims},
    )
    if set(claims) != set(
        oidc.claims_for(stack.outputs["OidcIssuerUrl"], RunScope(run_phase_of("plan"), integration_id))
    ):
        raise SystemExit("the token's claims are not docs/interface.md §7's")
    api_env = {"RUNCREDS_API_URL": stack.outputs["ApiUrl"]}
    for label, chosen in (
        ("broker mode: runcreds stored it", integration_id),
        ("worker mode: the worker exchanged a fresh token itself", worker_mode),
    ):
        step(f"runcreds worker credentials --stack {OIDC_STACK} --phase plan --integration {chosen} ({label})")
        result = runcreds_cli(stack, "worker", "credentials", "--account", ACCOUNT, "--stack", OIDC_STACK, "--run-id",
                              RUN_ID, "--phase", "plan", "--integration", chosen, extra_env=api_env)  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(f"worker failed: {result.stderr.strip()}")
        process = json.loads(result.stdout)
        ahead = hours_ahead(process["Expiration"])
        show(
            "Expiration",
            f"{process['Expiration']} ({ahead:.1f} h ahead: a four-hour session, beyond the 1 h chaining cap)",
        )
        session = stack.session(process["AccessKeyId"], process["SecretAccessKey"], process["SessionToken"])
        identity = stack.client("sts", session).get_caller_identity()
        show("sts get-caller-identity Arn", identity["Arn"])
        if not identity["Arn"].endswith(f"/{RUN_ID}") or ahead < 3.9:
            raise SystemExit("the OIDC session is not the run's four-hour session")
