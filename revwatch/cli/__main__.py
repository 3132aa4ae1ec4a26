"""`python -m revwatch.cli` runs the CLI (as `python -m revwatch` does)."""
from revwatch.cli import main

main()
