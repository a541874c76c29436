"""flask-hello-world: the demo microservice deployed behind the Outrigger sidecar."""

__version__ = "0.1.0"  # x-release-please-version
