"""`python -m revwatch` runs the CLI."""
from revwatch.cli import main

main()
