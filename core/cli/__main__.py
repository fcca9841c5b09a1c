"""``python -m core.cli``: the command-line tools without the launcher."""

import sys

from core.cli.main import main

sys.exit(main())
