"""``python -m tagtrail``: the same as the ``tagtrail`` command."""

from tagtrail.cli import main

main()
