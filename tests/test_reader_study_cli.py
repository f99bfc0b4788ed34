"""`python -m medreview reader-study analyze RATINGS.csv`: the published Van Dyke analyses from the
command line, and bad ratings files refused in one line with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from medreview.cli import main
from tests.helpers import ROOT, SHARED_DATA, require_shared_data

VANDYKE = SHARED_DATA / "mrmc" / "vandyke.csv"
HEADER = "modality,reader,case,truth,rating,arm,order,seconds\n"


def analyze(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["reader-study", "analyze", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_study(tmp_path, skip=(), truth_of=None, rating_of=None, modalities=("unaided", "aided")):
    """3 readers x 6 cases (3 positive) per modality; ``skip`` holds (modality, reader, case) left out."""
    lines = [HEADER]
    for modality in modalities:
        for reader in ("ann", "bob", "cy"):
            for case in range(6):
                if (modality, reader, case) in skip:
                    continue
                truth = (truth_of or {}).get((reader, case), str(case % 2))
                rating = (rating_of or {}).get((modality, reader, case), str(case % 2 * 3 + (case + len(reader)) % 4))
                lines.append(f"{modality},{reader},{case},{truth},{rating},{modality},{case},7.5\n")
    path = tmp_path / "ratings.csv"
    path.write_text("".join(lines))
    return path


@pytest.mark.slow  # a process of its own: 1-3 s of imports (scipy.stats, the store), as in tests/test_cli.py
def test_vandyke_json_from_a_real_process_matches_mrmcaov():
    """As a user runs it: a subprocess, DeLong covariances by default, one JSON object on stdout."""
    completed = subprocess.run(
        [sys.executable, "-m", "medreview", "reader-study", "analyze", str(require_shared_data(VANDYKE)), "--json"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["covariance"] == "delong"
    assert len(result["per_reader"]) == 10
    aucs = {(row["reader"], row["modality"]): row["auc"] for row in result["per_reader"]}
    assert aucs["4", "0"] == pytest.approx(0.82979066, abs=1e-6)  # Iowa, reader 5 treatment 1
    # MRMCaov (DeLong): F 4.484854, ddf 15.06611, p 0.05123303, CI -0.087867196 to 0.0002665519.
    assert (result["f"], result["ndf"], result["ddf"]) == (
        pytest.approx(4.484854, abs=5e-7),
        1,
        pytest.approx(15.06611, abs=5e-6),
    )
    assert result["p_value"] == pytest.approx(0.05123303, abs=5e-9)
    (difference,) = result["differences"]
    assert (difference["modality_a"], difference["modality_b"]) == ("0", "1")
    assert difference["ci_low"] == pytest.approx(-0.087867196, abs=5e-10)
    assert difference["ci_high"] == pytest.approx(0.0002665519, abs=5e-11)
    assert set(result["variance_components"]) == {"var", "cov1", "cov2", "cov3", "var_r", "var_tr"}
    assert [m["modality"] for m in result["modalities"]] == ["0", "1"]


def test_vandyke_jackknife_table_shows_iowas_figures(capsys):
    code, out, err = analyze(capsys, str(require_shared_data(VANDYKE)), "--covariance", "jackknife")
    assert code == 0 and err == ""
    assert "jackknife covariances" in out
    assert "F(1, 15.26) = 4.4563, p = 0.0517" in out  # Iowa: F 4.46, ddf 15.26, p 0.0517
    assert "0 - 1: -0.0438 (95% CI -0.0880 to +0.0004)" in out  # Iowa: -0.08796 to 0.00036
    assert "reader 4" in out and "0.8298" in out


def test_a_single_modality_reports_the_aucs_and_says_no_comparison_is_possible(tmp_path, capsys):
    code, out, err = analyze(capsys, str(write_study(tmp_path, modalities=("unaided",))), "--json")
    assert code == 0
    result = json.loads(out)
    assert len(result["per_reader"]) == 3 and result["differences"] == []
    assert result["f"] is None and result["p_value"] is None
    assert "no comparison of modalities is possible" in err


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: write_study(tmp, skip={("aided", "bob", 4)}), "reader bob (1 of 12 ratings missing"),
        (lambda tmp: write_study(tmp, truth_of={("ann", 2): ""}), "1 case(s) have no truth: 2"),
        (lambda tmp: write_study(tmp, truth_of={("cy", 3): "0"}), "have both truths (0 and 1): 3"),
        (lambda tmp: write_study(tmp, rating_of={("aided", "cy", 5): "probably"}), "not numbers: line 37 'probably'"),
        (
            lambda tmp: (
                (tmp / "no_truth.csv").write_text("modality,reader,case,rating\n0,0,1,3\n") and tmp / "no_truth.csv"
            ),
            "lack the column(s) truth",
        ),
        (lambda tmp: (tmp / "empty.csv").write_text("") or tmp / "empty.csv", "the file is empty"),
        (lambda tmp: (tmp / "header.csv").write_text(HEADER) and tmp / "header.csv", "the ratings hold no rows"),
        (lambda tmp: tmp / "absent.csv", "absent.csv: no such file"),
        (lambda tmp: (tmp / "x.csv").write_bytes(b"\xff\xfe\x00\x81" * 64) and tmp / "x.csv", "not a readable CSV"),
    ],
    ids=[
        "incomplete-reader",
        "no-truth",
        "two-truths",
        "non-numeric",
        "missing-column",
        "empty",
        "header-only",
        "absent",
        "binary",
    ],
)
def test_bad_ratings_are_refused_in_one_line_with_exit_code_2(tmp_path, capsys, make, expected):
    code, out, err = analyze(capsys, str(make(tmp_path)), "--json")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err
    assert "Traceback" not in err
