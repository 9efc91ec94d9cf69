"""The layer's requirements: the application's dependencies, as pyproject.toml states them.

    python3 requirements.py ../pyproject.toml > requirements.txt

DependenciesLayer ships the third-party libraries of the application (``bank/domain``,
``services``, ``adapters``, ``handlers``), and nothing of the developer kit: the
``[project] dependencies`` of pyproject.toml, never its extras. Generated at every
``sam build`` (layer/Makefile), so the two cannot drift.
"""

import sys
import tomllib

with open(sys.argv[1], "rb") as fh:
    print("\n".join(tomllib.load(fh)["project"]["dependencies"]))
