import sys

from eval_tasks.cli import main

sys.exit(main())
