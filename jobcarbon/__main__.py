"""``python -m jobcarbon``."""

from jobcarbon.cli import main

main()
