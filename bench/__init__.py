"""Benchmarks: Bocadillo against raw ASGI, Starlette, FastAPI and Litestar (see README.md)."""
