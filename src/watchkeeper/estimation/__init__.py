"""Performance estimation without labels: CBPE for classifiers (calibrated scores → the
expected confusion matrix) and DLE for regression (a model of the error), each fitted once on
the labelled reference and estimating a window from a mergeable state. See docs/estimation.md.
"""

from watchkeeper.estimation.calibration import Calibrator
from watchkeeper.estimation.cbpe import CBPE, CBPEState
from watchkeeper.estimation.dle import DLE, DLEState

__all__ = ["CBPE", "DLE", "CBPEState", "Calibrator", "DLEState"]
