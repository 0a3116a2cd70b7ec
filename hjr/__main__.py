import sys

from hjr.cli import main

sys.exit(main())
