import sys

from charmodel.cli import main

sys.exit(main())
