"""The README's two commands are what CI runs, and its command examples parse as written."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from lbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _bash_blocks():
    return re.findall(r"```bash\n(.*?)```", README, re.S)


def _commands():
    """Command lines of the README's bash blocks (continuations joined, comments dropped)."""
    out = []
    for block in _bash_blocks():
        for cmd in block.replace("\\\n", " ").splitlines():
            cmd = cmd.split(" # ")[0].strip()
            if cmd and not cmd.startswith("#"):
                out.append(cmd)
    return out


def test_two_commands_come_first_and_use_the_virtual_environment():
    first = [c for c in _commands()][:2]
    assert first == [
        "bash scripts/setup.sh && .venv/bin/lbench run -c default",
        "bash scripts/setup.sh && HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q",
    ]
    assert README.index("## Two commands") < README.index("## Commands")


def test_ci_runs_the_second_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/setup.sh" in ci and ".venv/bin/python -m pytest -q" in ci
    assert "pip install" not in ci and "python3 -m pip" not in ci  # all installs go through setup.sh


def test_setup_script_options():
    script = ROOT / "scripts" / "setup.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    bad = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option --bogus" in bad.stderr
    usage = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--gpu" in usage.stdout and ".venv" in usage.stdout
    text = script.read_text()
    assert "-m venv .venv" in text and "python3-venv" in text and '".[$EXTRA,test]"' in text


EXAMPLES = [
    c
    for c in _commands()
    if c.startswith("lbench ") and c.split()[1] in ("run", "fit", "select") and "myproject/" not in c
]  # the "Label your own images" walk-through runs in tests/test_walkthrough.py, on a generated folder


def test_readme_has_examples():
    assert {c.split()[1] for c in EXAMPLES} == {"run", "fit", "select"}


@pytest.mark.parametrize("command", EXAMPLES)
def test_readme_example_parses(command, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    args = shlex.split(command)[1:]
    with pytest.raises(SystemExit) as e:
        main([*args, "--print_config"])
    assert e.value.code in (0, None), capsys.readouterr().err
    assert "class_path" in capsys.readouterr().out


def test_readme_python_example_runs_as_written():
    """The reuse example (ProxyClassifier + FlexMatch in a plain Lightning script) trains semi-supervised."""
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 1
    spaces: list[dict] = [{} for _ in blocks]
    for block, namespace in zip(blocks, spaces, strict=True):  # each block runs on its own
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    model = spaces[0]["model"]  # the other blocks are checked by their own tests (test_reuse_selection.py)
    assert model.trainer.global_step == 3 * (100 // 16)  # min_size: as many steps as labeled batches
    assert "train/unsup_loss" in model.trainer.callback_metrics  # the FlexMatch path, not plain supervised
    assert model.ssl.selected_label is not None and len(model.ssl.selected_label) == 1000
