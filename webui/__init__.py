"""The web UI people open in a browser: sign-in with an API key, SLO overview and detail, journey explorer, stuck
items, anomalies and the alert log, plus offline `/docs`. Server-rendered (jinja2 templates, SVG charts drawn
here), a little vanilla JS, every asset served by revwatch itself. `install(app)` mounts it."""
from webui.routes import install

__all__ = ["install"]
