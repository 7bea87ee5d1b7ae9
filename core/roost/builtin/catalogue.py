"""The built-in types by id, so that loading a flow imports only the modules of the types it uses.

A test checks every entry against its class (id and aliases), so this table cannot drift.
"""

from __future__ import annotations

from roost import LazyType

_B = "roost.builtin."

TASKS = (
    LazyType("io.kestra.plugin.core.log.Log", _B + "log:Log", ("io.kestra.core.tasks.log.Log",)),
    LazyType("io.kestra.plugin.ee.core.log.LogShipper", _B + "log_shipper:LogShipper"),
    LazyType("io.kestra.plugin.core.debug.Return", _B + "log:Return", ("io.kestra.core.tasks.debugs.Return",)),
    LazyType("io.kestra.plugin.core.output.OutputValues", _B + "log:OutputValues"),
    LazyType("io.kestra.plugin.core.execution.Fail", _B + "log:Fail", ("io.kestra.core.tasks.executions.Fail",)),
    LazyType("io.kestra.plugin.core.flow.Sleep", _B + "log:Sleep"),
    LazyType("io.kestra.plugin.core.flow.Sequential", _B + "flow:Sequential", ("io.kestra.core.tasks.flows.Sequential",)),
    LazyType("io.kestra.plugin.core.flow.Parallel", _B + "flow:Parallel", ("io.kestra.core.tasks.flows.Parallel",)),
    LazyType("io.kestra.plugin.core.flow.AllowFailure", _B + "flow:AllowFailure", ("io.kestra.core.tasks.flows.AllowFailure",)),
    LazyType("io.kestra.plugin.core.flow.If", _B + "flow:If"),
    LazyType("io.kestra.plugin.core.flow.Switch", _B + "flow:Switch", ("io.kestra.core.tasks.flows.Switch",)),
    LazyType("io.kestra.plugin.core.flow.ForEach", _B + "flow:ForEach"),
    LazyType("io.kestra.plugin.core.flow.ForEachItem", _B + "flow:ForEachItem"),
    LazyType("io.kestra.plugin.core.flow.Dag", _B + "flow:Dag"),
    LazyType("io.kestra.plugin.core.flow.WorkingDirectory", _B + "flow:WorkingDirectory",
             ("io.kestra.core.tasks.flows.WorkingDirectory",)),
    LazyType("io.kestra.plugin.core.flow.Subflow", _B + "flow:Subflow",
             ("io.kestra.core.tasks.flows.Subflow", "io.kestra.plugin.core.flow.Flow", "io.kestra.core.tasks.flows.Flow")),
    LazyType("io.kestra.plugin.core.flow.Pause", _B + "flow:Pause", ("io.kestra.core.tasks.flows.Pause",)),
    LazyType("io.kestra.plugin.core.flow.LoopUntil", _B + "flow:LoopUntil",
             ("io.kestra.plugin.core.flow.WaitFor", "io.kestra.core.tasks.flows.WaitFor")),
    LazyType("io.kestra.plugin.core.flow.EachSequential", _B + "flow:EachSequential", ("io.kestra.core.tasks.flows.EachSequential",)),
    LazyType("io.kestra.plugin.core.flow.EachParallel", _B + "flow:EachParallel", ("io.kestra.core.tasks.flows.EachParallel",)),
    LazyType("io.kestra.plugin.core.debug.Echo", _B + "log:Echo", ("io.kestra.core.tasks.debugs.Echo",)),
    LazyType("io.kestra.plugin.core.log.Fetch", _B + "log:Fetch", ("io.kestra.core.tasks.log.Fetch",)),
    LazyType("io.kestra.plugin.core.execution.Labels", _B + "execution:Labels", ("io.kestra.core.tasks.executions.Labels",)),
    LazyType("io.kestra.plugin.core.execution.Resume", _B + "execution:Resume", ("io.kestra.core.tasks.executions.Resume",)),
    LazyType("io.kestra.plugin.core.trigger.Toggle", _B + "execution:Toggle", ("io.kestra.core.tasks.trigger.Toggle",)),
    LazyType("io.kestra.plugin.core.state.Get", _B + "state:Get", ("io.kestra.core.tasks.states.Get",)),
    LazyType("io.kestra.plugin.core.state.Set", _B + "state:Set", ("io.kestra.core.tasks.states.Set",)),
    LazyType("io.kestra.plugin.core.state.Delete", _B + "state:Delete", ("io.kestra.core.tasks.states.Delete",)),
    LazyType("io.kestra.plugin.core.storage.LocalFiles", _B + "storage:LocalFiles", ("io.kestra.core.tasks.storages.LocalFiles",)),
    LazyType("io.kestra.plugin.core.http.Request", _B + "http:Request", ("io.kestra.plugin.fs.http.Request",)),
    LazyType("io.kestra.plugin.core.kv.Set", _B + "kv:Set"),
    LazyType("io.kestra.plugin.core.kv.Get", _B + "kv:Get"),
    LazyType("io.kestra.plugin.core.kv.Delete", _B + "kv:Delete"),
    LazyType("io.kestra.plugin.scripts.shell.Commands", _B + "scripts:ShellCommands", ("io.kestra.core.tasks.scripts.Bash",)),
    LazyType("io.kestra.plugin.scripts.shell.Script", _B + "scripts:ShellScript"),
    LazyType("io.kestra.plugin.scripts.python.Commands", _B + "scripts:PythonCommands"),
    LazyType("io.kestra.plugin.scripts.python.Script", _B + "scripts:PythonScript", ("io.kestra.core.tasks.scripts.Python",)),
    LazyType("io.kestra.plugin.git.Clone", _B + "vcs:Clone"),
    LazyType("io.kestra.plugin.kestra.ee.assets.Set", _B + "assets:Set", ("io.kestra.plugin.ee.assets.Set",)),
    LazyType("io.kestra.plugin.kestra.ee.assets.List", _B + "assets:List", ("io.kestra.plugin.ee.assets.List",)),
    LazyType("io.kestra.plugin.kestra.ee.assets.Delete", _B + "assets:Delete", ("io.kestra.plugin.ee.assets.Delete",)),
)  # fmt: skip

TRIGGERS = (
    LazyType("io.kestra.plugin.core.trigger.Schedule", _B + "triggers:Schedule",
             ("io.kestra.core.models.triggers.types.Schedule",)),
    LazyType("io.kestra.plugin.core.trigger.Flow", _B + "triggers:FlowTrigger", ("io.kestra.core.models.triggers.types.Flow",)),
    LazyType("io.kestra.plugin.core.trigger.Webhook", _B + "triggers:Webhook",
             ("io.kestra.core.models.triggers.types.Webhook",)),
    LazyType("io.kestra.plugin.core.http.Trigger", _B + "http:Trigger", ("io.kestra.plugin.fs.http.Trigger",)),
    LazyType("io.kestra.plugin.ee.assets.EventTrigger", _B + "assets:EventTrigger",
             ("io.kestra.plugin.kestra.ee.assets.EventTrigger",)),
    LazyType("io.kestra.plugin.kestra.ee.assets.FreshnessTrigger", _B + "assets:FreshnessTrigger",
             ("io.kestra.plugin.ee.assets.FreshnessTrigger",)),
)  # fmt: skip

LOG_EXPORTERS = (
    LazyType("io.kestra.plugin.ee.core.log.FileLogExporter", _B + "log_shipper:FileLogExporter"),
)

# by name too: a flow without a script task never imports roost.scripts
TASK_RUNNERS = (
    LazyType("io.kestra.plugin.core.runner.Process", "roost.scripts:Process"),
    LazyType("io.kestra.plugin.scripts.runner.docker.Docker", "roost.scripts:Docker"),
)
