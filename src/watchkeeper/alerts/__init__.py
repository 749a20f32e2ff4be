"""Alerts: monitors, the alert lifecycle, and the notifiers that deliver alerts."""
