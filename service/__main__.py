"""``python -m service serve|submit|status|watch|result``."""

import sys

from service.cli import main

sys.exit(main())
