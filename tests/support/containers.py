"""podman as it runs on these machines (DEVELOPERS.md, "Containers on these machines"): runc
and cgroupfs, the host's network, and the limits given."""

PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
# Raising a limit past the host's is refused here: `podman run` is given them.
RUN_OPTIONS = ["--network=host", "--ulimit=nofile=16384:16384", "--ulimit=nproc=8192:8192"]
