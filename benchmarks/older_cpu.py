"""Does the offline model's build run on an older CPU than the one that built it?

Runs install.py's own check (serve.py --check: load the model, answer one chat request) under QEMU's
user-mode emulator with an older CPU model: by default a Haswell (2013: AVX2, FMA, F16C, BMI2, the
x86-64-v3 level, and no AVX-512). Once for the llama-cpp-python installed in this environment, and
once for each other wheel named with --wheel, e.g. one pip built natively:

    .venv/bin/python benchmarks/older_cpu.py [--cpu Haswell] [--wheel path/to/llama_cpp_python-...whl]

Needs QEMU's user-mode emulator (Debian/Ubuntu: sudo apt-get install qemu-user) on x86-64 Linux.
Prints one line per build: its answer and the time it took (emulated: ~50x slower than native), or
the signal it died of (SIGILL: the build uses an instruction that CPU lacks). QEMU emulates no AMX:
for AMX, the proof is the disassembly in tests/test_local_llm_build.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVE = REPO_ROOT / "llmops_project" / "local_llm" / "serve.py"
sys.path.insert(0, str(REPO_ROOT))

from devtools.processes import load_average  # noqa: E402

TIMEOUT_SECONDS = 900  # the check reads ~170 prompt tokens and writes ~30, emulated: 1-3 min on 2 cores


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", default="Haswell", help="QEMU's CPU model (qemu-x86_64 -cpu help lists them)")
    parser.add_argument(
        "--wheel", type=Path, action="append", default=[], help="another llama-cpp-python wheel to check (repeatable)"
    )
    return parser.parse_args(argv)


def check(qemu: str, cpu: str, python_path: str | None) -> str:
    """serve.py --check on the emulated CPU, with llama_cpp from ``python_path`` (None: the installed one)."""
    env = {**os.environ, "PYTHONPATH": python_path} if python_path else dict(os.environ)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [qemu, "-cpu", cpu, sys.executable, str(SERVE), "--check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {TIMEOUT_SECONDS} s"
    seconds = time.monotonic() - started
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return f"died of {name} (signal {-done.returncode}) after {seconds:.0f} s: it uses an instruction a {cpu} lacks"
    if done.returncode != 0:
        return f"failed (exit {done.returncode}) after {seconds:.0f} s: {done.stderr.strip().splitlines()[-1:]}"
    answered = [line for line in done.stdout.splitlines() if line.startswith("the offline model answered")]
    return f"answered in {seconds:.0f} s: {(answered or done.stdout.strip().splitlines()[-1:])[0]}"


def main(argv=None) -> None:
    args = parse_args(argv)
    qemu = shutil.which("qemu-x86_64")
    if qemu is None or not sys.platform.startswith("linux"):
        sys.exit("error: no qemu-x86_64 on PATH. Fix: on x86-64 Linux, sudo apt-get install qemu-user")
    print(f"On an emulated {args.cpu} (load average {load_average()} at the start):", flush=True)
    print(f"  installed llama-cpp-python: {check(qemu, args.cpu, None)}", flush=True)
    for wheel in args.wheel:
        if not wheel.is_file():
            sys.exit(f"error: --wheel {wheel}: no such file. Fix: name a llama_cpp_python-*.whl file")
        with tempfile.TemporaryDirectory() as target:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, str(wheel)],
                check=True,
            )
            print(f"  {wheel.name} ({wheel.parent.name}): {check(qemu, args.cpu, target)}", flush=True)


if __name__ == "__main__":
    main()
