"""The `jsma` command: thin commands over the library, one call each.

One module per command group registers its parser and its handlers; a
handler parses nothing itself, imports the library when it runs (so that
`jsma --help` stays fast), calls it, and prints. Only this package prints;
the library reports through `logging`.
"""

from jsma.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
