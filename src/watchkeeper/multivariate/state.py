"""The PCA check's reference side as bytes, for a service that fits it once per model version
and judges each window later, without the reference's rows.

:func:`pca_state` keeps of a :class:`~watchkeeper.multivariate.drift.MultivariateFit` what
the PCA decision reads: the encoder, the components, the held-out rows' errors and their
positions in the reference's time order, the reference's row count and the seed.
:meth:`PcaState.to_bytes` writes them as a NumPy ``.npz`` archive (arrays, and one JSON
document for the names and numbers; no pickle), :meth:`PcaState.from_bytes` reads them back,
and :meth:`PcaState.judge` gives a window the decision ``compare()`` gives it against the
same fit (the same value, threshold and flag: the same sample, the same random streams).

Examples
--------
>>> import numpy as np, pyarrow as pa
>>> from watchkeeper.multivariate import fit_multivariate
>>> from watchkeeper.schema import infer_schema
>>> rng = np.random.default_rng(0)
>>> def draw(n, rho):
...     xy = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
...     return pa.table({"income": xy[:, 0], "age": xy[:, 1], "z": rng.normal(size=n)})
>>> ref = draw(4000, 0.8)
>>> schema = infer_schema(ref)
>>> state = PcaState.from_bytes(pca_state(fit_multivariate(ref, schema, 0), ref).to_bytes())
>>> [state.judge(schema, draw(1000, rho), 0.01).drifted for rho in (0.8, -0.8)]
[False, True]
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from watchkeeper.errors import InputError
from watchkeeper.multivariate.drift import (
    MethodResult,
    MultivariateFit,
    PcaParts,
    ThresholdCache,
    _one_thread,
    current_sample,
    pca_decision,
)
from watchkeeper.multivariate.encoding import Encoder, _Categories
from watchkeeper.multivariate.reconstruction import BootstrapNull, Pca
from watchkeeper.schema import Schema

FORMAT = 1  # the layout of the archive; a reader refuses another


@dataclass
class PcaState:
    """The reference's side of the PCA check (module docstring)."""

    encoder: Encoder
    pca: Pca
    holdout_errors: NDArray[np.float64]
    holdout_ranks: NDArray[np.int64]  # each held-out row's position in the time order
    reference_rows: int
    seed: int | None
    # the held-out errors' bootstrap and the bands already computed (drawn on the first window)
    _null: BootstrapNull | None = field(default=None, repr=False, compare=False)
    thresholds: ThresholdCache = field(default_factory=dict, repr=False, compare=False)

    def judge(
        self,
        schema: Schema,
        window: pa.Table,
        alpha: float,
        reference_chunks: int | None = None,
    ) -> MethodResult:
        """The window's decision: its mean reconstruction error against the calibrated
        threshold, over at most ``CURRENT_ROWS`` of its rows."""
        missing = [c for c in self.encoder.columns if c not in window.column_names]
        note = (
            f"columns missing from the current data: {missing}"
            if missing
            else "the current data has no rows"
            if window.num_rows == 0
            else None
        )
        if note is not None:
            return MethodResult("pca", None, None, False, None, {}, note)
        sample = current_sample(window, self.encoder.columns, self.seed)
        if self._null is None:
            self._null = BootstrapNull(self.holdout_errors, self.seed)
        parts = PcaParts(self.encoder, self.pca, self._null, self.reference_rows, schema)
        with _one_thread():
            return pca_decision(
                parts,
                lambda: self.holdout_ranks,
                sample,
                window.num_rows,
                alpha,
                reference_chunks,
                self.thresholds,
            )

    def to_bytes(self) -> bytes:
        enc = self.encoder
        cats = list(enc.categories.items())
        meta = {
            "format": FORMAT,
            "columns": enc.columns,
            "categories": [[name, c.values.to_pylist()] for name, c in cats],
            "explained": self.pca.explained,
            "reference_rows": self.reference_rows,
            "seed": self.seed,
        }
        arrays: dict[str, Any] = {
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            "mean": enc.mean,
            "scale": enc.scale,
            "center": self.pca.center,
            "components": self.pca.components,
            "holdout_errors": self.holdout_errors,
            "holdout_ranks": self.holdout_ranks,
            **{f"shares_{i}": c.shares for i, (_, c) in enumerate(cats)},
        }
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # numbers only: nothing pickled
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PcaState:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
        if meta.get("format") != FORMAT:
            raise InputError(
                f"PCA state of format {meta.get('format')!r}; this release reads {FORMAT}"
            )
        categories = {
            name: _Categories(pa.array(values, pa.string()), arrays[f"shares_{i}"])
            for i, (name, values) in enumerate(meta["categories"])
        }
        encoder = Encoder(meta["columns"], categories, arrays["mean"], arrays["scale"])
        pca = Pca(arrays["center"], arrays["components"], float(meta["explained"]))
        return cls(
            encoder,
            pca,
            arrays["holdout_errors"],
            arrays["holdout_ranks"].astype(np.int64),
            int(meta["reference_rows"]),
            meta["seed"],
        )


def pca_state(fit: MultivariateFit, table: pa.Table) -> PcaState | None:
    """The PCA check's state of ``fit`` (fitted on ``table``); None when the fit has no PCA
    (fewer than two varying features, too few rows: ``fit.note`` says which)."""
    if fit.encoder is None or fit.pca is None:
        return None
    ranks = fit.time_ranks(table)[fit.holdout_rows]
    return PcaState(
        fit.encoder,
        fit.pca,
        fit.holdout_errors,
        ranks.astype(np.int32 if table.num_rows < 2**31 else np.int64),
        table.num_rows,
        fit.seed,
    )
