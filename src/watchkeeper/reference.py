"""A fitted reference: the schema, frozen profile and calibration of a reference, computed once.

``watchkeeper.compare(reference, current)`` profiles and calibrates the reference on every
call. ``Reference.fit`` does it once; ``ref.compare(current)`` then returns the same
:class:`~watchkeeper.report.Report` as ``compare`` (to the last bit), and ``ref.analyze``
compares a whole period chunk by chunk. The reference's chunk profiles (its natural variation,
one set per chunk count) and the calibration simulations (:class:`NoiseCache`) are kept
across calls, so chunks of the same size reuse them.

Examples
--------
>>> import numpy as np, pyarrow as pa
>>> rng = np.random.default_rng(0)
>>> ref = Reference.fit(pa.table({"x": rng.normal(size=5000), "y": rng.normal(size=5000)}))
>>> report = ref.compare(pa.table({"x": rng.normal(0.5, size=2000), "y": rng.normal(size=2000)}))
>>> report.drifted_columns
['x']
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from watchkeeper import __version__
from watchkeeper.attributions import AttributionFit, attributions_option, fit_attributions
from watchkeeper.attributions.fit import restore as restore_attributions
from watchkeeper.calibration_chunks import (
    ChunkPlan,
    chunk_plan,
    chunk_slices,
    dependence_matters,
    dependence_to_dict,
    needs_dependence_test,
    row_dependence_of,
    time_ordered,
)
from watchkeeper.errors import InputError
from watchkeeper.io import column_names, to_table
from watchkeeper.multivariate import DEFAULT as DEFAULT_MULTIVARIATE
from watchkeeper.multivariate import MultivariateFit, fit_multivariate, methods_of
from watchkeeper.profiles import DatasetProfile, profile_reference, profile_table
from watchkeeper.report import Report, calibrated_columns, report_against
from watchkeeper.report_settings import column_settings, resolve_schema
from watchkeeper.schema import Schema
from watchkeeper.slices import slice_options
from watchkeeper.spark import is_spark_frame
from watchkeeper.stats.dependence import RowDependence
from watchkeeper.stats.noise import NoiseCache
from watchkeeper.stats.numeric import DEFAULT_BINS

if TYPE_CHECKING:
    from watchkeeper.analysis.timeline import Timeline

FORMAT = 1
META, PROFILE, DATA = "reference.json", "profile.wkp", "data.parquet"
ATTRIBUTIONS = "attributions.parquet"  # the reference's attributions, when they are on
# the key of a fitted reference's schema and options in its Arrow (and Parquet) metadata
ARROW_KEY = b"watchkeeper.reference"
# the options of compare() a fitted reference keeps (the schema is kept apart)
OPTIONS = (
    "target",
    "prediction",
    "scores",
    "columns",
    "method",
    "decision",
    "false_alarm_rate",
    "thresholds",
    "drift_share",
    "timestamp",
    "reference_chunks",
    "bins",
    "seed",
    "multivariate",
    "slices",
    "attributions",
)


class Reference:
    """A reference fitted once; build one with :meth:`fit` or :meth:`load`."""

    def __init__(
        self,
        table: pa.Table,
        profile: DatasetProfile,
        options: Mapping[str, Any],
        dependence: Mapping[str, RowDependence] | None = None,
    ):
        self.table = table
        self.profile = profile
        self.options = dict(options)
        try:
            self._settings = column_settings(
                profile.schema,
                options["method"],
                options["decision"],
                options["thresholds"] or {},
            )
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self._ordered: pa.Table | None = None
        self._chunks: dict[int, list[DatasetProfile]] = {}  # by chunk count
        self.noise_cache = NoiseCache()
        self._performance: dict[str, Any] = {}  # the reference's side of the performance
        self._multivariate: MultivariateFit | None = None  # fitted on the first compare
        self.model: object | None = None  # the model the attributions explain (never saved)
        self.attributions: AttributionFit | None = None  # the reference's, when they are on
        # the row-order test of each calibrated column, when nothing else orders the reference
        self.dependence: dict[str, RowDependence] | None = None
        if needs_dependence_test(self.schema, options["reference_chunks"]):
            self.dependence = (
                dict(dependence)
                if dependence is not None
                else row_dependence_of(table, profile, calibrated_columns(self._settings))
            )

    @property
    def schema(self) -> Schema:
        return self.profile.schema

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    @classmethod
    def fit(
        cls,
        reference: object,
        *,
        target: str | None = None,
        prediction: str | None = None,
        scores: str | Sequence[str] | None = None,
        schema: Schema | None = None,
        columns: str | Sequence[str] | None = None,
        method: str | Mapping[str, str] | None = None,
        decision: str | Mapping[str, str] = "calibrated",
        false_alarm_rate: float = 0.01,
        thresholds: Mapping[str, float] | None = None,
        drift_share: float = 0.5,
        timestamp: str | None = None,
        reference_chunks: int | None = None,
        bins: int = DEFAULT_BINS,
        seed: int | None = 0,
        multivariate: str | None = DEFAULT_MULTIVARIATE,
        slices: bool | Mapping[str, Any] = True,
        model: object | None = None,
        attributions: bool | None = None,
    ) -> Reference:
        """Fit a reference: the options are those of :func:`watchkeeper.compare`. The PCA of
        the multivariate check (when on) is fitted here, once; so are the attributions of the
        reference (``model``, or a surrogate with ``attributions=True``: docs/explain.md)."""
        methods_of(multivariate)
        slice_options(slices)
        explain = attributions_option(attributions, model)
        if not 0 < false_alarm_rate < 1:
            raise InputError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
        if reference_chunks is not None and reference_chunks < 2:
            raise InputError(f"reference_chunks must be at least 2, got {reference_chunks}")
        score_names = column_names(scores, "scores") or None
        col_names = None if columns is None else column_names(columns, "columns")
        table = to_table(reference, name="reference", dictionary_strings=True)
        for name in (target, prediction, *(score_names or ())):
            if name is not None and name not in table.column_names:
                raise InputError(f"unknown column {name!r}: not in the reference")
        schema = resolve_schema(
            table, schema, target, prediction, score_names, timestamp, col_names
        )
        # the report needs no quantile sketches: the costliest part of a profile is skipped
        profile = profile_reference(table, schema, bins=bins, kll_k=0)
        options = {
            "target": target,
            "prediction": prediction,
            "scores": score_names,
            "columns": col_names,
            "method": method if method is None or isinstance(method, str) else dict(method),
            "decision": decision if isinstance(decision, str) else dict(decision),
            "false_alarm_rate": false_alarm_rate,
            "thresholds": None if thresholds is None else dict(thresholds),
            "drift_share": drift_share,
            "timestamp": timestamp,
            "reference_chunks": reference_chunks,
            "bins": bins,
            "seed": seed,
            "multivariate": multivariate,
            "slices": slices if isinstance(slices, bool) else dict(slices),
            "attributions": explain,
        }
        ref = cls(table, profile, options)
        ref.model = model
        if explain:
            ref.attributions = fit_attributions(table, schema, model, prediction, seed)
        ref.multivariate_fit()
        if target is not None and prediction is not None:  # the performance estimator, once
            from watchkeeper.estimation.section import fit_estimator

            ref._performance["estimator"] = fit_estimator(
                table, schema, target, prediction, score_names, seed
            )
        return ref

    def multivariate_fit(self) -> MultivariateFit | None:
        """The reference's side of the multivariate checks (the encoder, the PCA and the
        held-out errors), fitted once; None when they are off."""
        if not methods_of(self.options.get("multivariate", DEFAULT_MULTIVARIATE)):
            return None
        if self._multivariate is None:
            self._multivariate = fit_multivariate(self.table, self.schema, self.options["seed"])
        return self._multivariate

    def chunk_plan(self, n_current: int) -> ChunkPlan:
        """Which columns the reference's chunks calibrate against a window of ``n_current``
        rows, how many chunks, and why (see :mod:`watchkeeper.calibration_chunks`)."""
        return chunk_plan(
            self.rows,
            self.schema,
            n_current,
            self.options["reference_chunks"],
            self.dependence,
            calibrated_columns(self._settings),
        )

    def chunk_profiles(self, n_current: int) -> list[DatasetProfile]:
        """The reference's consecutive chunks, profiled, that calibrate a window of
        ``n_current`` rows (cached by their number)."""
        k = self.chunk_plan(n_current).count
        if k not in self._chunks:
            if self._ordered is None:
                self._ordered = time_ordered(self.table, self.schema)
            tables = chunk_slices(self._ordered, k) if k else []
            self._chunks[k] = [profile_table(t, self.schema, self.profile.spec) for t in tables]
        return self._chunks[k]

    def compare(self, current: object) -> Report:
        """The report of ``current`` against this reference: the same as
        ``watchkeeper.compare(reference, current, **options)``. A Spark DataFrame is profiled
        on its executors (:mod:`watchkeeper.spark`): the same report on the same rows."""
        if is_spark_frame(current):
            return self._compare_spark(current)
        cur_t = to_table(current, name="current", dictionary_strings=True)
        return self._compare_table(cur_t)

    def _compare_spark(self, sdf: Any) -> Report:
        """The report of a Spark frame: its profile from the executors, and only the columns
        the row-level sections read (performance, its estimate, the failing slices, the
        attributions, the multivariate check) collected to the driver."""
        from watchkeeper import spark

        cur_p = spark.profile(sdf, self.profile)
        needed: list[str] = []
        labelled = self.options["target"] is not None and self.options["prediction"] is not None
        if labelled or self.attributions is not None or self.options.get("attributions"):
            needed = [c for c in sdf.columns if c in self.schema.columns]
        else:
            fit = self.multivariate_fit()
            if fit is not None:
                needed = [c for c in sdf.columns if c in fit.columns]
        rows = spark.to_arrow(sdf, needed)
        if rows.num_rows != cur_p.rows:
            raise InputError(
                f"current: the frame changed while read ({cur_p.rows} rows profiled, "
                f"{rows.num_rows} collected); cache() a non-deterministic frame first"
            )
        return self._compare_table(rows, cur_p, list(sdf.columns))

    def _compare_table(
        self,
        cur_t: pa.Table,
        current_profile: DatasetProfile | None = None,
        current_columns: list[str] | None = None,
    ) -> Report:
        return report_against(
            self.table,
            self.profile,
            self._settings,
            cur_t,
            self.chunk_profiles(cur_t.num_rows),
            self.options,
            cache=self.noise_cache,
            performance_cache=self._performance,
            multivariate_fit=self.multivariate_fit(),
            plan=self.chunk_plan(cur_t.num_rows),
            current_profile=current_profile,
            current_columns=current_columns,
            # reported only where it could change the calibration, as compare() does
            dependence=self.dependence
            if dependence_matters(self.rows, self.schema, cur_t.num_rows)
            else None,
            attribution_fit=self.attributions,
        )

    def analyze(
        self,
        data: object,
        *,
        chunk_size: int | None = None,
        chunk_period: str | None = None,
        chunk_number: int | None = None,
        progress: bool | None = None,
    ) -> Timeline:
        """Compare ``data`` chunk by chunk: exactly one of ``chunk_size`` (rows per chunk, in
        row order; the last may be shorter), ``chunk_period`` (a pandas period such as
        ``"1D"``, ``"W"``, ``"M"``, on the timestamp column) or ``chunk_number`` (that many
        chunks of nearly equal size). A path (a Parquet, CSV or Arrow file, a directory of
        them, a glob) or a ``pyarrow.dataset.Dataset`` is read batch by batch, one chunk in
        memory at a time (:mod:`watchkeeper.analysis.stream`). ``progress``: a progress bar
        (None: on a terminal, for large data)."""
        from watchkeeper.analysis.timeline import analyze

        if is_spark_frame(data):  # the chunks are cut and compared on the driver
            from watchkeeper import spark

            data = spark.to_arrow(data)
        return analyze(
            self,
            data,
            chunk_size=chunk_size,
            chunk_period=chunk_period,
            chunk_number=chunk_number,
            progress=progress,
        )

    def save(self, path: str | Path) -> Path:
        """Write a directory: ``reference.json`` (the options), ``profile.wkp`` (the frozen
        profile with its schema, the service's serialisation) and ``data.parquet`` (the rows,
        for the chunks and the performance baseline). No pickle."""
        out = Path(path)
        if out.exists() and not out.is_dir():
            raise InputError(f"{out}: exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "watchkeeper_version": __version__,
            "options": self.options,
            "row_dependence": dependence_to_dict(self.dependence),
        }
        (out / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        (out / PROFILE).write_bytes(self.profile.to_bytes())
        pq.write_table(self.to_arrow(), out / DATA)
        fit = self.attributions
        if fit is not None:
            values = pa.table({f: fit.values[:, j] for j, f in enumerate(fit.features)})
            meta_bytes = json.dumps(fit.meta()).encode()
            pq.write_table(
                values.replace_schema_metadata({ARROW_KEY: meta_bytes}), out / ATTRIBUTIONS
            )
        elif (out / ATTRIBUTIONS).exists():
            (out / ATTRIBUTIONS).unlink()
        return out

    def to_arrow(self) -> pa.Table:
        """The reference's rows, with its schema and options in the table's metadata (kept by
        Parquet and Arrow IPC files). This is what ``Client.register(model, ref)`` uploads:
        the service then registers the version with this schema, as fitted, instead of
        inferring one again, and with the reference's attribution shares when it has them
        (each window's drift impact; docs/explain.md)."""
        meta: dict[str, Any] = {
            "format": FORMAT,
            "schema": self.schema.to_dict(),
            "options": self.options,
        }
        if self.attributions is not None:  # the service ranks each window's drift impact
            meta["attributions"] = carried_attributions(self.attributions)
        return self.table.replace_schema_metadata(
            {**(self.table.schema.metadata or {}), ARROW_KEY: json.dumps(meta).encode()}
        )

    @classmethod
    def load(cls, path: str | Path, *, model: object | None = None) -> Reference:
        """Read a reference written by :meth:`save`. ``model``: the model its attributions
        explain (a model is never saved); without it the reference's attributions still rank
        the drift impact, but a window's are not computed."""
        src = Path(path)
        missing = [n for n in (META, PROFILE, DATA) if not (src / n).is_file()]
        if missing:
            raise InputError(f"{src}: not a saved watchkeeper reference (missing {missing})")
        meta = json.loads((src / META).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise InputError(f"{src}: reference format {meta.get('format')!r}, expected {FORMAT}")
        options = {k: meta["options"].get(k) for k in OPTIONS}
        if "multivariate" not in meta["options"]:  # saved before the multivariate checks
            options["multivariate"] = DEFAULT_MULTIVARIATE
        if "slices" not in meta["options"]:  # saved before the failing slices
            options["slices"] = True
        options["attributions"] = bool(options.get("attributions"))
        profile = DatasetProfile.from_bytes((src / PROFILE).read_bytes())
        saved = meta.get("row_dependence")
        dependence = (
            None if saved is None else {n: RowDependence.from_dict(d) for n, d in saved.items()}
        )
        ref = cls(pq.read_table(src / DATA), profile, options, dependence)
        ref.model = model
        if (src / ATTRIBUTIONS).is_file():
            values = pq.read_table(src / ATTRIBUTIONS)
            fit_meta = json.loads((values.schema.metadata or {})[ARROW_KEY])
            matrix = np.column_stack(
                [values.column(i).to_numpy() for i in range(values.num_columns)]
            )
            ref.attributions = restore_attributions(
                fit_meta, matrix, ref.table, ref.schema, options["prediction"], model
            )
        return ref

    def __repr__(self) -> str:
        return (
            f"Reference(rows={self.rows}, columns={len(self.schema.columns)}, "
            f"target={self.options['target']!r}, prediction={self.options['prediction']!r})"
        )


def carried(table: pa.Table) -> tuple[pa.Table, Schema, dict[str, Any]] | None:
    """The rows, schema and options of a fitted reference carried by ``table``'s metadata
    (:meth:`Reference.to_arrow`), or None for a plain table."""
    raw = (table.schema.metadata or {}).get(ARROW_KEY)
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
        if meta.get("format") != FORMAT:
            raise InputError(f"reference format {meta.get('format')!r}, expected {FORMAT}")
        schema = Schema.from_dict(meta["schema"])
        options = {k: meta["options"].get(k) for k in OPTIONS}
        options.setdefault("slices", True)
        if options["slices"] is None:  # carried before the failing slices
            options["slices"] = True
        options["attributions"] = False  # a model is never carried: the service has none here
        shares = meta.get("attributions")
        if shares is not None and not isinstance(shares.get("shares"), dict):
            raise TypeError("attributions: expected {'shares': {feature: share}, ...}")
        options["attribution_shares"] = shares
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"the reference's {ARROW_KEY.decode()} metadata is unreadable: {exc}"
        ) from None
    rest = {k: v for k, v in table.schema.metadata.items() if k != ARROW_KEY}
    return table.replace_schema_metadata(rest or None), schema, options


def carried_attributions(fit: AttributionFit) -> dict[str, Any]:
    """What the service keeps of a reference's attributions: each feature's share of the
    model's mean |attribution| (drift impact), what explained it and the surrogate's
    fidelity."""
    return {
        "shares": fit.shares,
        "source": fit.source,
        "method": fit.method,
        "fidelity": fit.fidelity,
    }
