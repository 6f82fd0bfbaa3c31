#!/usr/bin/env python3
"""Random images and maps through XAPI's fork and through ours.

Each case makes a base and an input (raw files, sizes often not a multiple
of the cluster size), the maps qemu-img map would give of their data
(split into several entries, as qemu-img splits them where host offsets
jump), and runs both programs with the fork's options: plain, with the
input's maps, --diff without maps and --diff with maps.  Ours must be
valid and read as the input (a delta once rebased onto the base); where
the fork's output is valid and right too, ours must be the same bytes.

Usage: xapi_differential.py PROGRAM FORK|- CASES SEED
Prints one line per failure and a summary; exit status 1 on a failure.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile


def clusters_to_extents(rng, clusters, cluster_size, size):
    """qemu-img map-like entries covering [0, size): data runs split at
    random points, holes between them."""
    entries = []
    runs = []
    for c in sorted(clusters):
        if runs and runs[-1][1] == c:
            runs[-1][1] = c + 1
        else:
            runs.append([c, c + 1])
    pos = 0
    for first, end in runs:
        start, stop = first * cluster_size, min(end * cluster_size, size)
        if start > pos:
            entries.append({"start": pos, "length": start - pos, "depth": 0,
                            "present": False, "zero": True, "data": False})
        # Split the run where a fragmented image's host offsets would jump.
        cuts = sorted(set(rng.randrange(first, end) for _ in
                          range(rng.randrange(0, 3))) - {first})
        bounds = [first] + cuts + [end]
        for a, b in zip(bounds, bounds[1:]):
            s, e = a * cluster_size, min(b * cluster_size, size)
            entries.append({"start": s, "length": e - s, "depth": 0,
                            "present": True, "zero": False, "data": True,
                            "offset": 1 << 20})
        pos = stop
    if pos < size:
        entries.append({"start": pos, "length": size - pos, "depth": 0,
                        "present": False, "zero": True, "data": False})
    return entries


def write_image(path, size, clusters, cluster_size, content):
    with open(path, "wb") as f:
        f.truncate(size)
        for c in clusters:
            off = c * cluster_size
            if off >= size:
                continue
            f.seek(off)
            f.write(content[c][:size - off])


def make_case(rng, directory):
    cluster_size = rng.choice([4096, 65536])
    clusters = rng.randrange(4, 48)

    def size_of(n):
        size = n * cluster_size
        if rng.random() < 0.5:
            size -= rng.randrange(1, cluster_size // 512) * 512
        return size

    size_in, size_base = size_of(clusters), size_of(clusters)
    if rng.random() < 0.3:
        size_base = size_of(max(1, clusters - rng.randrange(1, 4)))
    elif rng.random() < 0.3:
        size_base = size_of(clusters + rng.randrange(1, 4))
    n_in = -(-size_in // cluster_size)
    n_base = -(-size_base // cluster_size)

    def random_cluster(tag):
        r = random.Random(tag)
        data = bytearray(r.getrandbits(8) for _ in range(64))
        return bytes(data) * (cluster_size // 64)

    base_clusters = {c for c in range(n_base) if rng.random() < 0.4}
    base_content = {c: random_cluster(rng.random()) for c in base_clusters}
    in_clusters, in_content = set(), {}
    for c in range(n_in):
        if c in base_clusters:
            roll = rng.random()
            if roll < 0.5:      # unchanged
                in_clusters.add(c)
                in_content[c] = base_content[c]
            elif roll < 0.8:    # rewritten
                in_clusters.add(c)
                in_content[c] = random_cluster(rng.random())
            # else: discarded in the input
        elif rng.random() < 0.25:
            in_clusters.add(c)
            in_content[c] = random_cluster(rng.random())
    paths = {k: os.path.join(directory, k) for k in
             ("in.raw", "base.raw", "in.map", "in.info", "base.map",
              "base.info")}
    write_image(paths["in.raw"], size_in, in_clusters, cluster_size,
                in_content)
    write_image(paths["base.raw"], size_base, base_clusters, cluster_size,
                base_content)
    for name, size, cl in (("in", size_in, in_clusters),
                           ("base", size_base, base_clusters)):
        with open(paths[name + ".map"], "w") as f:
            json.dump(clusters_to_extents(rng, cl, cluster_size, size), f)
        with open(paths[name + ".info"], "w") as f:
            json.dump({"virtual-size": size, "filename": name + ".qcow2",
                       "cluster-size": cluster_size, "format": "qcow2"}, f)
    return cluster_size, paths


def run(command, paths, out):
    fds = {3: "in.map", 4: "in.info", 5: "base.map", 6: "base.info"}
    files = {fd: open(paths[name]) for fd, name in fds.items()}
    try:
        with open(out, "wb") as f:
            r = subprocess.run(command, stdout=f, stderr=subprocess.PIPE,
                               pass_fds=list(files),
                               preexec_fn=lambda: [os.dup2(files[fd].fileno(), fd) for fd in files])
        return r.returncode, r.stderr.decode(errors="replace")
    finally:
        for f in files.values():
            f.close()


def reads_as(image, raw, base=None, directory="."):
    """qemu-img check is clean, the image (rebased onto a copy of base for
    a delta) reads as raw, and stays clean once QEMU writes to it."""
    if subprocess.run(["qemu-img", "check", "-q", image],
                      capture_output=True).returncode != 0:
        return False
    if base:
        copy = os.path.join(directory, "backing.raw")
        shutil.copyfile(base, copy)
        if subprocess.run(["qemu-img", "rebase", "-q", "-u", "-b", copy,
                           "-F", "raw", image],
                          capture_output=True).returncode != 0:
            return False
    if subprocess.run(["qemu-img", "compare", "-q", "-f", "raw", "-F",
                       "qcow2", raw, image],
                      capture_output=True).returncode != 0:
        return False
    # A cluster counted twice leaves a refcount past the end of the file,
    # which qemu-img check does not look at; QEMU then allocates around
    # it, which check sees as a leak.
    probe = os.path.join(directory, "probe.qcow2")
    shutil.copyfile(image, probe)
    size = -(-os.path.getsize(raw) // 512) * 512
    return (subprocess.run(["qemu-io", "-f", "qcow2", "-c",
                            f"write -q -P 7 0 {size}", probe],
                           capture_output=True).returncode == 0 and
            subprocess.run(["qemu-img", "check", "-q", probe],
                           capture_output=True).returncode == 0)


def keep(directory, case, mode):
    """With Q2S_KEEP_FAILED=DIR, a failed case's files are kept there."""
    where = os.environ.get("Q2S_KEEP_FAILED")
    if where:
        shutil.copytree(directory, os.path.join(where, f"{case}-{mode}"),
                        dirs_exist_ok=True)


def main():
    program, fork, cases, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    failures = identical = fork_wrong = 0
    modes = {
        "plain": [],
        "maps": ["--json-header-map", "3", "--json-header-info", "4"],
        "diff": ["--diff", "BASE"],
        "diff+maps": ["--diff", "BASE", "--json-header-map", "3",
                      "--json-header-info", "4", "--json-header-diff-map",
                      "5", "--json-header-diff-info", "6"],
    }
    for case in range(cases):
        with tempfile.TemporaryDirectory(dir=os.getcwd()) as directory:
            cluster_size, paths = make_case(rng, directory)
            for mode, args in modes.items():
                args = [paths["base.raw"] if a == "BASE" else a for a in args]
                args += ["-c", str(cluster_size), paths["in.raw"]]
                delta = "--diff" in args
                ours = os.path.join(directory, "ours.qcow2")
                theirs = os.path.join(directory, "theirs.qcow2")
                status, err = run([program] + args, paths, ours)
                what = f"case {case} (seed {seed}, -c {cluster_size}) {mode}"
                if status != 0:
                    print(f"{what}: ours failed: {err.strip()}")
                    failures += 1
                    continue
                if not reads_as(ours, paths["in.raw"],
                                paths["base.raw"] if delta else None,
                                directory):
                    print(f"{what}: ours is not valid or reads wrong")
                    failures += 1
                    continue
                if fork == "-":
                    continue
                status, err = run(["python3", fork] + args, paths, theirs)
                if status != 0 or not reads_as(
                        theirs, paths["in.raw"],
                        paths["base.raw"] if delta else None, directory):
                    fork_wrong += 1
                    continue
                # reads_as rebased ours; do the same to the fork's output
                # before comparing bytes.
                with open(ours, "rb") as a, open(theirs, "rb") as b:
                    if a.read() != b.read():
                        print(f"{what}: the fork's output is right, ours "
                              f"has other bytes")
                        keep(directory, case, mode)
                        failures += 1
                        continue
                identical += 1
    print(f"{failures} failures, {identical} identical to the fork, "
          f"{fork_wrong} where the fork was wrong")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
