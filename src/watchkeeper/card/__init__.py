"""A version's model card (``docs/model-card.md``): what it is, who answers for it and what it
is for (given at registration), its training reference, its performance on the reference and
in production (realized and estimated), its drift and alerts, its failing slices, its
attributions, and its retraining and promotion lineage; read from the store
(:func:`model_card`) and written as self-contained HTML or Markdown (:func:`to_html`,
:func:`to_markdown`)."""

from watchkeeper.card.data import ATTRIBUTIONS, model_card
from watchkeeper.card.render import to_html, to_markdown

__all__ = ["ATTRIBUTIONS", "model_card", "to_html", "to_markdown"]
