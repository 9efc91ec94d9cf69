"""``alembic upgrade head`` from Python, on the configured database."""

from __future__ import annotations

from bank.adapters.settings import project_root


def migrate(quiet: bool = False) -> None:
    """``alembic upgrade head`` on the configured database (``quiet``: no progress lines)."""
    from alembic import command
    from alembic.config import Config

    root = project_root()
    cfg = Config(str(root / "alembic.ini"))
    cfg.set_main_option("script_location", str(root / "alembic"))
    cfg.attributes["configure_logger"] = not quiet
    command.upgrade(cfg, "head")
