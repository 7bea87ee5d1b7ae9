"""Git tasks (``io.kestra.plugin.git.Clone``) through the ``git`` executable."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from roost import Dynamic, Output, RunContext, Task, TaskError


class CloneOutput(Output):
    directory: str
    """Folder holding the clone."""


class Clone(Task, type="io.kestra.plugin.git.Clone"):
    """Clone a Git repository (any URL git accepts) into the working folder."""

    url: Dynamic[str]
    """Repository URL (https, ssh, file, or a local path)."""
    branch: Dynamic[str] | None = None
    """Branch or tag to check out; the default branch otherwise."""
    depth: int | None = 1
    """Shallow clone depth; null for the full history."""
    directory: Dynamic[str] | None = None
    """Sub-folder of the working folder to clone into."""
    username: Dynamic[str] | None = None
    """User for HTTPS authentication."""
    password: Dynamic[str] | None = None
    """Password or token for HTTPS authentication."""
    private_key: Dynamic[str] | None = None
    """PEM private key for SSH."""
    passphrase: Dynamic[str] | None = None
    """Passphrase of the private key."""
    clone_submodules: bool = False
    """Also clone submodules."""

    def run(self, ctx: RunContext) -> CloneOutput:
        target = ctx.working_dir / (self.directory or "")
        if ctx.working_dir.resolve() not in (target.resolve(), *target.resolve().parents):
            raise TaskError(f"directory {self.directory!r} leaves the working folder")
        target.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        secrets_dir = Path(tempfile.mkdtemp(prefix="git-auth-"))
        try:
            if self.username or self.password:
                askpass = secrets_dir / "askpass.sh"
                askpass.write_text(
                    '#!/bin/sh\ncase "$1" in Username*) echo "$GIT_USER";; *) echo "$GIT_PASS";; esac\n'
                )
                askpass.chmod(0o700)
                env.update(
                    GIT_ASKPASS=str(askpass), GIT_USER=self.username or "", GIT_PASS=self.password or ""
                )
            if self.private_key:
                key = secrets_dir / "id"
                key.write_text(self.private_key.strip() + "\n")
                key.chmod(0o600)
                env["GIT_SSH_COMMAND"] = (
                    f"ssh -i {key} -o StrictHostKeyChecking=accept-new -o IdentitiesOnly=yes"
                )
            self._git(ctx, env, target, "init", "-q")
            self._git(ctx, env, target, "remote", "add", "origin", self.url)
            fetch = ["fetch", "-q", "origin"]
            if self.depth:
                fetch += [f"--depth={self.depth}"]
            ref = self.branch or "HEAD"
            self._git(ctx, env, target, *fetch, ref)
            self._git(ctx, env, target, "checkout", "-q", "FETCH_HEAD")
            if self.branch:
                self._git(ctx, env, target, "checkout", "-q", "-B", self.branch)
            if self.clone_submodules:
                self._git(ctx, env, target, "submodule", "update", "--init", "--recursive")
        finally:
            for p in secrets_dir.iterdir():
                p.unlink()
            secrets_dir.rmdir()
        ctx.logger.info("cloned %s%s into %s", self.url, f"@{self.branch}" if self.branch else "", target)
        return CloneOutput(directory=str(target))

    def _git(self, ctx: RunContext, env: dict[str, str], cwd: Path, *args: str) -> None:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise TaskError(
                f"git {args[0]} failed for {self.url}: {proc.stderr.strip() or proc.stdout.strip()}"
            )


TASKS = (Clone,)
