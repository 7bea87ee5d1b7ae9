"""Users: look up by e-mail, fetch by id."""

from __future__ import annotations

from typing import ClassVar

from roost import Dynamic, RunContext

from roost_slack.base import P, SlackTask, User, user


class LookupByEmail(SlackTask, type=P + "users.LookupByEmail"):
    """Find a user by e-mail address (``users.lookupByEmail``); needs ``users:read.email``."""

    email: Dynamic[str]
    """The e-mail address."""

    Out: ClassVar[type[User]] = User

    def run(self, ctx: RunContext) -> User:
        slack = self.client(ctx)
        data = slack.call("users.lookupByEmail", email=self.email.strip())
        found = user(slack, "users.lookupByEmail", data.get("user"))
        ctx.logger.info("found user %s (%s)", found.name, found.id)
        return found


class Info(SlackTask, type=P + "users.Info"):
    """Fetch a user by id (``users.info``); needs ``users:read``."""

    user: Dynamic[str]
    """User id (``U...``)."""
    include_locale: Dynamic[bool] = False
    """Also return the user's locale."""

    Out: ClassVar[type[User]] = User

    def run(self, ctx: RunContext) -> User:
        slack = self.client(ctx)
        data = slack.call("users.info", user=self.user, include_locale=self.include_locale)
        return user(slack, "users.info", data.get("user"))
