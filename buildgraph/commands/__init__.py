"""One module per `bg` command, `<command>_cmd.py` (the suffix keeps `lint_cmd` apart from
`buildgraph.lint`, `shell_cmd` from a shell): `add_parser(sub, common, name, help_text)` and
`run(ns) -> int`. `_common.py` and `session.py` are what the commands share."""
