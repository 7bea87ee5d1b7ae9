"""KVM/QEMU virtual machines through libvirt, as Roost tasks (``io.kestra.plugin.kvm.*``)."""

__version__ = "0.1.0"
