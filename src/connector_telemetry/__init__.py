"""connector-telemetry: a self-hosted, Cloudflare-compatible telemetry service for
Magic WAN Connectors."""

__version__ = "0.1.0"
