"""`runcreds local ...`: the embedded stack for people."""

from __future__ import annotations

import argparse
import signal
import threading

from runcreds.local import demo
from runcreds.local.stack import LocalStack


def up(port: int, api_port: int) -> int:
    stack = LocalStack(port=port, api_port=api_port, echo_logs=True).start()
    env = stack.client_env()
    print("runcreds embedded stack is up. In another shell:\n")
    for key, value in env.items():
        print(f"  export {key}={value}")
    print("\nOutputs:")
    for key, value in stack.outputs.items():
        print(f"  {key} = {value}")
    api = stack.outputs["ApiUrl"]
    print(
        "\nTry:\n"
        f"  curl -s --aws-sigv4 aws:amz:us-east-1:execute-api --user testing:testing {api}/accounts/acme/integrations\n"
        f'  aws events put-events --entries \'[{{"Source":"runcreds.runs","DetailType":"Run Phase Started",'
        f'"EventBusName":"{stack.outputs["RunEventBusName"]}","Detail":"{{\\"account\\":\\"acme\\",'
        f'\\"stack\\":\\"networking-prod\\",\\"run_id\\":\\"run-1\\",\\"phase\\":\\"plan\\"}}"}}]\'\n'
        "  runcreds worker credentials --account acme --stack networking-prod --run-id run-1 --phase plan --wait 10\n"
        "\nCtrl-C stops it."
    )
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    stack.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "demo":
        return demo.main()
    return up(args.port, args.api_port)
