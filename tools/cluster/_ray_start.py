"""``ray start`` with every node of the test cluster on 127.0.0.1 (used by ray-up.sh, ray-node.sh).

Ray's CLI replaces a loopback ``--node-ip-address`` with the machine's outward address, and
with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (which keeps drivers and workers on loopback) it
refuses to start a second node. Both decisions live in this process only, so it patches them
and hands over to Ray's own ``ray start``: the raylet, GCS and agents it spawns are told
their address explicitly and inherit the loopback-only environment. Test clusters only.
"""

from __future__ import annotations

import sys


def main() -> int:
    from ray._private import ray_constants, services
    from ray.scripts.scripts import main as ray_main

    def keep_host(host: str) -> str:
        return host

    def loopback(address: str | None = None) -> str:
        return "127.0.0.1"

    services.resolve_ip_for_localhost = keep_host
    services.node_ip_address_from_perspective = loopback  # type: ignore[attr-defined]
    ray_constants.ENABLE_RAY_CLUSTER = True  # a worker node may join a head on this machine
    sys.argv[0] = "ray"
    result = ray_main()  # type: ignore[no-untyped-call]
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
