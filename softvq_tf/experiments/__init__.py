"""The experiment harness: probes, scoring, the score store, tables, and the reproduce, sweep and bench commands."""
