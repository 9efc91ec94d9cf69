"""The end-to-end tier. ``test_lambda_runtime.py`` runs the built artifacts (``make build``)
and is collected only when ``BANK_SAM_BUILD`` names them: ``.ci/sam-check`` does so after
its build, so CI runs it on every submission."""

import os
import sys

collect_ignore = [] if os.environ.get("BANK_SAM_BUILD") else ["test_lambda_runtime.py"]


def pytest_terminal_summary(terminalreporter):
    module = sys.modules.get("tests.e2e.test_lambda_runtime")
    cold = getattr(module, "COLD_STARTS", None)
    if not cold:
        return
    terminalreporter.write_sep("-", "cold starts: process start to first answer (the built "
                                    "artifact and layer, awslambdaric on Python 3.13)")
    for name, seconds in sorted(cold.items()):
        terminalreporter.write_line(f"{name:16} {seconds * 1000:6.0f} ms")
