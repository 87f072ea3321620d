"""The command line's own log lines go through the redacting filter, like the functions' do."""

from __future__ import annotations

import subprocess
import sys

SECRET_SHAPED = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # 40 characters, as a secret access key


def test_a_warning_of_the_command_line_has_secret_shaped_text_redacted() -> None:
    # Given the command line's logging, in a process of its own (as a worker runs it)
    code = (
        "import logging\n"
        "from runcreds_cli.main import configure_logging\n"
        "configure_logging()\n"
        f"logging.getLogger('botocore.credentials').warning('refreshed with %s', {SECRET_SHAPED!r})\n"
    )

    # When a library logs a warning carrying a secret-shaped value
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603

    # Then it reaches stderr, redacted
    assert "refreshed with ***" in result.stderr
    assert SECRET_SHAPED not in result.stderr
