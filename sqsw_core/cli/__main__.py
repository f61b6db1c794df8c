"""``python -m sqsw_core.cli``."""

from sqsw_core.cli import main

main()
