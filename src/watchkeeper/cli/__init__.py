"""The ``watchkeeper`` command line: the click group and its commands, one module per family.

* :mod:`~watchkeeper.cli.report`: ``report``, ``example``, ``schema`` (files, no service);
* :mod:`~watchkeeper.cli.analyze`: ``analyze`` (a period chunk by chunk, files, no service);
* :mod:`~watchkeeper.cli.service`: ``serve``, ``demo``, ``token`` (the service and its store);
* :mod:`~watchkeeper.cli.models`: ``register`` (a model version on a running service),
  ``constraints suggest`` (its validation rules, from a reference file);
* :mod:`~watchkeeper.cli.serving`: ``attach`` (a version's model artifact to serve);
* :mod:`~watchkeeper.cli.alerts`: ``monitors``, ``alerts``, ``silence`` (over the HTTP API);
* :mod:`~watchkeeper.cli.dead_letters`: ``dead-letters`` (what the processor could not process);
* :mod:`~watchkeeper.cli.history`: ``history`` (every step of a model's life);
* :mod:`~watchkeeper.cli.audit`: ``audit list``, ``audit export`` (who changed what);
* :mod:`~watchkeeper.cli.card`: ``model-card`` (a version's model card, HTML or Markdown);
* :mod:`~watchkeeper.cli.promotion`: ``versions``, ``challenge``, ``promote``, ``rollback``,
  ``retire``, ``promotion-policy``, ``verdicts`` (champion and challengers).

Exit codes: 0 when fine, 1 when a ``--fail-on`` condition trips, 2 with one readable line on
standard error for bad input (missing file, unreadable format, unknown column, bad option) or
a service that refuses or cannot be reached.
"""

from __future__ import annotations

import click

from watchkeeper.cli import alerts as _alerts
from watchkeeper.cli import analyze as _analyze
from watchkeeper.cli import audit as _audit
from watchkeeper.cli import card as _card
from watchkeeper.cli import dead_letters as _dead_letters
from watchkeeper.cli import history as _history
from watchkeeper.cli import models as _models
from watchkeeper.cli import promotion as _promotion
from watchkeeper.cli import report as _report
from watchkeeper.cli import service as _service
from watchkeeper.cli import serving as _serving
from watchkeeper.cli._output import Group

__all__ = ["main"]


@click.group(cls=Group)
@click.version_option(package_name="watchkeeper")
def main() -> None:
    """watchkeeper: ML model monitoring: drift, data quality and performance."""


for _command in (
    _report.report,
    _analyze.analyze,
    _report.example,
    _report.schema,
    _service.serve,
    _service.token,
    _service.demo,
    _models.register,
    _serving.attach,
    _models.constraints_group,
    _alerts.monitors,
    _alerts.alerts,
    _alerts.silence,
    _dead_letters.dead_letters,
    _history.history,
    _audit.audit,
    _card.model_card,
    _promotion.versions,
    _promotion.challenge,
    _promotion.promote,
    _promotion.rollback,
    _promotion.retire,
    _promotion.promotion_policy,
    _promotion.verdicts,
):
    main.add_command(_command)
