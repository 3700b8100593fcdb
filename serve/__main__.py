"""python -m serve: see serve/cli.py and serve/README.md."""

import sys

from serve.cli import main

sys.exit(main())
