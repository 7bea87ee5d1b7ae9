"""The SSH connection to the COBOL host, and the host-side commands of each profile.

Every remote command is one shell line built here: names are checked against IBM i's object-name
rule, and every value (parameters, paths, options) goes through ``shlex.quote`` — and, for IBM i's
CL, through CL's own quoting first — so no parameter can run a command of its own.
"""

from __future__ import annotations

import io
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from roost import TaskError

OBJECT_NAME = re.compile(r"^[A-Za-z$#@][A-Za-z0-9_$#@.]{0,9}$")  # IBM i: up to 10 characters
_COBC_OPTION = re.compile(r"^-{1,2}[A-Za-z0-9][A-Za-z0-9_=.,:+/-]*$")
_CL_OPTIONS = re.compile(r"^[A-Za-z][A-Za-z0-9_]*\([^()]*\)(\s+[A-Za-z][A-Za-z0-9_]*\([^()]*\))*$")
_COBC_MESSAGE = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+):\s*(?P<kind>error|warning|note)\s*:\s*(?P<text>.*)$"
)
_SEVERITY = {"note": 0, "warning": 10, "error": 30}
PGID_MARK = "ROOST-JOB "


def object_name(value: str, what: str) -> str:
    value = (value or "").strip()
    if not OBJECT_NAME.match(value):
        raise TaskError(
            f"{what} {value!r} is not an IBM i object name (a letter, $, # or @, then up to 9 letters, digits, "
            "_, $, #, @ or .)"
        )
    return value


def cl_string(value: str) -> str:
    """A CL character literal: quotes doubled, the whole in quotes."""
    if "\x00" in value:
        raise TaskError("a parameter holds a NUL character")
    return "'" + value.replace("'", "''") + "'"


@dataclass
class Message:
    """A compiler or system message (Kestra's MessageOutput, with the source line when known)."""

    id: str
    severity: int
    text: str
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "severity": self.severity, "text": self.text}
        if self.line is not None:
            out["line"] = self.line
        return out


def cobc_messages(output: str) -> list[Message]:
    """GnuCOBOL's ``file:line: error: text`` lines as messages (severity 30 errors, 10 warnings)."""
    found = []
    for raw in output.splitlines():
        m = _COBC_MESSAGE.match(raw.strip())
        if m:
            kind = m.group("kind")
            found.append(
                Message(f"COBC-{kind.upper()}", _SEVERITY[kind], m.group("text"), int(m.group("line")))
            )
    return found


class Profile:
    """The host-side commands (a GnuCOBOL host; :class:`IbmiProfile` for IBM i over PASE)."""

    name = "GNUCOBOL"

    def __init__(self, library_root: str) -> None:
        self.root = library_root.rstrip("/") or "."

    def library_dir(self, library: str) -> str:
        return f"{self.root}/{library}"

    def source_path(self, library: str, program: str) -> str:
        return f"{self.library_dir(library)}/{program}.cbl"

    def compile_options(self, options: str | None) -> list[str]:
        parts = shlex.split(options or "")
        for part in parts:
            if not _COBC_OPTION.match(part):
                raise TaskError(f"compileOptions: {part!r} is not a cobc option (-x, -free, -std=ibm...)")
        return parts

    def compile(self, library: str, program: str, options: str | None) -> str:
        lib = self.library_dir(library)
        argv = [
            "cobc",
            "-x",
            *self.compile_options(options),
            "-o",
            f"{lib}/{program}",
            self.source_path(library, program),
        ]
        return " ".join(shlex.quote(a) for a in argv)

    def prepare(self, library: str) -> str:
        return f"mkdir -p {shlex.quote(self.library_dir(library))}"

    def call(self, library: str, program: str, parameters: list[str]) -> str:
        """A program run in a session of its own (its process group id printed first, for kill)."""
        inner = f'echo "{PGID_MARK}$$"; cd "$1" && shift && exec "$@"'
        argv = [
            "setsid",
            "-w",
            "sh",
            "-c",
            inner,
            "sh",
            self.library_dir(library),
            f"./{program}",
            *parameters,
        ]
        return " ".join(shlex.quote(a) for a in argv)

    def submit(self, library: str, program: str, parameters: list[str], job_dir: str) -> str:
        """Start the program detached; its spool and return code go to ``job_dir``; prints the job number."""
        inner = 'cd "$1" && shift && "$@"; echo $? > "$0/rc.tmp" && mv "$0/rc.tmp" "$0/rc"'
        argv = ["sh", "-c", inner, job_dir, self.library_dir(library), f"./{program}", *parameters]
        run = " ".join(shlex.quote(a) for a in argv)
        spool = shlex.quote(f"{job_dir}/spool")
        return (f"mkdir -p {shlex.quote(job_dir)} && setsid {run} </dev/null >{spool} 2>&1 & "
                f'echo "{PGID_MARK}$!"')  # fmt: skip

    def status(self, job_dir: str, number: str) -> str:
        """Prints ``ACTIVE``, or ``ENDED <rc>``."""
        rc = shlex.quote(f"{job_dir}/rc")
        return f"if [ -f {rc} ]; then echo ENDED $(cat {rc}); elif kill -0 {shlex.quote(number)} 2>/dev/null; then echo ACTIVE; else echo ENDED 255; fi"

    def spool(self, job_dir: str) -> str:
        return f"cat {shlex.quote(job_dir + '/spool')}"

    def kill(self, number: str, grace: float = 3.0) -> str:
        """End the job's whole process group: TERM, then KILL after a grace period."""
        group = shlex.quote("-" + number)
        return f"kill -TERM -- {group} 2>/dev/null; sleep {grace:g}; kill -KILL -- {group} 2>/dev/null; true"


class IbmiProfile(Profile):
    """IBM i over SSH: CL commands through PASE's ``system`` (CRTBNDCBL, CALL, SBMJOB, ENDJOB)."""

    name = "IBMI"

    def library_dir(self, library: str) -> str:
        return f"/QSYS.LIB/{library}.LIB"

    def source_path(self, library: str, program: str) -> str:
        return f"{self.root}/roost_{library}_{program}.cbl"

    def compile_options(self, options: str | None) -> list[str]:
        text = (options or "").strip()
        if text and not _CL_OPTIONS.match(text):
            raise TaskError(
                "compileOptions: expected CL options NAME(VALUE) separated by spaces, e.g. DBGVIEW(*ALL)"
            )
        return [text] if text else []

    def prepare(self, library: str) -> str:
        return f"mkdir -p {shlex.quote(self.root)}"

    def _system(self, cl: str) -> str:
        return f"system {shlex.quote(cl)}"

    def compile(self, library: str, program: str, options: str | None) -> str:
        source = self.source_path(library, program)
        cl = f"CRTBNDCBL PGM({library}/{program}) SRCSTMF({cl_string(source)})"
        for option in self.compile_options(options):
            cl += " " + option
        return self._system(cl)

    def _call(self, library: str, program: str, parameters: list[str]) -> str:
        cl = f"CALL PGM({library}/{program})"
        if parameters:
            cl += " PARM(" + " ".join(cl_string(p) for p in parameters) + ")"
        return cl

    def call(self, library: str, program: str, parameters: list[str]) -> str:
        inner = f'echo "{PGID_MARK}$$"; exec system "$1"'
        argv = ["setsid", "-w", "sh", "-c", inner, "sh", self._call(library, program, parameters)]
        return " ".join(shlex.quote(a) for a in argv)

    def sbmjob(self, library: str, program: str, parameters: list[str], job_name: str | None, job_queue: str | None,
               user: str | None) -> str:  # fmt: skip
        cl = f"SBMJOB CMD({self._call(library, program, parameters)})"
        if job_name:
            cl += f" JOB({job_name})"
        if job_queue:
            cl += f" JOBQ({job_queue})"
        if user:
            cl += f" USER({user})"
        return self._system(cl)


_SUBMITTED = re.compile(r"Job (\d{6})/([A-Z0-9_$#@]+)/([A-Z0-9_$#@]+) submitted", re.IGNORECASE)


def submitted_job(output: str) -> tuple[str, str, str] | None:
    """IBM i's CPC1221 message: (number, user, name) of the submitted job."""
    m = _SUBMITTED.search(output)
    return (m.group(1), m.group(2), m.group(3)) if m else None


class Host:
    """An SSH session to the host (paramiko), with kill-aware command runs and SFTP uploads."""

    def __init__(self, host: str, port: int, user: str, *, password: str | None, private_key: str | None,
                 passphrase: str | None, host_key: str | None, timeout: float, logger: Any) -> None:  # fmt: skip
        import paramiko

        self.address = f"{user}@{host}:{port}"
        self.logger = logger
        self.client = paramiko.SSHClient()
        self.client.set_missing_host_key_policy(_HostKeyPolicy(host, port, host_key, logger))
        pkey = _private_key(private_key, passphrase) if private_key else None
        try:
            self.client.connect(host, port=port, username=user, password=password, pkey=pkey, timeout=timeout,
                                banner_timeout=timeout, auth_timeout=timeout, allow_agent=False,
                                look_for_keys=False)  # fmt: skip
        except paramiko.AuthenticationException as exc:
            self.client.close()
            raise TaskError(f"SSH authentication as {self.address} failed: {exc}") from None
        except paramiko.BadHostKeyException as exc:
            self.client.close()
            raise TaskError(f"SSH host key of {host}:{port} does not match hostKey: {exc}") from None
        except (TimeoutError, OSError, paramiko.SSHException) as exc:
            self.client.close()
            raise TaskError(f"cannot open an SSH session to {self.address}: {exc}") from None

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def upload(self, data: bytes, path: str) -> None:
        sftp = self.client.open_sftp()
        try:
            sftp.putfo(io.BytesIO(data), path)
        except OSError as exc:
            raise TaskError(f"cannot write {path} on {self.address}: {exc}") from None
        finally:
            sftp.close()

    def remove(self, path: str) -> None:
        sftp = self.client.open_sftp()
        try:
            sftp.remove(path)
        except OSError:
            pass
        finally:
            sftp.close()

    def run(self, command: str, *, on_line: Callable[[str, bool], None] | None = None,
            killed: Callable[[], bool] = lambda: False, timeout: float | None = None) -> Result:  # fmt: skip
        """Run one shell line; stream its lines to ``on_line(line, is_stderr)``; return code and output."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise TaskError(f"the SSH session to {self.address} is closed")
        channel = transport.open_session()
        channel.exec_command(command)
        result = Result()
        buffers = {False: b"", True: b""}
        deadline = None if timeout is None else time.monotonic() + timeout

        def feed(data: bytes, err: bool) -> None:
            buffers[err] += data
            *lines, buffers[err] = buffers[err].split(b"\n")
            for raw in lines:
                result.add(raw.decode("utf-8", "replace").rstrip("\r"), err, on_line)

        while True:
            got = False
            while channel.recv_ready():
                feed(channel.recv(32768), False)
                got = True
            while channel.recv_stderr_ready():
                feed(channel.recv_stderr(32768), True)
                got = True
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
            if killed():
                result.interrupted = "killed"
                break
            if deadline is not None and time.monotonic() > deadline:
                result.interrupted = "timeout"
                break
            if not got:
                time.sleep(0.05)
        for err in (False, True):
            if buffers[err]:
                result.add(buffers[err].decode("utf-8", "replace"), err, on_line)
        result.code = channel.recv_exit_status() if result.interrupted is None else None
        channel.close()
        return result


@dataclass
class Result:
    code: int | None = None
    interrupted: str | None = None
    job: str | None = None

    def __post_init__(self) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()

    def add(self, line: str, err: bool, on_line: Callable[[str, bool], None] | None) -> None:
        if not err and self.job is None and line.startswith(PGID_MARK):
            self.job = line[len(PGID_MARK) :].strip()
            return
        (self.stderr if err else self.stdout).append(line)
        if on_line is not None:
            on_line(line, err)

    def tail(self, lines: int = 20) -> str:
        return "\n".join((self.stderr or self.stdout)[-lines:])


class _HostKeyPolicy:
    """Accept the host key when it matches ``hostKey``; without one, accept it and log its fingerprint."""

    def __init__(self, host: str, port: int, expected: str | None, logger: Any) -> None:
        self.host, self.port, self.expected, self.logger = host, port, expected, logger

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        import paramiko

        offered = f"{key.get_name()} {key.get_base64()}"
        if self.expected:
            parts = self.expected.split()
            wanted = " ".join(parts[-2:]) if len(parts) >= 2 else self.expected
            if wanted != offered:
                raise paramiko.BadHostKeyException(hostname, key, _parse_key(wanted))
            return
        fingerprint = key.fingerprint if hasattr(key, "fingerprint") else key.get_fingerprint().hex()
        self.logger.warning(
            "SSH host key of %s:%s not verified (set hostKey to pin it): %s %s", self.host, self.port,
            key.get_name(), fingerprint,
        )  # fmt: skip


def _parse_key(text: str) -> Any:
    import base64

    import paramiko

    try:
        name, blob = text.split()[:2]
        return paramiko.PKey.from_type_string(name, base64.b64decode(blob))
    except Exception:
        return None


def _private_key(text: str, passphrase: str | None) -> Any:
    import paramiko

    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise TaskError("privateKey is encrypted: set privateKeyPassphrase") from None
        except paramiko.SSHException:
            continue
    raise TaskError("privateKey is not an OpenSSH/PEM private key (Ed25519, ECDSA or RSA) paramiko can read")
