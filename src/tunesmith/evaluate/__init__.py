"""Held-out evaluation: metrics, base-vs-prompting-vs-tuned comparison, and the report."""

from tunesmith.evaluate.runner import evaluate_run

__all__ = ["evaluate_run"]
