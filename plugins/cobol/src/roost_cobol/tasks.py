"""COBOL tasks (Kestra's ``io.kestra.plugin.cobol``): CreateProgram, CallJob, SubmitJob over SSH."""

from __future__ import annotations

import shlex
import time
import uuid
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, model_validator
from roost import Dynamic, Model, Output, RunContext, Task, TaskError

from roost_cobol.host import Host, IbmiProfile, Message, Profile, cobc_messages, object_name, submitted_job


class As400Connection(Model):
    """The host: an IBM i (PASE) or a GnuCOBOL machine, reached over SSH."""

    host: Dynamic[str]
    """Host name or address of the IBM i (or GnuCOBOL host)."""
    port: Dynamic[int] = 22
    """SSH port."""
    user: Dynamic[str]
    """User profile to sign on with."""
    password: Dynamic[str] | None = None
    """Password of the user profile (or use ``privateKey``)."""
    private_key: Dynamic[str] | None = None
    """An OpenSSH/PEM private key (Ed25519, ECDSA or RSA) to sign on with, e.g. ``{{ secret('IBMI_KEY') }}``."""
    private_key_passphrase: Dynamic[str] | None = None
    """Passphrase of an encrypted ``privateKey``."""
    host_key: Dynamic[str] | None = None
    """The host's public key (``ssh-ed25519 AAAA...``, as in known_hosts): the session is refused when it differs.
    Without it the key is accepted and its fingerprint logged."""
    host_profile: Dynamic[Literal["GNUCOBOL", "IBMI"]] = "GNUCOBOL"
    """Host-side commands: GNUCOBOL (``cobc``, programs in ``<libraryRoot>/<library>/``) or IBMI (CL through
    PASE's ``system``: CRTBNDCBL, CALL, SBMJOB)."""
    library_root: Dynamic[str] = "roost-cobol"
    """GNUCOBOL: folder of the libraries (relative to the user's home); IBMI: IFS folder of uploaded sources."""
    connect_timeout: Dynamic[timedelta] = timedelta(seconds=30)
    """Longest wait to open the SSH session."""

    @model_validator(mode="after")
    def _credentials(self) -> As400Connection:
        if self.password is None and self.private_key is None:
            raise ValueError("give 'password' or 'privateKey'")
        return self

    def profile(self) -> Profile:
        return IbmiProfile(self.library_root) if self.host_profile == "IBMI" else Profile(self.library_root)

    def connect(self, ctx: RunContext) -> Host:
        return Host(self.host, self.port, self.user, password=self.password, private_key=self.private_key,
                    passphrase=self.private_key_passphrase, host_key=self.host_key,
                    timeout=self.connect_timeout.total_seconds(), logger=ctx.logger)  # fmt: skip


def _log_line(ctx: RunContext) -> Any:
    return lambda line, err: (ctx.logger.warning if err else ctx.logger.info)(line)


def _end_job(ctx: RunContext, host: Host, profile: Profile, number: str | None, why: str) -> None:
    """End a remote job's whole process group (on kill or timeout)."""
    if not number:
        return
    ctx.logger.warning("ending remote job %s (%s)", number, why)
    try:
        host.run(profile.kill(number))
    except TaskError as exc:
        ctx.logger.error("could not end remote job %s: %s", number, exc)


class CreateProgram(As400Connection, Task, type="io.kestra.plugin.cobol.CreateProgram"):
    """Compile a COBOL program on the host from inline source, a file of internal storage or a namespace file.

    The source is uploaded over SFTP and compiled (GNUCOBOL: ``cobc -x``; IBMI: ``CRTBNDCBL``). A compile
    error fails the task with the compiler's messages and their source lines.
    """

    library: Dynamic[str]
    """Library of the program (e.g. ``FINLIB``)."""
    program: Dynamic[str]
    """Program name (e.g. ``CALCINT``)."""
    source_inline: Dynamic[str] | None = None
    """The COBOL source."""
    source_uri: Dynamic[str] | None = None
    """A ``kestra://`` URI of the source, or ``nsfile:///path`` (a namespace file of the flow's namespace)."""
    compile_options: Dynamic[str] | None = None
    """Compiler options: cobc flags (``-free -std=ibm``) on GNUCOBOL, CL options (``DBGVIEW(*ALL)``) on IBMI."""

    class Out(Output):
        program_path: str
        """Where the compiled program is (``<library folder>/<program>``, ``/QSYS.LIB/LIB.LIB/PGM.PGM`` on IBM i)."""
        compile_messages: list[dict[str, Any]] = Field(default_factory=list)
        """Compiler messages: ``id``, ``severity`` (30 error, 10 warning), ``text``, ``line``."""

    @model_validator(mode="after")
    def _one_source(self) -> CreateProgram:
        if (self.source_inline is None) == (self.source_uri is None):
            raise ValueError("give exactly one of 'sourceInline' or 'sourceUri'")
        return self

    def _source(self, ctx: RunContext) -> bytes:
        if self.source_inline is not None:
            return self.source_inline.encode()
        uri = str(self.source_uri)
        if uri.startswith("nsfile://"):
            return ctx.namespace_file(uri[len("nsfile://") :].lstrip("/"))
        if uri.startswith("kestra://"):
            return ctx.read_file(uri)
        raise TaskError(f"sourceUri: expected a kestra:// or nsfile:// URI, got {uri!r}")

    def run(self, ctx: RunContext) -> CreateProgram.Out:
        library = object_name(self.library, "library")
        program = object_name(self.program, "program")
        source = self._source(ctx)
        profile = self.profile()
        command = profile.compile(library, program, self.compile_options)  # options checked before connecting
        with self.connect(ctx) as host:
            prepared = host.run(profile.prepare(library))
            if prepared.code != 0:
                raise TaskError(f"cannot create library {library} on {host.address}: {prepared.tail()}")
            source_path = profile.source_path(library, program)
            host.upload(source, source_path)
            ctx.logger.info("compiling %s/%s on %s", library, program, host.address)
            result = host.run(command, killed=ctx.killed)
            if profile.name == "IBMI":
                host.remove(source_path)
        ctx.raise_if_killed()
        text = "\n".join(result.stdout + result.stderr)
        messages = cobc_messages(text) if profile.name == "GNUCOBOL" else _cl_messages(text)
        for m in messages:
            (ctx.logger.error if m.severity >= 30 else ctx.logger.warning)(
                f"line {m.line}: {m.text}" if m.line else m.text
            )
        if result.code != 0:
            detail = "; ".join(
                f"line {m.line}: {m.text}" if m.line else m.text for m in messages if m.severity >= 30
            )
            raise TaskError(
                f"compiling {library}/{program} failed (exit {result.code}): {detail or result.tail()}",
                outputs={"compileMessages": [m.as_dict() for m in messages]},
            )
        path = (f"/QSYS.LIB/{library}.LIB/{program}.PGM" if profile.name == "IBMI"
                else f"{profile.library_dir(library)}/{program}")  # fmt: skip
        return self.Out(program_path=path, compile_messages=[m.as_dict() for m in messages])


def _cl_messages(text: str) -> list[Message]:
    """IBM i messages as ``system`` prints them: ``CPF1234: text`` (escape messages are errors)."""
    import re

    found = []
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Z]{3}[0-9A-F]{4})\s*:?\s*(.*)$", line)
        if m:
            ident = m.group(1)
            found.append(Message(ident, 40 if ident.startswith(("CPF", "LNC")) else 0, m.group(2)))
    return found


class CallJob(As400Connection, Task, type="io.kestra.plugin.cobol.CallJob"):
    """Call a COBOL program and wait for it to end, with parameters.

    GNUCOBOL runs ``<library>/<program> <parameters...>`` (the program reads them with ``ACCEPT ... FROM
    ARGUMENT-VALUE``); IBMI runs ``CALL PGM(LIB/PGM) PARM('...')``. Every parameter is quoted for the shell
    (and for CL): none can run a command. The program's output is logged and stored; a non-zero return code
    fails the task. A kill ends the program's whole process group on the host.
    """

    library: Dynamic[str]
    """Library of the program."""
    program: Dynamic[str]
    """Program to call."""
    parameters: Dynamic[list[str]] = Field(default_factory=list)
    """Parameters passed to the program, in order."""
    program_timeout: Dynamic[int] | None = None
    """Seconds the program may run; it is ended, and the task fails, after that."""

    class Out(Output):
        return_code: int
        """The program's return code."""
        duration: timedelta
        """How long the program ran."""
        job_name: str
        """The program's name (IBM i: the job's name)."""
        job_number: str | None = None
        """The job number (GNUCOBOL: the process group id on the host)."""
        job_user: str
        """The user profile the program ran as."""
        messages: list[dict[str, Any]] = Field(default_factory=list)
        """System messages (IBM i)."""
        stdout_uri: str | None = None
        """Internal-storage URI of the program's output."""

    def run(self, ctx: RunContext) -> CallJob.Out:
        library = object_name(self.library, "library")
        program = object_name(self.program, "program")
        profile = self.profile()
        command = profile.call(library, program, [str(p) for p in self.parameters])
        with self.connect(ctx) as host:
            ctx.logger.info("calling %s/%s on %s", library, program, host.address)
            started = time.monotonic()
            result = host.run(
                command, on_line=_log_line(ctx), killed=ctx.killed, timeout=self.program_timeout
            )
            duration = timedelta(seconds=time.monotonic() - started)
            if result.interrupted:  # killed, or past programTimeout: the program must not outlive the task
                _end_job(ctx, host, profile, result.job, result.interrupted)
        ctx.raise_if_killed()
        stdout_uri = ctx.put_bytes(("\n".join(result.stdout) + "\n").encode(), f"{program}.stdout.txt")
        outputs = {"returnCode": result.code, "duration": duration, "jobName": program, "jobNumber": result.job,
                   "jobUser": self.user, "stdoutUri": stdout_uri}  # fmt: skip
        if result.interrupted == "timeout":
            raise TaskError(f"{library}/{program} ran longer than programTimeout ({self.program_timeout}s) and was ended",
                            outputs=outputs)  # fmt: skip
        messages = _cl_messages("\n".join(result.stdout + result.stderr)) if profile.name == "IBMI" else []
        if result.code == 127 and not result.stdout:
            raise TaskError(
                f"{library}/{program} was not found on the host: {result.tail()}", outputs=outputs
            )
        if result.code != 0:
            raise TaskError(
                f"{library}/{program} ended with return code {result.code}: {result.tail()}", outputs=outputs
            )
        return self.Out(return_code=0, duration=duration, job_name=program, job_number=result.job, job_user=self.user,
                        messages=[m.as_dict() for m in messages], stdout_uri=stdout_uri)  # fmt: skip


class SubmitJob(As400Connection, Task, type="io.kestra.plugin.cobol.SubmitJob"):
    """Submit a COBOL program as a batch job, and optionally follow it to its end.

    As in Kestra, the task returns once the job is submitted (``jobName``, ``jobNumber``, ``jobUser``).
    With ``wait: true`` it follows the job instead: ``jobStatus`` and ``returnCode`` at the end, the job's
    spool in internal storage, a failed job fails the task, and a kill ends the job.
    """

    library: Dynamic[str]
    """Library of the program."""
    program: Dynamic[str]
    """Program to run in the batch job."""
    parameters: Dynamic[list[str]] = Field(default_factory=list)
    """Parameters passed to the program, in order."""
    job_name: Dynamic[str] | None = None
    """Name of the job (default: the program's)."""
    job_queue: Dynamic[str] | None = None
    """Job queue (IBMI: ``JOBQ``; ignored on GNUCOBOL)."""
    user_profile: Dynamic[str] | None = None
    """User profile of the job (IBMI: ``USER``; GNUCOBOL runs jobs as the connection's user)."""
    wait: Dynamic[bool] = False
    """Follow the job to its end (GNUCOBOL hosts; IBM i jobs are submitted only)."""
    poll_interval: Dynamic[timedelta] = timedelta(seconds=1)
    """How often a followed job's status is read."""

    class Out(Output):
        submitted: bool
        """The job was submitted."""
        job_name: str
        """Name of the job."""
        job_number: str | None = None
        """Number of the job (GNUCOBOL: its process group id on the host)."""
        job_user: str
        """User profile of the job."""
        messages: list[dict[str, Any]] = Field(default_factory=list)
        """System messages (IBM i's CPC1221 on submission)."""
        job_status: str | None = None
        """With ``wait``: COMPLETED or FAILED."""
        return_code: int | None = None
        """With ``wait``: the program's return code."""
        spool_uri: str | None = None
        """With ``wait``: internal-storage URI of the job's spool (its output)."""

    def run(self, ctx: RunContext) -> SubmitJob.Out:
        library = object_name(self.library, "library")
        program = object_name(self.program, "program")
        name = object_name(self.job_name or program, "jobName")
        params = [str(p) for p in self.parameters]
        profile = self.profile()
        if isinstance(profile, IbmiProfile):
            return self._ibmi(ctx, profile, library, program, name, params)
        if self.job_queue:
            ctx.logger.warning("jobQueue %s ignored: a GNUCOBOL host has no job queues", self.job_queue)
        if self.user_profile and self.user_profile != self.user:
            raise TaskError(
                f"userProfile {self.user_profile}: a GNUCOBOL host runs jobs as the connection's user"
            )
        job_dir = f"{profile.root}/.jobs/{name}-{uuid.uuid4().hex[:12]}"
        with self.connect(ctx) as host:
            submitted = host.run(profile.submit(library, program, params, job_dir))
            if submitted.code != 0 or not submitted.job:
                raise TaskError(
                    f"submitting {library}/{program} on {host.address} failed: {submitted.tail()}"
                )
            ctx.logger.info("job %s/%s/%s submitted", submitted.job, self.user, name)
            out = self.Out(submitted=True, job_name=name, job_number=submitted.job, job_user=self.user)
            if not self.wait:
                return out
            try:
                while True:
                    ctx.sleep(self.poll_interval.total_seconds())  # a kill interrupts the wait
                    state = host.run(profile.status(job_dir, submitted.job)).stdout
                    words = (state[-1] if state else "ENDED 255").split()
                    if words[0] == "ENDED":
                        break
            except BaseException:
                if ctx.killed():
                    _end_job(ctx, host, profile, submitted.job, "killed")
                raise
            spool = host.run(profile.spool(job_dir))
            host.run(f"rm -rf {shlex.quote(job_dir)}")
        code = int(words[1]) if len(words) > 1 and words[1].lstrip("-").isdigit() else 255
        for line in spool.stdout:
            ctx.logger.info(line)
        out.spool_uri = ctx.put_bytes(("\n".join(spool.stdout) + "\n").encode(), f"{name}.spool.txt")
        out.return_code = code
        out.job_status = "COMPLETED" if code == 0 else "FAILED"
        if code != 0:
            raise TaskError(f"job {submitted.job}/{self.user}/{name} ended with return code {code}: "
                            + "\n".join(spool.stdout[-20:]), outputs=out)  # fmt: skip
        return out

    def _ibmi(self, ctx: RunContext, profile: IbmiProfile, library: str, program: str, name: str,
              params: list[str]) -> SubmitJob.Out:  # fmt: skip
        if self.wait:
            raise TaskError("wait: following IBM i batch jobs is not supported; submit only (wait: false)")
        queue = object_name(self.job_queue, "jobQueue") if self.job_queue else None
        user = object_name(self.user_profile, "userProfile") if self.user_profile else None
        with self.connect(ctx) as host:
            result = host.run(profile.sbmjob(library, program, params, name, queue, user))
        text = "\n".join(result.stdout + result.stderr)
        messages = [m.as_dict() for m in _cl_messages(text)]
        if result.code != 0:
            raise TaskError(f"SBMJOB of {library}/{program} failed: {text.strip()}")
        found = submitted_job(text)
        number, job_user, job_name = found if found else (None, user or self.user, name)
        return self.Out(
            submitted=True, job_name=job_name, job_number=number, job_user=job_user, messages=messages
        )


TASKS = (CreateProgram, CallJob, SubmitJob)
