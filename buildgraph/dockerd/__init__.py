"""Everything bg says to the Docker daemon, in one package (no other module opens its socket).

    address.py     where the daemon is: DOCKER_HOST → a unix socket path, or the guardian's address
    api.py         EngineAPI: the few GETs a null run needs, over the unix socket, without the SDK
    ping.py        does a daemon answer, and if not, why (one line for an exit-3 message)
    sdk.py         the docker SDK, imported once and whole, under a lock (for pulls, builds, runs)
    containers.py  who owns a container (labels), removing one, reaping those a killed bg left
    policy.py      the container policy (user, confinement, network, mounts, GPUs, labels) shared by
                   the docker executor (SDK keyword arguments) and `bg shell` (`docker run` flags)

Nothing is imported here: a null run reads two GETs through `api` and must not pay for the rest.
"""
