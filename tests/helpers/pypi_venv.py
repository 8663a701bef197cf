"""A test's Python packages from PyPI, for the tests that check us against a real independent
implementation (the `openai` client for stage 08, gguf-py for stage 05's quantizer): if the running
interpreter cannot import them, the script re-runs itself under a venv (made in the build folder
on first use) that has them, installed with pip. When that cannot be done (no network, no venv
module) the test exits 77, which ctest reports as skipped, never as passed."""
import os
import subprocess
import sys
from pathlib import Path

SKIP = 77


def ensure_packages(venv_dir, modules, pip_specs):
    """Returns when every name in `modules` imports here; else re-executes this script (same
    arguments) under `venv_dir`'s python after `pip install pip_specs` there, or exits 77."""
    missing = []
    for m in modules:
        try:
            __import__(m)
        except ImportError:
            missing.append(m)
    if not missing:
        return
    if os.environ.get("LLM_TEST_VENV_REEXEC"):
        print(f"skipped: {', '.join(missing)} not importable in {sys.executable}")
        sys.exit(SKIP)
    venv = Path(venv_dir)
    py = venv / "bin" / "python"
    check = "import " + ", ".join(modules)
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if subprocess.run([str(py), "-c", check], capture_output=True, timeout=60).returncode != 0:
            print(f"installing {' '.join(pip_specs)} from PyPI into {venv}", flush=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", *pip_specs], check=True, timeout=300,
                           capture_output=True)
    except (subprocess.SubprocessError, OSError) as e:
        print(f"skipped: cannot install {' '.join(pip_specs)} ({e}); pip install them to run this test")
        sys.exit(SKIP)
    env = dict(os.environ, LLM_TEST_VENV_REEXEC="1")
    sys.stdout.flush()
    os.execve(str(py), [str(py)] + sys.argv, env)
