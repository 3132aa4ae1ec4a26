"""Independent businesses for bench/anomaly_eval.py, written apart from revwatch.sim and from each other.

Each generator draws a business whose failure drivers live in attributes the detectors have no rule for, and
returns `Generated`: the events (docs/events.md), the billing errors it injected (correlation ID → its own
cause name) and every payment's true failure probability and outcome (the Bayes-optimal ranking)."""
