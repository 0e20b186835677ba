"""Errors that the command-line tools turn into one readable line and an exit code."""

import argparse
import sys


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


def console_entry(main):
    """The console-script entry point of a command's ``main``: exits with ``run_cli(main)``'s status."""

    def run():
        sys.exit(run_cli(main))

    return run
