"""Entry point: python -m recorder."""

import sys

from .cli import main

sys.exit(main())
