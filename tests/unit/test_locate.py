"""`locate.field_line`: a lint warning's field found again in the Buildfile text."""

from __future__ import annotations

from buildgraph.locate import field_line

TEXT = """\
[project]
name = "demo"

[args]
API_TOKEN = "x"

[stages.img]  # the image
from = "python:3.12-slim"
env = { LANG = "C.UTF-8",
        PIP_NO_CACHE_DIR = "1" }
run = [
  "apt-get update",  # a comment, with [brackets], "quotes"
  '''pip install \\
     x''', "echo a,b",
  { command = "make", mounts = [{ type = "cache", target = "/c" }] },
]
user = "1000"

[stages."odd name"]
from = "img"
"""


def test_array_items_keys_and_sub_keys() -> None:
    assert field_line(TEXT, "img", "from") == 8
    assert field_line(TEXT, "img", "run[0]") == 12
    assert field_line(TEXT, "img", "run[1]") == 13
    assert field_line(TEXT, "img", "run[2]") == 14
    assert field_line(TEXT, "img", "run[3]") == 15
    assert field_line(TEXT, "img", "env.PIP_NO_CACHE_DIR") == 10
    assert field_line(TEXT, "img", "user") == 17
    assert field_line(TEXT, "odd name", "from") == 20
    assert field_line(TEXT, "", "args.API_TOKEN") == 5


def test_unknown_places_fall_back_to_the_table_or_zero() -> None:
    assert field_line(TEXT, "img", "workdir") == 7
    assert field_line(TEXT, "missing", "run[0]") == 0
