"""The web console, served by the API server under /console: pages rendered on the
server (Jinja templates) and kept live with htmx, bundled in the package."""
