import sys

from demo.runner import main

sys.exit(main())
