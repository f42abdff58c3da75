"""A third-party attack kind: the probe under another name, registered on import."""

from mlac.attacks import ProbeAttack, register_attack

register_attack("thirdparty_probe", ProbeAttack(), replace=True)
