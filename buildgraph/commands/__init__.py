"""One module per `bg` command: `add_parser(sub, common, name, help_text)` and `run(ns) -> int`."""
