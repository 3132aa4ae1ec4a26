"""Scheduled pollers for telemetry nobody pushes: Odoo, RabbitMQ, Redis, HTTP endpoints."""
