"""README.md tells the truth: its commands name scripts and flags that exist, the defaults it
quotes equal the yaml, and every path it (or a document in ``docs/``) names is inside the repository.

Conventions the README follows so that these checks can read it:
- commands are in fenced ``bash`` blocks, one per line (``\\`` continues a line);
- a default is quoted as ``\\`key\\` (default \\`value\\`)``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Set

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
RECBOLE_PROPERTIES = Path(__import__("recbole").__file__).parent / "properties"
DEFAULT_FILES = [ROOT / "properties" / "model" / "REG4Rec.yaml", ROOT / "properties" / "alignment.yaml",
                 ROOT / "properties" / "tokenizer.yaml"]


def bash_blocks(text: str) -> List[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def python_commands(text: str) -> List[List[str]]:
    """Every ``python ...`` command of the README's bash blocks as argv (after ``python``)."""
    commands = []
    for block in bash_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line)  # shell comment
            for part in re.split(r"&&|\|\|", line):
                words = shlex.split(part.strip().replace("<", "_").replace(">", "_"))
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # env assignments
                    words = words[1:]
                if words and re.fullmatch(r"(\S*/)?python3?", words[0]):
                    commands.append(words[1:])
    return commands


def quoted_defaults(text: str) -> Dict[str, str]:
    return dict(re.findall(r"`(\w+)` \(default `?([^`)]+?)`?\)", text))


@lru_cache(maxsize=None)
def known_config_keys() -> Set[str]:
    """Config keys RecBole or our property files define (any of them may be a ``--key=value``)."""
    keys: Set[str] = set()
    files = list((ROOT / "properties").rglob("*.yaml")) + list((ROOT / "dataset").glob("*.yaml"))
    files += list(RECBOLE_PROPERTIES.rglob("*.yaml"))
    for path in files:
        data = yaml.safe_load(path.read_text()) or {}
        if isinstance(data, dict):
            keys.update(str(k) for k in data)
    return keys


@lru_cache(maxsize=None)
def help_text(entry: tuple) -> str:
    """``python <entry> --help`` output (entry: a script path or ``('-m', module)``)."""
    out = subprocess.run([sys.executable, *entry, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{' '.join(entry)} --help failed:\n{out.stderr[-2000:]}"
    return out.stdout


def entry_and_args(argv: List[str]):
    """Split a command into what answers ``--help`` and its arguments: ``('-m', module)``, a
    script, or a script and its subcommand (a first argument that the script's help lists)."""
    if argv[0] == "-m":
        return ("-m", argv[1]), argv[2:]
    entry, args = (argv[0],), argv[1:]
    if args and not args[0].startswith("-") and re.search(rf"\b{re.escape(args[0])}\b", help_text(entry)):
        return (*entry, args[0]), args[1:]
    return entry, args


COMMANDS = python_commands(README)


def test_readme_has_commands_and_defaults_to_check():
    assert len(COMMANDS) >= 5, COMMANDS
    assert quoted_defaults(README), "README quotes no default as `key` (default `value`)"


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_names_existing_script_and_flags(argv):
    entry, args = entry_and_args(argv)
    if entry[0] == "-m":
        if entry[1] == "pytest":
            return
        import importlib.util

        assert importlib.util.find_spec(entry[1]) is not None, f"module {entry[1]} does not exist"
    else:
        assert (ROOT / entry[0]).is_file(), f"README runs {entry[0]}, which is not in the repository"
    helptext = help_text(entry)
    for arg in args:
        if not arg.startswith("--"):
            continue
        flag = arg[2:].split("=", 1)[0]
        assert f"--{flag}" in helptext or flag in known_config_keys(), (
            f"README passes --{flag} to {' '.join(entry)}, which neither lists it in --help nor knows it as a config key"
        )


#: README commands cheap enough to run verbatim here (the others are run at tiny sizes by the tests of
#: their own command, and here only answer --help)
CHEAP = ("pars-sweep-report", "--clean")


@pytest.mark.parametrize("argv", [c for c in COMMANDS if any(word in c for word in CHEAP)],
                         ids=lambda c: " ".join(c)[:60])
def test_cheap_readme_commands_run_as_written(argv, tmp_path):
    """Run from the repository (paths in the command are relative to it), globs expanded as a shell
    would; the cache cleaner works on an empty cache folder of its own."""
    import glob

    args = [a for word in argv for a in (sorted(glob.glob(word, root_dir=ROOT)) if set(word) & set("*?") else [word])]
    if "--clean" in args:
        args.append(f"--tokenizer_cache_dir={tmp_path}")
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip(), "the command printed nothing"


def test_readme_defaults_equal_the_yaml():
    values: Dict[str, object] = {}
    for path in DEFAULT_FILES:
        values.update(yaml.safe_load(path.read_text()))
    for key, quoted in quoted_defaults(README).items():
        assert key in values, f"README quotes a default for {key!r}, which no default file defines"
        assert yaml.safe_load(quoted) == values[key], f"README: {key} default {quoted}; yaml: {values[key]!r}"


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_readme_and_docs_name_only_paths_inside_the_repository(document):
    text = document.read_text()
    name = document.relative_to(ROOT)
    assert "../" not in text.replace("](../", "]("), f"{name} points outside the repository"
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        assert (document.parent / target).resolve().is_relative_to(ROOT), f"{name} links outside the repository: {target}"
        assert (document.parent / target).exists(), f"{name} links to {target}, which does not exist"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    top = {path.split("/")[0] for path in tracked if "/" in path}
    for token in re.findall(r"`([\w./-]+/[\w./-]*)`", text):
        if token.split("/")[0] in top and "*" not in token and "<" not in token:
            assert (ROOT / token).exists(), f"{name} names {token}, which does not exist"
