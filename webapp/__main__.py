"""Entry point: `python -m webapp [serve|create-user|ensure-admin] ...`."""

import sys

from .cli import main

sys.exit(main())
