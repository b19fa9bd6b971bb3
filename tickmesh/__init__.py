"""tickmesh: a real-time streaming mesh for an investment platform."""

__version__ = "0.1.0"
