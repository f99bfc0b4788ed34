"""Reader-study statistics: reader AUCs, DeLong and jackknife covariances, and the multi-reader
multi-case (MRMC) comparison of modalities by the Obuchowski-Rockette method with Hillis'
denominator degrees of freedom. numpy and scipy only.

The design is fully crossed: every reader rates every case in every modality (say, *unaided* and
*aided*). A higher rating means "more likely positive" (truth 1).

- A reader's AUC in a modality is the empirical (trapezoidal) AUC, the Wilcoxon/Mann-Whitney
  statistic with ties counted as one half.
- The covariance of the AUCs across readers and modalities (the same cases are read by all) is
  estimated either by DeLong's method from the structural components (DeLong, DeLong &
  Clarke-Pearson 1988, Biometrics 44:837-845) or by the jackknife over cases, as OR-DBM MRMC 2.51
  (University of Iowa) computes it: each case left out in turn, covariance of the leave-one-out
  AUCs times (N - 1) (the ``(N - 1) / N`` times the sum of cross-products).
- The Obuchowski-Rockette model (Obuchowski & Rockette 1995, Commun Stat Simul Comput 24:285-308)
  treats readers and cases as random; its F test of "all modalities have the same reader-averaged
  AUC" uses Hillis' denominator degrees of freedom (Hillis 2007, Stat Med 26:596-619):
  ``F = MS(T) / (MS(T*R) + r * max(Cov2 - Cov3, 0))`` on ``t - 1`` and
  ``ddf = (MS(T*R) + r * max(Cov2 - Cov3, 0))**2 / (MS(T*R)**2 / ((t - 1)(r - 1)))`` degrees of
  freedom. Each pair of modalities then gets the difference of reader-averaged AUCs with the
  standard error ``sqrt(2 / r * (MS(T*R) + r * max(Cov2 - Cov3, 0)))``, a t interval and p value on
  the same ddf (the error term pools all modalities, as Iowa's program does).

The covariances of the error term, averaged over the reader-modality pairs they concern:
``var`` (an AUC with itself), ``cov1`` (same reader, different modality), ``cov2`` (different
reader, same modality) and ``cov3`` (different reader, different modality). The reader and
reader-by-modality variances are the moment estimates of the OR model, as Iowa prints them:
``var_tr = MS(T*R) - var + cov1 + cov2 - cov3`` and
``var_r = (MS(R) - var - (t - 1) cov1 + cov2 + (t - 1) cov3 - var_tr) / t``. (RJafroc replaces
``cov2 - cov3`` by ``max(cov2 - cov3, 0)`` in ``var_tr``; the two agree whenever cov2 >= cov3.)
Either can come out negative on a small study: they are estimates, reported as they are.

Checked against the analyses published for the Van Dyke et al. (1993) cine-MRI data by OR-DBM MRMC
2.51 (jackknife) and MRMCaov (DeLong): tests/reading/test_mrmc.py.

Also here, for the per-reader results of a study: :func:`wilson_interval` (sensitivity and
specificity at a reader's calls) and :func:`delong_paired_test` (two AUCs on the same cases, e.g.
the model against one reader).
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from medreview.errors import MedreviewError

__all__ = [
    "COLUMNS",
    "AucDifference",
    "ModalityAuc",
    "MrmcResult",
    "PairedAucTest",
    "RatingsError",
    "ReaderAuc",
    "VarianceComponents",
    "analyze",
    "delong_covariance",
    "delong_paired_test",
    "empirical_auc",
    "jackknife_covariance",
    "ratings_array",
    "read_ratings_csv",
    "wilson_interval",
]

Covariance = Literal["delong", "jackknife"]
COVARIANCES: tuple[str, ...] = ("delong", "jackknife")
COLUMNS: tuple[str, ...] = ("modality", "reader", "case", "truth", "rating")
_ROUNDING = 1e-24  # a mean square of AUCs (each in [0, 1]) below this is float rounding of a zero
_SHOWN = 5  # how many offending readers / cases / rows a refusal names before "and N more"


def _stats():  # type: ignore[no-untyped-def]
    """scipy.stats, imported when a figure needs it: it takes ~0.4 s, and the Label page imports
    this module (through the reader studies) on its first run, which must stay fast."""
    from scipy import stats

    return stats


class RatingsError(MedreviewError):
    """The ratings cannot be analysed as they are (missing column, incomplete design, bad value)."""


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderAuc:
    reader: str
    modality: str
    auc: float


@dataclass(frozen=True)
class ModalityAuc:
    """The reader-averaged AUC of a modality; its 95% interval treats readers and cases as random
    (Hillis 2007's single-modality interval: ``MS(R)_t / r + max(Cov2_t, 0)``); ``None`` with one reader."""

    modality: str
    reader_averaged_auc: float
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class AucDifference:
    """``estimate`` = reader-averaged AUC of ``modality_a`` minus that of ``modality_b``."""

    modality_a: str
    modality_b: str
    estimate: float
    std_error: float | None
    df: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


@dataclass(frozen=True)
class VarianceComponents:
    var: float
    cov1: float | None  # needs two modalities
    cov2: float | None  # needs two readers
    cov3: float | None  # needs both
    var_r: float | None
    var_tr: float | None


@dataclass(frozen=True)
class MrmcResult:
    """One analysis. ``f``, ``ndf``, ``ddf``, ``p_value`` are ``None`` where no test is possible (one
    modality, one reader); ``notes`` says why, in plain words."""

    covariance: str
    per_reader: list[ReaderAuc]
    modalities: list[ModalityAuc]
    differences: list[AucDifference]
    f: float | None
    ndf: int | None
    ddf: float | None
    p_value: float | None
    variance_components: VarianceComponents
    readers: int
    cases: int
    positives: int
    negatives: int
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite figures become ``None``)."""
        return _finite(asdict(self))

    def as_text(self) -> str:
        """The analysis as a table for a person."""
        modalities = [m.modality for m in self.modalities]
        readers = list(dict.fromkeys(row.reader for row in self.per_reader))
        auc = {(row.reader, row.modality): row.auc for row in self.per_reader}
        width = max([10, *(len(m) + 2 for m in modalities)])
        reader_width = max([16, *(len(r) + 2 for r in readers)])
        lines = [
            f"{len(modalities)} modalities, {self.readers} readers, {self.cases} cases "
            f"({self.positives} positive, {self.negatives} negative); {self.covariance} covariances",
            "",
            "AUC".ljust(reader_width) + "".join(m.rjust(width) for m in modalities),
        ]
        for reader in readers:
            lines.append(
                f"reader {reader}".ljust(reader_width)
                + "".join(f"{auc[reader, m]:.4f}".rjust(width) for m in modalities)
            )
        lines.append(
            "reader-averaged".ljust(reader_width)
            + "".join(f"{m.reader_averaged_auc:.4f}".rjust(width) for m in self.modalities)
        )
        for m in self.modalities:
            if m.ci_low is not None and m.ci_high is not None:
                lines.append(f"  {m.modality}: {m.reader_averaged_auc:.4f} (95% CI {m.ci_low:.4f} to {m.ci_high:.4f})")
        lines.append("")
        if self.f is not None and self.ddf is not None and self.p_value is not None:
            lines.append(
                f"Random readers and random cases (Obuchowski-Rockette, Hillis ddf): "
                f"F({self.ndf}, {self.ddf:.2f}) = {self.f:.4f}, p = {self.p_value:.4f}"
            )
        for d in self.differences:
            if d.ci_low is None or d.ci_high is None or d.p_value is None:
                lines.append(f"{d.modality_a} - {d.modality_b}: {d.estimate:+.4f}")
                continue
            lines.append(
                f"{d.modality_a} - {d.modality_b}: {d.estimate:+.4f} "
                f"(95% CI {d.ci_low:+.4f} to {d.ci_high:+.4f}), p = {d.p_value:.4f}"
            )
        components = ", ".join(
            f"{name} {value:.6g}" for name, value in asdict(self.variance_components).items() if value is not None
        )
        lines.append(f"Variance components: {components}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


@dataclass(frozen=True)
class PairedAucTest:
    """Two AUCs on the same cases compared by DeLong's test: ``difference = auc_a - auc_b``."""

    auc_a: float
    auc_b: float
    difference: float
    std_error: float
    z: float | None
    p_value: float
    ci_low: float
    ci_high: float


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- the statistics on arrays --------------------------------------------------------------------


def _placements(ratings: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components of each row of ``ratings`` (K, N) for ``truth`` (N,) bool:
    ``v10`` (K, n1), for each positive case the share of negatives rated below it (ties 1/2), and
    ``v01`` (K, n0), for each negative case the share of positives rated above it. From midranks,
    so (K, N) memory rather than (K, n1, n0): rank among all cases minus rank among its own class
    counts the other class's cases below it (Sun & Xu 2014)."""
    positives, negatives = ratings[:, truth], ratings[:, ~truth]
    n1, n0 = positives.shape[1], negatives.shape[1]
    ranks = _stats().rankdata(ratings, axis=1)  # (K, N) float64 midranks
    v10 = (ranks[:, truth] - _stats().rankdata(positives, axis=1)) / n0
    v01 = 1.0 - (ranks[:, ~truth] - _stats().rankdata(negatives, axis=1)) / n1
    return v10, v01


def empirical_auc(ratings: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The empirical AUC of each row of ``ratings`` (K, N) (or of one (N,) vector): the Mann-Whitney
    statistic, ties 1/2. ``truth`` (N,) is 1/True for a positive case."""
    ratings = np.asarray(ratings, dtype=np.float64)
    truth = _truth_mask(truth, ratings.shape[-1])
    v10, _ = _placements(np.atleast_2d(ratings), truth)
    auc = v10.mean(axis=1)
    return auc if ratings.ndim == 2 else auc[0]


def delong_covariance(ratings: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(K, K) DeLong covariance of the K AUCs of ``ratings`` (K, N): ``S10 / n1 + S01 / n0``, with
    S10 and S01 the sample covariances (ddof 1) of the structural components (DeLong et al. 1988)."""
    ratings = np.atleast_2d(np.asarray(ratings, dtype=np.float64))
    truth = _truth_mask(truth, ratings.shape[1])
    _need_two_per_class(truth)
    v10, v01 = _placements(ratings, truth)
    return np.atleast_2d(np.cov(v10)) / v10.shape[1] + np.atleast_2d(np.cov(v01)) / v01.shape[1]


def jackknife_covariance(ratings: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(K, K) jackknife covariance of the K AUCs of ``ratings`` (K, N) over cases, as OR-DBM MRMC
    computes it: ``(N - 1) / N * sum_c (A_(c) - mean)(A_(c) - mean)^T`` over the N leave-one-out AUCs.
    A leave-one-out AUC comes from the structural components: without positive i it is
    ``(n1 A - v10_i) / (n1 - 1)``, without negative j ``(n0 A - v01_j) / (n0 - 1)``."""
    ratings = np.atleast_2d(np.asarray(ratings, dtype=np.float64))
    truth = _truth_mask(truth, ratings.shape[1])
    _need_two_per_class(truth)
    v10, v01 = _placements(ratings, truth)
    n1, n0 = v10.shape[1], v01.shape[1]
    auc = v10.mean(axis=1, keepdims=True)  # (K, 1)
    left_out = np.concatenate([(n1 * auc - v10) / (n1 - 1), (n0 * auc - v01) / (n0 - 1)], axis=1)  # (K, N)
    cases = n1 + n0
    return np.atleast_2d(np.cov(left_out, ddof=0)) * (cases - 1)


def delong_paired_test(
    truth: np.ndarray, ratings_a: np.ndarray, ratings_b: np.ndarray, confidence: float = 0.95
) -> PairedAucTest:
    """DeLong's test of two correlated AUCs on the same cases (e.g. the model's probabilities and a
    reader's ratings): ``z = (A_a - A_b) / sqrt(var_a + var_b - 2 cov_ab)``, two-sided normal p value
    and Wald interval (DeLong et al. 1988). Identical AUCs with no variance: p = 1."""
    ratings = np.vstack([np.asarray(ratings_a, dtype=np.float64), np.asarray(ratings_b, dtype=np.float64)])
    truth_mask = _truth_mask(truth, ratings.shape[1])
    auc = empirical_auc(ratings, truth_mask)
    covariance = delong_covariance(ratings, truth_mask)
    variance = max(float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]), 0.0)
    difference = float(auc[0] - auc[1])
    std_error = math.sqrt(variance)
    half_width = float(_stats().norm.ppf(0.5 + confidence / 2)) * std_error
    if std_error > 0:
        z: float | None = difference / std_error
        p_value = float(2 * _stats().norm.sf(abs(z)))
    else:
        z, p_value = None, 1.0 if difference == 0 else 0.0
    return PairedAucTest(
        float(auc[0]),
        float(auc[1]),
        difference,
        std_error,
        z,
        p_value,
        difference - half_width,
        difference + half_width,
    )


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion (e.g. sensitivity = true positives / positives); it
    stays inside [0, 1] and is not a point at 0 or 1 of a few cases. ``(nan, nan)`` when ``total`` is 0."""
    if total < 0 or not 0 <= successes <= total:
        raise ValueError(f"a proportion needs 0 <= successes <= total, not {successes} of {total}")
    if total == 0:
        return (math.nan, math.nan)
    z = float(_stats().norm.ppf(0.5 + confidence / 2))
    share = successes / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half_width = z / (1 + z * z / total) * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    return (max(0.0, centre - half_width), min(1.0, centre + half_width))


def _truth_mask(truth: np.ndarray, cases: int) -> np.ndarray:
    truth = np.asarray(truth)
    if truth.shape != (cases,):
        raise ValueError(f"truth has shape {truth.shape}; the ratings have {cases} cases")
    mask = truth.astype(bool)
    if mask.all() or not mask.any():
        raise RatingsError("An AUC needs at least one positive and one negative case (truth 1 and 0).")
    return mask


def _need_two_per_class(truth: np.ndarray) -> None:
    if truth.sum() < 2 or (~truth).sum() < 2:
        raise RatingsError(
            f"The variance of an AUC needs at least 2 positive and 2 negative cases; "
            f"there are {int(truth.sum())} positive and {int((~truth).sum())} negative."
        )


# --- Obuchowski-Rockette -------------------------------------------------------------------------


def _or_covariances(covariance: np.ndarray, modalities: int, readers: int) -> dict[str, float | None]:
    """var, cov1, cov2, cov3 from the (T*R, T*R) covariance of the AUCs, index t * R + r."""
    grid = covariance.reshape(modalities, readers, modalities, readers)
    same_modality = np.eye(modalities, dtype=bool)[:, None, :, None]
    same_reader = np.eye(readers, dtype=bool)[None, :, None, :]

    def mean_where(mask: np.ndarray) -> float | None:
        mask = np.broadcast_to(mask, grid.shape)
        return float(grid[mask].mean()) if mask.any() else None

    return {
        "var": mean_where(same_modality & same_reader),
        "cov1": mean_where(~same_modality & same_reader),
        "cov2": mean_where(same_modality & ~same_reader),
        "cov3": mean_where(~same_modality & ~same_reader),
    }


def _obuchowski_rockette(
    auc: np.ndarray, covariance: np.ndarray, modality_names: list[str], notes: list[str]
) -> tuple[list[ModalityAuc], list[AucDifference], dict[str, Any], VarianceComponents]:
    """OR-Hillis on ``auc`` (T, R) and its (T*R, T*R) ``covariance``."""
    modalities, readers = auc.shape
    components = _or_covariances(covariance, modalities, readers)
    var, cov1, cov2, cov3 = components["var"], components["cov1"], components["cov2"], components["cov3"]
    modality_mean = auc.mean(axis=1)  # (T,)
    reader_mean = auc.mean(axis=0)  # (R,)
    grand_mean = float(auc.mean())

    per_modality = []
    for t, name in enumerate(modality_names):
        low = high = None
        if readers > 1:
            # Hillis 2007: one modality alone, readers and cases random.
            block = covariance.reshape(modalities, readers, modalities, readers)[t, :, t, :]
            cov2_t = float(block[~np.eye(readers, dtype=bool)].mean())
            ms_r_t = float(np.var(auc[t], ddof=1))
            error = ms_r_t / readers + max(cov2_t, 0.0)
            df_single = (
                (ms_r_t + readers * max(cov2_t, 0.0)) ** 2 / (ms_r_t**2 / (readers - 1)) if ms_r_t > 0 else math.inf
            )
            half_width = float(_stats().t.ppf(0.975, df_single)) * math.sqrt(error)
            low, high = float(modality_mean[t] - half_width), float(modality_mean[t] + half_width)
        per_modality.append(ModalityAuc(name, float(modality_mean[t]), low, high))

    test: dict[str, Any] = {"f": None, "ndf": None, "ddf": None, "p_value": None}
    differences: list[AucDifference] = []
    var_r = var_tr = None
    if readers > 1:
        ms_r = modalities * float(np.sum((reader_mean - grand_mean) ** 2)) / (readers - 1)
    if modalities > 1 and readers > 1:
        assert cov1 is not None and cov2 is not None and cov3 is not None  # both axes have two levels
        ms_t = readers * float(np.sum((modality_mean - grand_mean) ** 2)) / (modalities - 1)
        interaction = auc - modality_mean[:, None] - reader_mean[None, :] + grand_mean
        tr_df = (modalities - 1) * (readers - 1)
        ms_tr = float(np.sum(interaction**2)) / tr_df
        if ms_tr < _ROUNDING:  # readers' differences equal but for rounding: no spurious F of 1e28
            ms_tr = 0.0
        error_term = ms_tr + readers * max(cov2 - cov3, 0.0)
        ddf = error_term**2 / (ms_tr**2 / tr_df) if ms_tr > 0 else math.inf
        var_tr = ms_tr - var + cov1 + cov2 - cov3
        var_r = (ms_r - var - (modalities - 1) * cov1 + cov2 + (modalities - 1) * cov3 - var_tr) / modalities
        if error_term > 0:
            f_value = ms_t / error_term
            test = {
                "f": f_value,
                "ndf": modalities - 1,
                "ddf": ddf,
                "p_value": _f_test_p(f_value, modalities - 1, ddf),
            }
            if math.isinf(ddf):
                notes.append(
                    "The readers' AUC differences are identical: ddf is infinite "
                    "(F becomes a chi-square test, the intervals normal)."
                )
        else:
            notes.append("The error term of the F test is zero (no reader-by-modality variation): no test.")
        std_error = math.sqrt(2 / readers * error_term)
        t_critical = float(_stats().t.ppf(0.975, ddf))
        for a, b in itertools.combinations(range(modalities), 2):
            estimate = float(modality_mean[a] - modality_mean[b])
            if std_error > 0:
                p_value = float(2 * _stats().t.sf(abs(estimate) / std_error, ddf))
                low, high = estimate - t_critical * std_error, estimate + t_critical * std_error
                differences.append(
                    AucDifference(modality_names[a], modality_names[b], estimate, std_error, ddf, low, high, p_value)
                )
            else:
                differences.append(
                    AucDifference(modality_names[a], modality_names[b], estimate, 0.0, None, None, None, None)
                )
        if cov2 < cov3:
            notes.append(
                "Cov2 < Cov3: the F test uses max(Cov2 - Cov3, 0) = 0 (Hillis 2007); var_tr uses Cov2 - Cov3 "
                "as OR-DBM MRMC prints it (RJafroc would use 0 there too)."
            )
    elif readers > 1:
        var_r = ms_r - var + cov2  # one modality: E[MS(R)] = var_r (with var_tr in it) + var - cov2
    else:  # one reader: the differences, without the random-reader interval and test
        for a, b in itertools.combinations(range(modalities), 2):
            estimate = float(modality_mean[a] - modality_mean[b])
            differences.append(
                AucDifference(modality_names[a], modality_names[b], estimate, None, None, None, None, None)
            )
    return per_modality, differences, test, VarianceComponents(var, cov1, cov2, cov3, var_r, var_tr)


def _f_test_p(f_value: float, ndf: int, ddf: float) -> float:
    """P(F(ndf, ddf) > f_value); at an infinite ddf the limit, chi-square(ndf) / ndf (scipy gives NaN)."""
    if math.isinf(ddf):
        return float(_stats().chi2.sf(f_value * ndf, ndf))
    return float(_stats().f.sf(f_value, ndf, ddf))


# --- ratings tables -------------------------------------------------------------------------------


def read_ratings_csv(path: Path | str) -> pd.DataFrame:
    """The long ratings CSV (``modality,reader,case,truth,rating``; other columns such as arm, order or
    seconds are kept and ignored by :func:`analyze`), every value as text. Refuses a missing, empty or
    unreadable file with :class:`RatingsError`."""
    path = Path(path)
    if not path.is_file():
        raise RatingsError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise RatingsError(f"{path}: the file is empty (expected a header {','.join(COLUMNS)})") from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as error:
        raise RatingsError(f"{path}: not a readable CSV file ({str(error).splitlines()[0]})") from None
    return frame


def ratings_array(ratings: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str], list[str], list[str]]:
    """Check a long ratings table and arrange it: ``(ratings (T, R, N) float64, truth (N,) bool,
    modalities, readers, cases)``, each name list in the order of first appearance. Raises
    :class:`RatingsError` naming what is wrong: a missing column, no rows, a rating that is not a
    number, a case without truth or with two truths, a truth other than 0/1, the same rating given
    twice, a reader who did not rate every case in every modality."""
    frame = ratings.rename(columns=lambda name: str(name).strip().lower())
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise RatingsError(
            f"the ratings lack the column(s) {', '.join(missing)} (expected {','.join(COLUMNS)}; "
            f"found {','.join(map(str, ratings.columns)) or 'none'})"
        )
    if frame.empty:
        raise RatingsError("the ratings hold no rows")
    frame = frame[list(COLUMNS)].copy()
    for column in ("modality", "reader", "case"):
        frame[column] = _text(frame[column])
        blank = frame.index[frame[column] == ""]
        if len(blank):
            raise RatingsError(f"{len(blank)} row(s) have no {column}: {_rows(blank)}")
    rating_text = _text(frame["rating"])
    frame["rating"] = pd.to_numeric(rating_text, errors="coerce")
    bad = frame.index[~np.isfinite(frame["rating"].to_numpy(dtype=np.float64))]
    if len(bad):
        examples = ", ".join(f"{_row(i)} {rating_text[i]!r}" for i in bad[:_SHOWN])
        raise RatingsError(f"{len(bad)} rating(s) are not numbers: {examples}{_more(len(bad))}")

    truth = frame["truth"].astype(int) if pd.api.types.is_bool_dtype(frame["truth"]) else frame["truth"]
    truth_text = _text(truth)
    no_truth = _unique(frame.loc[truth_text == "", "case"])
    if no_truth:
        raise RatingsError(f"{len(no_truth)} case(s) have no truth: {_names(no_truth)}")
    truth_value = pd.to_numeric(truth_text, errors="coerce")
    not_binary = frame.index[~truth_value.isin([0, 1])]
    if len(not_binary):
        examples = ", ".join(f"{_row(i)} {truth_text[i]!r}" for i in not_binary[:_SHOWN])
        raise RatingsError(f"truth must be 0 (negative) or 1 (positive): {examples}{_more(len(not_binary))}")
    frame["truth"] = truth_value.astype(int)
    truths_per_case = frame.groupby("case", sort=False)["truth"].nunique()
    inconsistent = list(truths_per_case.index[truths_per_case > 1])
    if inconsistent:
        raise RatingsError(f"{len(inconsistent)} case(s) have both truths (0 and 1): {_names(inconsistent)}")

    twice = frame.duplicated(["modality", "reader", "case"], keep=False)
    if twice.any():
        first = frame[twice].iloc[0]
        raise RatingsError(
            f"{int(twice.sum())} rows rate a case twice (one rating per modality, reader and case), e.g. "
            f"reader {first['reader']}, modality {first['modality']}, case {first['case']}"
        )

    modalities, readers, cases = (_unique(frame[column]) for column in ("modality", "reader", "case"))
    expected = len(modalities) * len(cases)
    counts = frame.groupby("reader", sort=False).size()
    incomplete = [reader for reader in readers if counts[reader] < expected]
    if incomplete:
        described = [
            f"reader {reader} ({expected - counts[reader]} of {expected} ratings missing"
            f"{_first_gap(frame, reader, modalities, cases)})"
            for reader in incomplete
        ]
        raise RatingsError(
            f"every reader must rate every case in every modality; {len(incomplete)} did not: "
            f"{'; '.join(described[:_SHOWN])}{_more(len(described))}"
        )

    # (T, R, N): the frame now holds each (modality, reader, case) exactly once.
    table = frame.pivot(index=["modality", "reader"], columns="case", values="rating")
    table = table.reindex(index=pd.MultiIndex.from_product([modalities, readers]), columns=cases)
    array = table.to_numpy(dtype=np.float64).reshape(len(modalities), len(readers), len(cases))
    truth = frame.drop_duplicates("case").set_index("case")["truth"].reindex(cases).to_numpy() == 1
    return array, truth, modalities, readers, cases


def analyze(ratings: pd.DataFrame, covariance: Covariance = "delong") -> MrmcResult:
    """The reader-study analysis of a long ratings table (columns ``modality, reader, case, truth,
    rating``; others ignored): every reader's AUC in every modality, the reader-averaged AUC per
    modality, and with two modalities or more the Obuchowski-Rockette random-reader random-case F test
    with Hillis' ddf across all of them, then each pair's difference with its 95% interval and p value.
    ``covariance``: "delong" (DeLong et al. 1988) or "jackknife" (over cases, as OR-DBM MRMC 2.51).
    One modality: the AUCs and no test (``notes`` says so). Bad tables raise :class:`RatingsError`."""
    if covariance not in COVARIANCES:
        raise RatingsError(f"covariance must be one of {', '.join(COVARIANCES)}, not {covariance!r}")
    array, truth, modalities, readers, cases = ratings_array(ratings)
    if truth.all() or not truth.any():
        which = "positive (truth 1)" if truth.all() else "negative (truth 0)"
        raise RatingsError(f"every case is {which}: an AUC needs both positive and negative cases")
    flat = array.reshape(len(modalities) * len(readers), len(cases))  # (T*R, N), index t * R + r
    auc = empirical_auc(flat, truth).reshape(len(modalities), len(readers))
    estimator = delong_covariance if covariance == "delong" else jackknife_covariance
    covariance_matrix = estimator(flat, truth)

    notes: list[str] = []
    per_modality, differences, test, components = _obuchowski_rockette(auc, covariance_matrix, modalities, notes)
    if len(modalities) == 1:
        notes.insert(0, f"Only one modality ({modalities[0]}): no comparison of modalities is possible.")
    if len(readers) == 1:
        notes.insert(0, f"Only one reader ({readers[0]}): the random-reader analysis needs two readers or more.")
    return MrmcResult(
        covariance=covariance,
        per_reader=[
            ReaderAuc(reader, modality, float(auc[t, r]))
            for r, reader in enumerate(readers)
            for t, modality in enumerate(modalities)
        ],
        modalities=per_modality,
        differences=differences,
        variance_components=components,
        readers=len(readers),
        cases=len(cases),
        positives=int(truth.sum()),
        negatives=int((~truth).sum()),
        notes=notes,
        **test,
    )


def _text(values: pd.Series) -> pd.Series:
    """Each value as stripped text; a missing one (None, NaN) as "" (a frame from a page is typed)."""
    return values.map(lambda value: "" if pd.isna(value) else str(value).strip())


def _unique(values: pd.Series) -> list[str]:
    return list(dict.fromkeys(values))


def _row(index: int) -> str:
    return f"line {int(index) + 2}"  # the header is line 1


def _rows(indices: pd.Index) -> str:
    return ", ".join(_row(i) for i in indices[:_SHOWN]) + _more(len(indices))


def _names(names: list[str]) -> str:
    return ", ".join(names[:_SHOWN]) + _more(len(names))


def _more(count: int) -> str:
    return f" and {count - _SHOWN} more" if count > _SHOWN else ""


def _first_gap(frame: pd.DataFrame, reader: str, modalities: list[str], cases: list[str]) -> str:
    mine = frame[frame["reader"] == reader]
    for modality in modalities:
        rated = set(mine.loc[mine["modality"] == modality, "case"])
        absent = [case for case in cases if case not in rated]
        if absent:
            return f", e.g. modality {modality} case {absent[0]}"
    return ""
