"""`python -m tradebot`: the same command as the `tradebot` script."""

from tradebot.cli import app

app(prog_name="tradebot")
