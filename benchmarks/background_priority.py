"""Does a low-priority background job really give way? The question behind make demo's background build.

    python benchmarks/background_priority.py [--repeat 3] [--spinners 2] [--work 60000000]

make demo compiles llama.cpp in the background while the ML steps run (present_runner.OfflineBuild),
in a session of its own so that stopping the walk stops the whole build. Linux with autogroup
scheduling (``/proc/sys/kernel/sched_autogroup_enabled`` = 1: most desktops and many VMs) shares the
CPU fairly between sessions first, and only then by nice value within each: so a nice value alone
does not hold such a job back. ``present_runner.lower_priority`` also lowers its session's nice
(``/proc/self/autogroup``).

This script times a one-core job (a Python loop, started in its own session as the walk starts each
step) three ways: alone; beside ``--spinners`` busy loops at nice BUILD_NICE in their own session
(the build before); beside the same loops started with ``lower_priority`` (the build now). It prints
the best and median of ``--repeat`` runs and the load average. On a machine without autogroup
(macOS, Windows, a kernel without it) the last two are alike: nice alone already works there.

Measured 2026-12-06 17:45 on 2 vCPUs (AMD EPYC), load 0.2 at the start, 1.6 at the end, medians of
3: alone 4.92 s, beside nice-only spinners 7.08 s, beside spinners with their session's nice too 4.76 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import present_runner  # noqa: E402  what make demo's walk uses for its background build
from devtools.processes import load_average  # noqa: E402

SPIN = "while True: pass"


def nice_only() -> None:
    """The build before 5e819a0: nice, and nothing for its session."""
    os.nice(present_runner.BUILD_NICE)


SETTINGS = {  # name -> the spinners' preexec_fn (None: no spinners)
    "alone": None,
    f"beside spinners at nice {present_runner.BUILD_NICE}, own session": nice_only,
    "beside spinners, their session's nice lowered too (lower_priority)": present_runner.lower_priority,
}


def timed_job(work: int) -> float:
    """Wall seconds of a one-core loop of ``work`` steps, in its own session like a walk's step."""
    started = time.perf_counter()
    code = f"n = 0\nfor _ in range({work}): n += 1"
    subprocess.run([sys.executable, "-c", code], start_new_session=True, check=True)
    return time.perf_counter() - started


def measure(preexec, spinners: int, work: int) -> float:
    spinning = []
    if preexec is not None:
        spinning = [
            subprocess.Popen([sys.executable, "-c", SPIN], start_new_session=True, preexec_fn=preexec)
            for _ in range(spinners)
        ]
        time.sleep(0.5)  # let them start spinning
    try:
        return timed_job(work)
    finally:
        for process in spinning:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each setting (interleaved)")
    parser.add_argument("--spinners", type=int, default=os.cpu_count() or 2, help="busy background loops")
    parser.add_argument("--work", type=int, default=60_000_000, help="steps of the timed one-core loop")
    args = parser.parse_args()
    if not hasattr(os, "nice"):
        sys.exit("error: this platform has no nice values (Windows): nothing to measure")

    autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled")
    state = autogroup.read_text().strip() if autogroup.exists() else "not available"
    print(f"load average at start: {load_average()}   (cores: {os.cpu_count()}; autogroup: {state})", flush=True)
    times = {name: [] for name in SETTINGS}
    for attempt in range(1, args.repeat + 1):
        for name, preexec in SETTINGS.items():
            times[name].append(measure(preexec, args.spinners, args.work))
            print(f"#{attempt}  {name}: {times[name][-1]:.2f} s", flush=True)
    print()
    for name, values in times.items():
        print(f"{name:70s} best {min(values):5.2f} s   median {statistics.median(values):5.2f} s")
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
