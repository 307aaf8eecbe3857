"""`python -m changegate`: the CLI."""

from changegate.cli import main

main()
