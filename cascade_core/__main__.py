"""`python -m cascade_core COMMAND …`: see `python -m cascade_core --help`."""
from .cli import main

raise SystemExit(main())
