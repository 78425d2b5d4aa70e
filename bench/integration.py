"""integration.py: the integration harness (tests/integration/harness), whose
web server starters, ports and process-group handling the bench shares."""
import os
import sys

from context import REPO

# The harness reads this at import; the tests put the app under valgrind
# with it, and a benchmark of the app under valgrind would measure valgrind.
os.environ.pop("OPENOVA_FLOW_FCGI_WRAPPER", None)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from harness import checks, launchers, servers  # noqa: E402

__all__ = ["checks", "launchers", "servers"]
