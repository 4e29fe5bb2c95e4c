"""What a benchmark ran on: hardware, library versions, date, git commit and the exact command."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Optional

PACKAGES = ("recbole-reg4rec", "recbole", "torch", "numpy", "pandas", "scipy", "scikit-learn", "matplotlib")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit(repo: Path) -> Optional[str]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")


def collect_environment(command: str) -> Dict[str, Any]:
    """Hardware, versions, date and ``command`` as a JSON-able dict."""
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        import psutil

        ram_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is a dependency
        ram_gb = None
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "cwd": os.getcwd(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gb": ram_gb,
        "gpus": gpus,
        "cuda": torch.version.cuda,
        "versions": versions,
        "git_commit": _git_commit(Path(__file__).resolve().parents[2]),
    }


def environment_markdown(env: Dict[str, Any]) -> str:
    lines = [
        "# Benchmark environment",
        "",
        f"- date (UTC): {env['date_utc']}",
        f"- command: `{env['command']}`",
        f"- working directory: `{env['cwd']}`",
        f"- git commit: {env.get('git_commit')}",
        f"- CPU: {env['cpu']} ({env['usable_cpus']} usable of {env['cpu_count']} cores, torch threads {env['torch_threads']})",
        f"- RAM: {env['ram_gb']} GB",
        f"- GPU: {', '.join(env['gpus']) if env['gpus'] else 'none'} (CUDA {env['cuda']})",
        f"- Python {env['python']} on {env['platform']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v),
    ]
    if env.get("finished_utc"):
        lines.append(f"- finished (UTC): {env['finished_utc']}")
    return "\n".join(lines) + "\n"
