"""Anomaly detection over business events: billing variance and reconciliation-failure risk (scikit-learn)."""
