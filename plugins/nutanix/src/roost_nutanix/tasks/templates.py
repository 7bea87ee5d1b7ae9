"""AHV template tasks (VMM v4 content API): templates from VMs or versions, VMs from templates."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from roost import AssetBundle, Dynamic, RunContext, TaskError

from roost_nutanix.client import PrismClient, q
from roost_nutanix.tasks.base import AHV, TEMPLATES, AsyncTask, PrismTasks, TaskOutput, affected
from roost_nutanix.tasks.shapes import template_asset, vm_asset


class TemplateOutput(TaskOutput):
    """A template operation."""

    template_ext_id: str | None = None
    """extId of the template (known once the task completed)."""
    template_version_ext_id: str | None = None
    """extId of the template's active version."""


class _TemplateTask(AsyncTask):
    """Creates a template from a source (a VM or a template version)."""

    template_name: Dynamic[str]
    """Name of the new template."""
    template_description: Dynamic[str] | None = None
    """Description of the new template."""
    version_name: Dynamic[str] | None = None
    """Name of the template's first version."""
    version_description: Dynamic[str] | None = None
    """Description of the template's first version."""
    is_active_version: Dynamic[bool] | None = None
    """Make the version the active one (Prism's default is true)."""
    is_gc_override_enabled: Dynamic[bool] | None = None
    """Allow guest customization to be overridden when VMs are deployed from the template."""

    class Out(TemplateOutput):
        pass

    def _create(
        self, ctx: RunContext, client: PrismClient, source: dict[str, Any], what: str
    ) -> tuple[str, Any, Any]:
        spec = {
            "versionName": self.version_name,
            "versionDescription": self.version_description,
            "isActiveVersion": self.is_active_version,
            "isGcOverrideEnabled": self.is_gc_override_enabled,
            "versionSource": source,
        }
        body = {
            "templateName": self.template_name,
            "templateDescription": self.template_description,
            "templateVersionSpec": {k: v for k, v in spec.items() if v is not None},
        }
        body = {k: v for k, v in body.items() if v is not None}
        task_id, task = PrismTasks(self, ctx, client).run(
            what, lambda: client.task_ref(client.call("POST", TEMPLATES, body=body), "POST templates")
        )
        template = None
        if task is not None:
            ids = affected(task, "template")
            if not ids:
                raise TaskError(f"Prism task {task_id} succeeded but names no template (entitiesAffected)")
            template, _ = client.get(f"{TEMPLATES}/{q(ids[0])}", "GET template")
        return task_id, task, template

    def _out(self, task_id: str, task: Any, template: Any) -> Any:
        if template is None:
            return self.Out(task_ext_id=task_id, task_status="RUNNING")
        return self.Out(
            task_ext_id=task_id,
            task_status=task.get("status"),
            template_ext_id=template.get("extId"),
            template_version_ext_id=(template.get("templateVersionSpec") or {}).get("extId"),
        )


class ConvertVmToTemplate(_TemplateTask, type=AHV + "ConvertVmToTemplate"):
    """Create a template from an AHV VM (its configuration and disks); the VM itself stays."""

    vm_ext_id: Dynamic[str]
    """extId of the source VM."""

    def run(self, ctx: RunContext) -> Any:
        with self.client(ctx) as client:
            vm, _ = client.get_vm(self.vm_ext_id)
            ctx.logger.info(
                "creating template '%s' from VM %s ('%s')", self.template_name, self.vm_ext_id, vm.get("name")
            )
            source = {"$objectType": "vmm.v4.content.TemplateVmReference", "extId": self.vm_ext_id}
            task_id, task, template = self._create(
                ctx, client, source, f"template '{self.template_name}' from VM"
            )
        if template is not None:
            prism = self.prism()
            self._assets = [
                AssetBundle(
                    inputs=[vm_asset(vm, prism)],
                    outputs=[
                        template_asset(
                            template["extId"], prism, name=self.template_name, sourceVm=self.vm_ext_id
                        )
                    ],
                )
            ]
        return self._out(task_id, task, template)


class CloneTemplate(_TemplateTask, type=AHV + "CloneTemplate"):
    """Create a new template from a version of an existing one, optionally overriding its VM configuration."""

    template_version_ext_id: Dynamic[str]
    """extId of the template version to start from."""
    vm_config_override: Dynamic[dict[str, Any]] | None = None
    """VM configuration overrides: name, numSockets, numCoresPerSocket, numThreadsPerCore, memorySizeBytes, nics, guestCustomization."""

    def run(self, ctx: RunContext) -> Any:
        source: dict[str, Any] = {
            "$objectType": "vmm.v4.content.TemplateVersionReference",
            "versionId": self.template_version_ext_id,
        }
        if self.vm_config_override:
            source["overrideVmConfig"] = self.vm_config_override
        with self.client(ctx) as client:
            ctx.logger.info(
                "creating template '%s' from template version %s",
                self.template_name,
                self.template_version_ext_id,
            )
            task_id, task, template = self._create(
                ctx, client, source, f"template '{self.template_name}' from a version"
            )
        if template is not None:
            prism = self.prism()
            self._assets = [
                AssetBundle(
                    inputs=[template_asset(self.template_version_ext_id, prism, kind="vm-template-version")],
                    outputs=[
                        template_asset(
                            template["extId"],
                            prism,
                            name=self.template_name,
                            sourceVersion=self.template_version_ext_id,
                        )
                    ],
                )
            ]
        return self._out(task_id, task, template)


class ConvertTemplateToVm(AsyncTask, type=AHV + "ConvertTemplateToVm"):
    """Deploy AHV VMs from a template version (the template stays)."""

    template_ext_id: Dynamic[str]
    """extId of the template."""
    template_version_ext_id: Dynamic[str] | None = None
    """extId of the version to deploy; the template's active version when unset."""
    cluster_ext_id: Dynamic[str]
    """extId of the cluster the VMs are created on."""
    number_of_vms: Dynamic[int] = 1
    """Number of VMs to deploy."""
    vm_name: Dynamic[str] | None = None
    """Name of the (first) VM; further VMs get -2, -3... suffixes."""
    vm_config_override: Dynamic[dict[str, Any]] | None = None
    """Configuration overrides of every VM: numSockets, numCoresPerSocket, memorySizeBytes, nics, guestCustomization..."""

    class Out(TaskOutput):
        vm_ext_ids: list[str] = Field(default_factory=list)
        """extIds of the deployed VMs."""
        vm_ext_id: str | None = None
        """extId of the first deployed VM."""

    def run(self, ctx: RunContext) -> ConvertTemplateToVm.Out:
        if self.number_of_vms < 1:
            raise TaskError(f"numberOfVms must be 1 or more (got {self.number_of_vms})")
        with self.client(ctx) as client:
            template, _ = client.get(f"{TEMPLATES}/{q(self.template_ext_id)}", "GET template")
            version = self.template_version_ext_id or (template.get("templateVersionSpec") or {}).get("extId")
            overrides: dict[str, Any] = {}
            for i in range(self.number_of_vms):
                override = dict(self.vm_config_override or {})
                if self.vm_name:
                    override["name"] = self.vm_name if i == 0 else f"{self.vm_name}-{i + 1}"
                if override:
                    overrides[str(i)] = override
            body: dict[str, Any] = {
                "numberOfVms": self.number_of_vms,
                "clusterReference": self.cluster_ext_id,
            }
            if version:
                body["versionId"] = version
            if overrides:
                body["overrideVmConfigMap"] = overrides
            ctx.logger.info(
                "deploying %d VM(s) from template %s ('%s') on cluster %s",
                self.number_of_vms,
                self.template_ext_id,
                template.get("templateName"),
                self.cluster_ext_id,
            )
            path = f"{TEMPLATES}/{q(self.template_ext_id)}/$actions/deploy"
            task_id, task = PrismTasks(self, ctx, client).run(
                f"deployment of template '{template.get('templateName')}'",
                lambda: client.task_ref(client.call("POST", path, body=body), "POST deploy"),
            )
            if task is None:
                return self.Out(task_ext_id=task_id, task_status="RUNNING")
            vm_ids = affected(task, "vm")
            vms = [client.get_vm(ext_id)[0] for ext_id in vm_ids]
        prism = self.prism()
        self._assets = [
            AssetBundle(
                inputs=[template_asset(self.template_ext_id, prism, name=template.get("templateName"))],
                outputs=[vm_asset(vm, prism) for vm in vms],
            )
        ]
        return self.Out(
            task_ext_id=task_id,
            task_status=task.get("status"),
            vm_ext_ids=vm_ids,
            vm_ext_id=vm_ids[0] if vm_ids else None,
        )
