"""How take-over and id-prefix arguments are read (no Spark): library and command line."""

import pytest

from lookalike.catalog.ingest import take_over_spec
from lookalike.cli import build_parser
from lookalike.cli.catalog import print_ingest


def test_take_over_is_all_or_the_listed_ids():
    assert take_over_spec(False) == (False, [])
    assert take_over_spec(True) == (True, [])
    assert take_over_spec(["b", "a", "b"]) == (False, ["a", "b"])
    assert take_over_spec(()) == (False, [])
    with pytest.raises(TypeError, match="not a string"):
        take_over_spec("Shoes-a")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["folder", "p"], False),
        (["folder", "p", "--take-over"], True),
        (["folder", "p", "--take-over", "ids.txt"], "ids.txt"),
        (["folder", "--take-over=ids.txt", "p"], "ids.txt"),
        (["fashion-mnist", "--take-over", "--limit", "3"], True),
    ],
)
def test_take_over_flag_alone_or_with_a_file(argv, expected):
    args = build_parser().parse_args(["ingest", *argv])
    assert args.take_over == expected


def test_summary_line_counts_take_overs_and_explains_ownership_rejects(capsys):
    summary = {
        "source": "conc",
        "run_id": "r1",
        "rows_read": 3,
        "inserted": 0,
        "updated": 1,
        "taken_over": 1,
        "deleted": 0,
        "unchanged": 0,
        "rejected": 2,
        "version_before": 1,
        "version_after": 2,
        "seconds": 1.0,
        "reject_examples": [
            {
                "path": "/c/Shoes/a.png",
                "item_id": "Shoes-a",
                "reason": "item id owned by source 'landing'",
            },
            {"path": "/c/Shoes/b.png", "item_id": "Shoes-b", "reason": "empty file"},
        ],
    }
    print_ingest(summary, as_json=False)
    out = capsys.readouterr().out
    assert "updated 1 (1 taken over), deleted 0" in out
    assert "rejected /c/Shoes/a.png: item id owned by source 'landing'" in out
    assert "--id-prefix PREFIX keeps both feeds" in out and "--take-over [FILE]" in out
