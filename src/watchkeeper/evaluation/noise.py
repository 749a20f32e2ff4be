"""The evaluator's noise cache: :class:`watchkeeper.stats.noise.NoiseCache`, which the library's
:class:`~watchkeeper.reference.Reference` shares too."""

from watchkeeper.stats.noise import NoiseCache

__all__ = ["NoiseCache"]
