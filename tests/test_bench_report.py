"""What a benchmark report records: commands and arguments without the folders of the machine that ran them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _report import portable  # benchmarks/ is a folder of scripts, not a package


def test_absolute_paths_are_cut_to_their_last_component():
    assert portable("/home/someone/out/lrm") == "lrm"
    assert portable("/tmp/limcache/") == "limcache"
    assert portable("--json=/tmp/x/y.json") == "--json=y.json"
    assert portable("python a.py --data /srv/checkout/data --steps 5") == "python a.py --data data --steps 5"


def test_relative_paths_and_other_values_are_kept():
    for value in ("benchmarks/bench_lim.py", "PYTHONPATH=.:plugins/lim", "3e-4", "--save-lrm", "lim-tiny"):
        assert portable(value) == value
    assert portable(None) is None and portable(5) == 5
