"""Reader-study statistics against published analyses (Van Dyke et al. 1993, analysed by OR-DBM MRMC
2.51 with jackknife covariances and by MRMCaov with DeLong covariances), a DeLong example worked by
hand, brute-force checks of the vectorised formulas, and the refusals of bad ratings."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medreview.reading import mrmc
from tests.helpers import SHARED_DATA, require_shared_data

MRMC_DATA = SHARED_DATA / "mrmc"


@pytest.fixture(scope="module")
def vandyke() -> pd.DataFrame:
    return mrmc.read_ratings_csv(require_shared_data(MRMC_DATA / "vandyke.csv"))


@pytest.fixture(scope="module")
def published() -> dict:
    return json.loads(require_shared_data(MRMC_DATA / "vandyke_expected.json").read_text())["published"]


def assert_printed(actual: float, leaf: dict) -> None:
    """``actual`` rounds to the figure the program printed: within half its last printed decimal."""
    tolerance = 0.5 * 10.0 ** -leaf["printed_decimals"] + 1e-12
    assert abs(actual - leaf["value"]) <= tolerance, f"{leaf['field']}: {actual} vs printed {leaf['value']}"


def by_reader_modality(result: mrmc.MrmcResult) -> dict[tuple[str, str], float]:
    return {(row.reader, row.modality): row.auc for row in result.per_reader}


# --- Van Dyke: Iowa OR-DBM MRMC 2.51, jackknife covariances ---------------------------------------


def test_vandyke_jackknife_matches_iowa_ordbm_mrmc(vandyke, published):
    iowa = published["iowa_ordbm_mrmc_2.51"]
    result = mrmc.analyze(vandyke, covariance="jackknife")

    aucs = by_reader_modality(result)
    assert len(aucs) == 10
    for leaf in iowa["auc_per_reader_modality"]:
        assert aucs[leaf["reader"], leaf["modality"]] == pytest.approx(leaf["value"], abs=1e-6)
    averaged = {m.modality: m for m in result.modalities}
    for leaf in iowa["auc_mean_per_modality"]:
        assert averaged[leaf["modality"]].reader_averaged_auc == pytest.approx(leaf["value"], abs=1e-6)

    components = iowa["or_variance_components_jackknife"]
    mine = result.variance_components
    for name, key in [("var", "var"), ("cov1", "cov1"), ("cov2", "cov2"), ("cov3", "cov3")]:
        assert_printed(getattr(mine, name), components[key])
    assert_printed(mine.var_r, components["varR"])
    assert_printed(mine.var_tr, components["varTR"])

    test = iowa["RRRC"]["F_test"]
    assert result.ndf == 1
    assert_printed(result.f, test["F"])
    assert_printed(result.ddf, test["ddf"])
    assert_printed(result.p_value, test["p"])

    (difference,) = result.differences
    printed = iowa["RRRC"]["trt_differences"][0]  # "1 - 2": Iowa treatment 1 = modality "0"
    assert (difference.modality_a, difference.modality_b) == ("0", "1")
    for attribute, key in [
        ("estimate", "estimate"),
        ("std_error", "stderr"),
        ("df", "df"),
        ("ci_low", "ci_lower"),
        ("ci_high", "ci_upper"),
        ("p_value", "p"),
    ]:
        assert_printed(getattr(difference, attribute), printed[key])

    # Each modality alone, readers and cases random (Iowa's single-treatment intervals).
    for single in iowa["RRRC"]["single_treatment_ci"]:
        assert_printed(averaged[single["modality"]].ci_low, single["ci_lower"])
        assert_printed(averaged[single["modality"]].ci_high, single["ci_upper"])
    assert result.notes == []


# --- Van Dyke: MRMCaov, DeLong covariances -----------------------------------------------------------


def test_vandyke_delong_matches_mrmcaov(vandyke, published):
    mrmcaov = published["mrmcaov_jss"]["DeLong_RRRC"]
    result = mrmc.analyze(vandyke, covariance="delong")
    assert result.covariance == "delong"

    iowa_aucs = published["iowa_ordbm_mrmc_2.51"]["auc_per_reader_modality"]  # the AUC needs no covariance
    aucs = by_reader_modality(result)
    for leaf in iowa_aucs:
        assert aucs[leaf["reader"], leaf["modality"]] == pytest.approx(leaf["value"], abs=1e-6)

    components = mrmcaov["or_variance_components"]
    mine = result.variance_components
    for name in ("var", "cov1", "cov2", "cov3"):
        assert_printed(getattr(mine, name), components[name])
    assert_printed(mine.var_r, components["varR"])
    assert_printed(mine.var_tr, components["varTR"])

    test = mrmcaov["F_test"]
    assert_printed(result.f, test["F"])
    assert result.ndf == 1
    assert_printed(result.ddf, test["ddf"])
    assert_printed(result.p_value, test["p"])

    (difference,) = result.differences
    printed = mrmcaov["trt_differences"][0]
    for attribute, key in [
        ("estimate", "estimate"),
        ("std_error", "stderr"),
        ("df", "df"),
        ("ci_low", "ci_lower"),
        ("ci_high", "ci_upper"),
        ("p_value", "p"),
    ]:
        assert_printed(getattr(difference, attribute), printed[key])

    averaged = {m.modality: m for m in result.modalities}
    for single in mrmcaov["single_treatment_ci"]:
        assert_printed(averaged[single["modality"]].reader_averaged_auc, single["auc"])
        assert_printed(averaged[single["modality"]].ci_low, single["ci_lower"])
        assert_printed(averaged[single["modality"]].ci_high, single["ci_upper"])


def test_json_has_the_documented_keys_and_the_difference_of_the_table(vandyke):
    as_json = mrmc.analyze(vandyke, covariance="jackknife").as_json()
    json.dumps(as_json, allow_nan=False)  # plain JSON: no NaN / Infinity
    assert {"per_reader", "modalities", "differences", "f", "ndf", "ddf", "p_value"} <= set(as_json)
    assert as_json["covariance"] == "jackknife"
    assert set(as_json["variance_components"]) == {"var", "cov1", "cov2", "cov3", "var_r", "var_tr"}
    assert {"reader", "modality", "auc"} <= set(as_json["per_reader"][0])
    assert {"modality", "reader_averaged_auc"} <= set(as_json["modalities"][0])
    assert {"modality_a", "modality_b", "estimate", "ci_low", "ci_high", "p_value"} <= set(as_json["differences"][0])
    means = {m["modality"]: m["reader_averaged_auc"] for m in as_json["modalities"]}
    assert as_json["differences"][0]["estimate"] == pytest.approx(means["0"] - means["1"])


# --- three modalities ---------------------------------------------------------------------------------


def test_three_modalities_give_one_f_test_and_every_pair(vandyke):
    """Van Dyke with a third modality "copy" that repeats modality 1's ratings: the F test runs across
    the three on 2 numerator degrees of freedom, every pair has a difference, the copy differs from
    modality 1 by exactly nothing (p = 1) and modality 0 differs from both by the published -0.0438."""
    copy = vandyke[vandyke["modality"] == "1"].assign(modality="copy")
    result = mrmc.analyze(pd.concat([vandyke, copy], ignore_index=True), covariance="jackknife")
    assert [m.modality for m in result.modalities] == ["0", "1", "copy"]
    assert result.ndf == 2
    assert result.f is not None and result.f > 0 and result.ddf > 0 and 0 < result.p_value < 1
    pairs = {(d.modality_a, d.modality_b): d for d in result.differences}
    assert set(pairs) == {("0", "1"), ("0", "copy"), ("1", "copy")}
    assert pairs["1", "copy"].estimate == 0 and pairs["1", "copy"].p_value == pytest.approx(1.0)
    assert pairs["0", "1"].estimate == pytest.approx(-0.04380032, abs=1e-8)
    assert pairs["0", "copy"].estimate == pytest.approx(-0.04380032, abs=1e-8)
    for difference in result.differences:
        assert difference.ci_low < difference.estimate < difference.ci_high
    # A copied modality has its AUCs' covariance with modality 1 equal to their variance.
    assert result.variance_components.cov1 < result.variance_components.var


def test_a_generated_three_modality_study_finds_the_better_modality():
    """8 readers, 60 cases; modality "c" separates the classes much better than "a" and "b"."""
    rng = np.random.default_rng(7)
    truth = np.repeat([0, 1], 30)
    shift = {"a": 0.8, "b": 0.9, "c": 2.5}
    rows = []
    for modality, reader, case in itertools.product(shift, range(8), range(60)):
        score = rng.normal(0, 1) + truth[case] * shift[modality]
        rows.append((modality, f"r{reader}", f"c{case}", truth[case], round(score, 2)))
    ratings = pd.DataFrame(rows, columns=list(mrmc.COLUMNS))
    result = mrmc.analyze(ratings)
    assert result.ndf == 2 and result.p_value < 0.001
    pairs = {(d.modality_a, d.modality_b): d for d in result.differences}
    assert pairs["a", "c"].p_value < 0.01 and pairs["b", "c"].p_value < 0.01
    assert pairs["a", "c"].ci_high < 0 and pairs["b", "c"].ci_high < 0
    assert pairs["a", "b"].p_value > 0.05  # a shift of 0.1 is not found in 60 cases


def test_readers_with_identical_ratings_give_an_infinite_ddf_and_plain_json(vandyke):
    """Five copies of reader 0: no reader-by-modality variation, so Hillis' ddf is infinite (the F test
    becomes a chi-square test); the JSON says null rather than Infinity, and a note says why."""
    reader_0 = vandyke[vandyke["reader"] == "0"]
    copies = pd.concat([reader_0.assign(reader=f"copy{k}") for k in range(5)], ignore_index=True)
    result = mrmc.analyze(copies)
    assert math.isinf(result.ddf)
    assert result.p_value == pytest.approx(stats.chi2.sf(result.f, 1))
    as_json = result.as_json()
    json.dumps(as_json, allow_nan=False)
    assert as_json["ddf"] is None and as_json["differences"][0]["df"] is None
    assert "ddf is infinite" in " ".join(result.notes)
    (difference,) = result.differences
    assert difference.estimate == pytest.approx(0.91964573 - 0.94782609, abs=1e-6)  # reader 0's, Iowa


# --- DeLong by hand -----------------------------------------------------------------------------------

# Three positive cases P1-P3 and three negative N1-N3, rated by A and by B (higher = more likely positive).
#
#   A: P = (0.9, 0.7, 0.4)  N = (0.5, 0.3, 0.4)      B: P = (0.8, 0.3, 0.6)  N = (0.2, 0.7, 0.1)
#
# psi(P, N) = 1 if P > N, 1/2 if equal, 0 if below.
#   A     N1  N2  N3 | V10           B     N1  N2  N3 | V10
#   P1    1   1   1  | 1             P1    1   1   1  | 1
#   P2    1   1   1  | 1             P2    1   0   1  | 2/3
#   P3    0   1  1/2 | 1/2           P3    1   0   1  | 2/3
#   V01  2/3  1  5/6                 V01   1  1/3  1
# AUC_A = 7.5 / 9 = 5/6, AUC_B = 7/9.
# Sample variances (ddof 1):
#   S10_A = var(1, 1, 1/2) = (1/36 + 1/36 + 1/9) / 2 = 1/12;   S01_A = var(2/3, 1, 5/6) = (1/36 + 1/36) / 2 = 1/36
#   S10_B = var(1, 2/3, 2/3) = (4 + 1 + 1) / 81 / 2 = 1/27;    S01_B = var(1, 1/3, 1) = (4 + 16 + 4) / 81 / 2 = 4/27
#   S10_AB: deviations (1/6, 1/6, -1/3) and (2/9, -1/9, -1/9): (2 - 1 + 2) / 54 / 2 = 1/36
#   S01_AB: deviations (-1/6, 1/6, 0) and (2/9, -4/9, 2/9): (-2 - 4 + 0) / 54 / 2 = -1/18
# Var(AUC) = S10 / 3 + S01 / 3:
#   Var_A = 1/36 + 1/108 = 1/27;  Var_B = 1/81 + 4/81 = 5/81;  Cov_AB = 1/108 - 1/54 = -1/108
# Var(A - B) = 1/27 + 5/81 + 2/108 = (12 + 20 + 6) / 324 = 19/162; z = (1/18) / sqrt(19/162).
HAND_TRUTH = np.array([1, 1, 1, 0, 0, 0])
HAND_A = np.array([0.9, 0.7, 0.4, 0.5, 0.3, 0.4])
HAND_B = np.array([0.8, 0.3, 0.6, 0.2, 0.7, 0.1])


def test_delong_covariance_matches_the_hand_worked_example():
    aucs = mrmc.empirical_auc(np.vstack([HAND_A, HAND_B]), HAND_TRUTH)
    np.testing.assert_allclose(aucs, [5 / 6, 7 / 9], atol=1e-12)
    covariance = mrmc.delong_covariance(np.vstack([HAND_A, HAND_B]), HAND_TRUTH)
    np.testing.assert_allclose(covariance, [[1 / 27, -1 / 108], [-1 / 108, 5 / 81]], atol=1e-12)


def test_paired_delong_test_matches_the_hand_worked_example():
    test = mrmc.delong_paired_test(HAND_TRUTH, HAND_A, HAND_B)
    assert (test.auc_a, test.auc_b) == (pytest.approx(5 / 6), pytest.approx(7 / 9))
    assert test.difference == pytest.approx(1 / 18)
    assert test.std_error == pytest.approx(math.sqrt(19 / 162))
    z = (1 / 18) / math.sqrt(19 / 162)  # 0.1622
    assert test.z == pytest.approx(z)
    assert test.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))  # two-sided normal: 0.871
    assert test.ci_low == pytest.approx(1 / 18 - 1.959964 * math.sqrt(19 / 162), abs=1e-6)


def test_paired_delong_test_of_a_rating_with_itself_is_p_one():
    test = mrmc.delong_paired_test(HAND_TRUTH, HAND_A, HAND_A)
    assert test.difference == 0 and test.std_error == 0 and test.p_value == 1.0


# --- the vectorised formulas against the definitions ----------------------------------------------


def test_auc_delong_and_jackknife_equal_their_definitions_with_ties():
    """Integer ratings on a 1-5 scale (many ties): the rank-based AUC and structural components equal
    the pairwise kernel, and the closed-form leave-one-out AUCs equal recomputing without each case."""
    rng = np.random.default_rng(3)
    truth = np.array([1] * 7 + [0] * 9)
    ratings = rng.integers(1, 6, size=(4, 16)).astype(float)  # (K, N)
    positives, negatives = ratings[:, truth == 1], ratings[:, truth == 0]

    kernel = (positives[:, :, None] > negatives[:, None, :]) + 0.5 * (positives[:, :, None] == negatives[:, None, :])
    np.testing.assert_allclose(mrmc.empirical_auc(ratings, truth), kernel.mean(axis=(1, 2)))
    v10, v01 = kernel.mean(axis=2), kernel.mean(axis=1)
    delong = np.cov(v10) / 7 + np.cov(v01) / 9
    np.testing.assert_allclose(mrmc.delong_covariance(ratings, truth), delong, atol=1e-14)

    left_out = np.array(
        [mrmc.empirical_auc(np.delete(ratings, c, axis=1), np.delete(truth, c)) for c in range(16)]
    )  # (N, K)
    deviations = left_out - left_out.mean(axis=0)
    jackknife = (16 - 1) / 16 * deviations.T @ deviations
    np.testing.assert_allclose(mrmc.jackknife_covariance(ratings, truth), jackknife, atol=1e-14)


# --- Wilson intervals -----------------------------------------------------------------------------------


def test_wilson_interval_matches_the_formula_and_stays_in_range():
    # 8 of 10, z = 1.96: centre (0.8 + 1.96^2/20) / (1 + 1.96^2/10) = 0.99208 / 1.38415 = 0.71674,
    # half-width 1.96 / 1.38415 * sqrt(0.016 + 1.96^2/400) = 1.41603 * 0.15999 = 0.22655.
    low, high = mrmc.wilson_interval(8, 10)
    assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    # 0 of 10: not the point 0 a Wald interval gives; high = z^2 / (n + z^2) = 3.8415 / 13.8415.
    assert mrmc.wilson_interval(0, 10) == (0.0, pytest.approx(3.8415 / 13.8415, abs=1e-4))
    assert mrmc.wilson_interval(10, 10)[0] == pytest.approx(1 - 3.8415 / 13.8415, abs=1e-4)
    assert all(math.isnan(bound) for bound in mrmc.wilson_interval(0, 0))
    with pytest.raises(ValueError):
        mrmc.wilson_interval(11, 10)


# --- plain answers and refusals -------------------------------------------------------------------------


def small_study(modalities=("unaided", "aided"), readers=("ann", "bob", "cy"), cases=8) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for modality, reader, case in itertools.product(modalities, readers, range(cases)):
        truth = case % 2
        rows.append(
            {
                "modality": modality,
                "reader": reader,
                "case": f"case{case}",
                "truth": str(truth),
                "rating": str(int(rng.integers(0, 60)) + 40 * truth),
                "arm": modality,
                "seconds": "12.5",
            }
        )
    return pd.DataFrame(rows)


def test_extra_columns_are_ignored_and_ids_keep_their_order():
    result = mrmc.analyze(small_study())
    assert [m.modality for m in result.modalities] == ["unaided", "aided"]
    assert [row.reader for row in result.per_reader[:2]] == ["ann", "ann"]
    assert (result.readers, result.cases, result.positives, result.negatives) == (3, 8, 4, 4)


def test_one_modality_reports_the_aucs_and_says_no_comparison_is_possible():
    result = mrmc.analyze(small_study(modalities=("unaided",)))
    assert len(result.per_reader) == 3 and all(0 <= row.auc <= 1 for row in result.per_reader)
    assert result.differences == [] and result.f is None and result.p_value is None
    assert result.variance_components.cov1 is None and result.variance_components.cov3 is None
    assert "no comparison of modalities is possible" in result.notes[0]
    assert "no comparison" in result.as_text()


def test_a_typed_frame_from_a_page_gives_the_same_analysis_as_the_csv_text(vandyke):
    """A page passes numbers and booleans, not text: the same figures, and a missing truth is "no truth"."""
    typed = vandyke.assign(
        reader=vandyke["reader"].astype(int),
        truth=vandyke["truth"].astype(int).astype(bool),
        rating=vandyke["rating"].astype(float),
    )
    assert mrmc.analyze(typed).as_json() == mrmc.analyze(vandyke).as_json()
    typed["truth"] = typed["truth"].astype(float)
    typed.loc[typed["case"] == "7", "truth"] = np.nan
    assert "1 case(s) have no truth: 7" in refusal(typed)


def test_one_reader_gets_the_differences_but_no_random_reader_test():
    result = mrmc.analyze(small_study(readers=("ann",)))
    (difference,) = result.differences
    aucs = {row.modality: row.auc for row in result.per_reader}
    assert difference.estimate == pytest.approx(aucs["unaided"] - aucs["aided"])
    assert difference.ci_low is None and difference.p_value is None and result.f is None
    assert "Only one reader (ann)" in result.notes[0]


def refusal(frame: pd.DataFrame) -> str:
    with pytest.raises(mrmc.RatingsError) as raised:
        mrmc.analyze(frame)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_readers_who_did_not_read_every_case_are_named():
    ratings = small_study()
    dropped = ratings[~((ratings["reader"] == "bob") & (ratings["case"] == "case3") & (ratings["modality"] == "aided"))]
    dropped = dropped[~((dropped["reader"] == "cy") & (dropped["modality"] == "unaided"))]
    message = refusal(dropped)
    assert "every reader must rate every case" in message
    assert "reader bob (1 of 16 ratings missing, e.g. modality aided case case3)" in message
    assert "reader cy (8 of 16" in message and "ann" not in message


def test_a_case_without_truth_or_with_two_truths_is_refused():
    ratings = small_study()
    ratings.loc[ratings["case"] == "case2", "truth"] = ""
    assert "1 case(s) have no truth: case2" in refusal(ratings)
    ratings = small_study()
    ratings.loc[(ratings["case"] == "case5") & (ratings["reader"] == "cy"), "truth"] = "0"
    assert "have both truths (0 and 1): case5" in refusal(ratings)
    ratings = small_study()
    ratings.loc[3, "truth"] = "yes"
    assert "truth must be 0 (negative) or 1 (positive): line 5 'yes'" in refusal(ratings)


def test_non_numeric_ratings_are_refused_with_their_lines():
    ratings = small_study()
    ratings.loc[[0, 9], "rating"] = ["high", ""]
    assert "2 rating(s) are not numbers: line 2 'high', line 11 ''" in refusal(ratings)


def test_missing_columns_empty_tables_and_twice_rated_cases_are_refused():
    assert "lack the column(s) truth" in refusal(small_study().drop(columns="truth"))
    assert "hold no rows" in refusal(small_study().iloc[0:0])
    ratings = small_study()
    assert "rate a case twice" in refusal(pd.concat([ratings, ratings.iloc[[0]]]))
    all_positive = small_study().assign(truth="1")
    assert "every case is positive" in refusal(all_positive)
    with pytest.raises(mrmc.RatingsError, match="covariance must be one of"):
        mrmc.analyze(small_study(), covariance="bootstrap")
