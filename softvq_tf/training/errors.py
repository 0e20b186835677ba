"""Errors that the command-line tools turn into one readable line and an exit code."""

import argparse
import importlib.util
import os
import sys

# What the commands need beyond the base install (the layers' Keras, NumPy, scikit-learn): pyproject's `train` extra.
TRAIN_EXTRA = ("tensorflow", "tensorflow_datasets", "scipy", "matplotlib")


class SoftVQError(Exception):
    """A problem the user can fix; ``str(error)`` says what and how."""

    exit_code = 2


class UsageError(SoftVQError):
    """Impossible flags or settings."""


class DataError(SoftVQError):
    """A data set that cannot be found, downloaded or parsed."""


class TrainingError(SoftVQError):
    """Training stopped for a reason the user must act on (NaN loss, full disk)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are one ``error:`` line (no usage block), like every other bad input."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def run_cli(main, argv=None):
    """Call ``main(argv)``; a ``SoftVQError`` or an ``OSError`` becomes one line on stderr."""
    try:
        return main(argv)
    except SoftVQError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # disk full, read-only directory, permissions
        where = f" ({error.filename})" if error.filename else ""
        print(f"error: {error.strerror or error}{where}; free space or choose another --out", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def missing_train_extra():
    """The modules of the ``train`` extra that are not installed (looked up, not imported: no TensorFlow start)."""

    def installed(module):
        if module in sys.modules:  # a test may block a module with None
            return sys.modules[module] is not None
        return importlib.util.find_spec(module) is not None

    return [module for module in TRAIN_EXTRA if not installed(module)]


def console_entry(main):
    """The console-script entry point of a command's ``main``: exits with ``run_cli(main)``'s status, or with 2 and
    one line when the ``train`` extra is not installed."""

    def run():
        missing = missing_train_extra()
        if missing:
            command = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "this command"
            print(
                f"error: {command} needs the training extra, which is not installed (missing: {', '.join(missing)}); "
                "pip install 'softvq_tf[train]'",
                file=sys.stderr,
            )
            sys.exit(2)
        sys.exit(run_cli(main))

    return run
