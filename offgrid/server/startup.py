"""What is checked and prepared about users before the server listens."""

from __future__ import annotations

import ipaddress
import logging

from ..config import ConfigError, Settings
from ..store import audit, users
from ..store.db import Database
from ..store.errors import InvalidValue

log = logging.getLogger("offgrid.server")


def prepare_users(settings: Settings, db: Database) -> None:
    """Create the first admin from OFFGRID_ADMIN_PASSWORD, and warn about a server anyone can
    use."""
    if not settings.multi_user:
        if not _is_loopback(settings.host):
            log.warning("single-user mode on %s: anyone who can reach it may use it, with no "
                        "credentials; set OFFGRID_MULTI_USER=true to require them", settings.host)
        return
    if settings.admin_password:
        try:
            created = users.ensure_admin(db, settings.admin_password)
        except InvalidValue as error:
            raise ConfigError(f"admin_password: {error}") from None
        if created:
            audit.record(db, "OFFGRID_ADMIN_PASSWORD", "create_user", created.username,
                         "role=admin")
            log.info("created the admin user %r", created.username)
    if not users.has_admin(db):
        log.warning("multi-user mode without an admin: create one with `offgrid users create "
                    "NAME --role admin`, or start with OFFGRID_ADMIN_PASSWORD set")


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
