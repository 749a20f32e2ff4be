"""``python -m watchkeeper.cli``: the ``watchkeeper`` command."""

from watchkeeper.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
