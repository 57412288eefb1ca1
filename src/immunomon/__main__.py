"""``python -m immunomon`` runs the command line."""

from .cli import main

main(prog_name="immunomon")
