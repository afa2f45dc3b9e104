# `python -m lichen`: the same as the `lichen` command.
import sys

from lichen.cli import main

sys.exit(main())
