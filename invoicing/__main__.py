import sys

from invoicing.cli import main

sys.exit(main())
