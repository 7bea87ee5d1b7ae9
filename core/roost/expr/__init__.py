"""The expression engine: sandboxed Jinja2 made Pebble-compatible."""

from roost.expr.engine import ExpressionEngine, ExpressionError, RenderCtx, Services, get_engine

__all__ = ["ExpressionEngine", "ExpressionError", "RenderCtx", "Services", "get_engine"]
