import json
import subprocess
import sys

import pytest

from .conftest import ROOT, make_random_run


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "charmodel", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "", **(env or {})})


@pytest.mark.parametrize("command", ["train", "generate", "evaluate", "inspect", "cells", "lstmvis", "atlas", "ablate", "probe", "saliency", "compare", "export"])
def test_every_subcommand_has_help(command):
    out = cli(command, "--help")
    assert out.returncode == 0 and "--run" in out.stdout


def test_generate_prints_prime_and_new_text(random_run):
    out = cli("generate", "--run", random_run, "--length", 40, "--prime", "Alice ", "--seed", 3, "--samples", 2)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.split("\n" + "-" * 40 + "\n")
    assert first.startswith("Alice ") and len(first) == 46
    assert second.rstrip("\n").startswith("Alice ")


def test_evaluate_json_reports_bpc_chars_and_baselines(tmp_path, alice_text):
    run = make_random_run(tmp_path / "long", alice_text[:30000])
    out = cli("evaluate", "--run", run, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["chars"] == 3000 and result["bpc"] > 0
    assert set(result["baselines"]) == {"gzip", "bz2", "lzma", "3-gram", "5-gram"}


def test_evaluate_leaves_out_compressor_baselines_on_a_tiny_text(random_run):
    out = cli("evaluate", "--run", random_run)
    assert out.returncode == 0 and "over 600 characters" in out.stdout
    assert "no compressor baselines: under 2000 characters" in out.stdout and "gzip" not in out.stdout


def test_evaluate_reads_a_text_file_cleaned_like_the_corpus(random_run, tmp_path):
    text = tmp_path / "crlf.txt"
    text.write_bytes(b"\xef\xbb\xbfAlice was\r\nbeginning   to get\r\n")  # a BOM, CRLF, a run of spaces
    out = cli("evaluate", "--run", random_run, "--text-file", text, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["chars"] == len("Alice was\nbeginning to get\n")


def test_inspect_text_file_is_cleaned_and_json_is_rounded(random_run, tmp_path):
    text = tmp_path / "crlf.txt"
    text.write_bytes(b"Alice\r\nwas")
    out = cli("inspect", "--run", random_run, "--text-file", text, "--layer", 1, "--cell", 2, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["chars"] == list("Alice\nwas")
    assert all(v == round(v, 6) and len(repr(v)) <= 10 for v in result["values"])  # no float32 noise


def test_inspect_json_into_a_closed_pipe_exits_quietly(random_run):
    shell = subprocess.run(f"{sys.executable} -m charmodel inspect --run {random_run} --text-file /dev/stdin "
                           "--json --layer 1 | head -c 10", shell=True, cwd=ROOT, capture_output=True, text=True,
                           input="Alice was " * 3000)
    assert "Traceback" not in shell.stderr and "BrokenPipeError" not in shell.stderr


def test_unknown_characters_can_be_dropped_on_the_command_line(random_run):
    out = cli("generate", "--run", random_run, "--prime", "Alice ☃", "--length", 5)
    assert out.returncode == 2 and "--drop-unknown" in out.stderr
    out = cli("generate", "--run", random_run, "--prime", "Alice ☃", "--length", 5, "--drop-unknown")
    assert out.returncode == 0 and out.stdout.startswith("Alice ") and "☃" not in out.stdout


def test_evaluate_shows_progress_on_stderr_and_quiet_turns_it_off(random_run):
    out = cli("evaluate", "--run", random_run, "--json")
    assert "scoring" in out.stderr and "600" in out.stderr  # tqdm's bar: characters done of all
    json.loads(out.stdout)  # stdout stays one JSON object
    quiet = cli("evaluate", "--run", random_run, "--json", "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "" and json.loads(quiet.stdout) == json.loads(out.stdout)


def test_inspect_json_gives_one_value_per_character(random_run):
    out = cli("inspect", "--run", random_run, "--text", "Alice was", "--layer", 2, "--cell", 5, "--kind", "c", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["chars"] == list("Alice was") and len(result["values"]) == 9


@pytest.mark.parametrize("args, message", [
    (("generate", "--run", "nowhere"), "does not exist"),
    (("generate", "--temperature", -1), "temperature"),
    (("generate", "--prime", "Alice €"), "'€'"),
    (("inspect", "--text", "Alice", "--layer", 7), "--layer 7 is out of range"),
    (("inspect", "--text", "Alice", "--cell", 999), "--cell 999 is out of range"),
    (("evaluate", "--text-file", "missing.txt"), "does not exist"),
    (("generate", "--length", "many"), "invalid int value"),
    (("train", "--text-file", "x.txt", "--units", 0), "units must be"),
    (("train", "--text-file", "x.txt", "--max-mb", 2000), "--max-mb must be more than 0 and at most 1024, not 2000"),
])
def test_user_mistakes_give_one_line_and_status_2(random_run, args, message):
    args = list(args)
    if "--run" not in args:
        args[1:1] = ["--run", random_run]
    out = cli(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_the_old_text_spelling_of_evaluate_still_works_with_a_note(random_run, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("Alice was here", encoding="utf-8")
    old = cli("evaluate", "--run", random_run, "--text", text, "--json", "--quiet")
    new = cli("evaluate", "--run", random_run, "--text-file", text, "--json", "--quiet")
    assert old.returncode == 0 and json.loads(old.stdout) == json.loads(new.stdout)
    assert "--text-file" in old.stderr and new.stderr == ""


@pytest.mark.slow  # times shapes and trains
def test_train_with_minutes_alone_chooses_a_recipe_says_why_and_stops_at_the_budget(tmp_path, small_corpus):
    from charmodel.run import folder as runfolder
    from charmodel.training.recipe import SHAPES

    run = tmp_path / "budget"
    out = cli("train", "--text-file", small_corpus, "--run", run, "--minutes", 0.4, "--seq-len", 20,
              env={"CHARMODEL_CACHE": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    said = [line for line in out.stdout.splitlines() if "passes over your text in 0.4 minutes" in line]
    assert len(said) == 1  # what was chosen and why, in one line
    arch = runfolder.read_config(run)["architecture"]
    assert said[0].startswith(f"{arch['layers']} × {arch['units']}:")
    assert (arch["layers"], arch["units"]) in [(s.layers, s.units) for s in SHAPES]
    assert "budget is spent" in out.stderr
    speeds = json.loads((tmp_path / "speeds.json").read_text())
    assert len(speeds) == len(SHAPES) and all(v > 0 for v in speeds.values())  # timed once, kept for next time


def test_train_flags_out_of_range_are_one_line_before_anything_is_timed(tmp_path, small_corpus):
    out = cli("train", "--text-file", small_corpus, "--run", tmp_path / "r", "--minutes", -1,
              env={"CHARMODEL_CACHE": str(tmp_path)})
    assert out.returncode == 2 and out.stderr.strip() == "error: minutes must be at least 0, not -1.0."
    assert not (tmp_path / "speeds.json").exists() and not (tmp_path / "r").exists()
