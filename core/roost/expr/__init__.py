"""The expression engine: sandboxed Jinja2 made Pebble-compatible."""

from roost.expr.engine import (
    Ctx,
    ExpressionEngine,
    ExpressionError,
    RenderCtx,
    Services,
    get_engine,
    reset_engine,
)
from roost.expr.masking import MASK, mask

__all__ = [
    "MASK",
    "Ctx",
    "ExpressionEngine",
    "ExpressionError",
    "RenderCtx",
    "Services",
    "get_engine",
    "mask",
    "reset_engine",
]
