"""The command line's rough edges: one-line errors and exit codes (2 for bad options and inputs that name nothing,
130 after Ctrl-C, 141 on a closed pipe, no traceback for an output folder that does not exist), --version, help text
on every option, --remote given a stage URL, and `embed -` reading names from stdin."""

from __future__ import annotations

import argparse
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from image_similarity.adapters import cli
from image_similarity.adapters.cli.common import endpoint
from PIL import Image

CLI = [str(Path(sys.executable).parent / "image-similarity")]


def exits(run_cli, args: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        run_cli(args)
    return exited.value.code


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_a_missing_or_empty_folder_is_an_error_not_an_empty_result(album, run_cli, tmp_path, capsys, case):
    folder = str(tmp_path / "no-such-folder") if case == "missing" else str(album.empty)
    for command in (["embed", folder, "--out", str(tmp_path / "v.npy")], ["duplicates", folder]):
        assert exits(run_cli, command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"image-similarity: {folder}: ")
        assert ("no such file or folder" if case == "missing" else "no image files in this folder") in err
    assert not (tmp_path / "v.npy").exists()


def test_outputs_into_a_missing_folder_fail_before_any_work(album, run_cli, tmp_path, capsys, service, monkeypatch):
    embedded = []
    monkeypatch.setattr(service.embedder, "embed", lambda batch: embedded.append(len(batch)))
    missing = tmp_path / "not-made-yet"
    for command in (["embed", str(album.root / "misc"), "--out", str(missing / "v.npy")],
                    ["duplicates", str(album.root / "misc"), "--json", str(missing / "d.json")],
                    ["duplicates", str(album.root / "misc"), "--html", str(missing / "r.html")],
                    ["duplicates", str(album.root / "misc"), "--json", str(tmp_path)]):
        status = exits(run_cli, command)
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert "does not exist" in err or "is a folder: name a file to write" in err
    assert embedded == []


@pytest.mark.parametrize("option", [["--batch-size", "0"], ["--batch-size", "-3"], ["--workers", "x"],
                                    ["--threshold", "1.5"], ["--keep", "prettiest"]])
def test_bad_option_values_are_usage_errors(album, run_cli, capsys, option):
    assert exits(run_cli, ["duplicates", str(album.root / "misc"), *option]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("image-similarity duplicates: error:")


def test_dry_run_without_move_to_is_a_usage_error(album, run_cli, capsys):
    assert exits(run_cli, ["duplicates", str(album.root / "misc"), "--dry-run"]) == 2
    assert "--dry-run and --log go with --move-to DIR" in capsys.readouterr().err


def test_version_names_the_program_and_the_model(run_cli, capsys, service):
    assert exits(run_cli, ["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"image-similarity 1.0.0 (model {service.model_version})"


def test_every_option_of_every_command_has_help():
    def subcommands(parser: argparse.ArgumentParser, prefix: str = ""):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, command in action.choices.items():
                    yield f"{prefix}{name}", command
                    yield from subcommands(command, f"{prefix}{name} ")

    commands = dict(subcommands(cli.build_parser()))
    assert {"embed", "duplicates", "undo", "compare", "serve", "batch start"} <= set(commands)
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                assert "default" in action.help, f"{name} {action.option_strings} does not state its default"


STAGE = "https://abc.execute-api.eu-west-1.amazonaws.com/prod"


@pytest.mark.parametrize(("given", "expected"), [
    (STAGE, f"{STAGE}/image-similarity"),
    (f"{STAGE}/", f"{STAGE}/image-similarity"),
    (f"{STAGE}/image-similarity", f"{STAGE}/image-similarity"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080/image-similarity"),
])
def test_remote_takes_the_stage_url_or_the_endpoint(given, expected):
    assert endpoint(given) == expected


def test_remote_with_the_base_url_and_a_camera_size_photo(album, run_cli, tmp_path, api_server):
    """The API keeps its 4,096 px contract: the CLI sends it a reduced copy of what it would refuse."""
    out = tmp_path / "d.json"
    assert run_cli(["duplicates", str(album.root / "2023"), "--remote", api_server, "--json", str(out),
                    "--no-cache"]) == 0
    (group,) = json.loads(out.read_text())["groups"]
    assert sorted(Path(image["path"]).name for image in group["images"]) == ["astronaut-edit.png", "astronaut.jpg"]


def test_embed_reads_names_from_stdin_and_writes_json_lines(album, run_cli, monkeypatch, capsys):
    names = [str(album.root / "misc" / "rocket.jpg"), str(album.root / "formats" / "cat.heic")]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(names) + "\n\n"))
    assert run_cli(["embed", "-", "--out", "-"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == names
    assert all(len(line["result"]) == 512 and len(line["sha256"]) == 64 for line in lines)


def test_a_closed_pipe_ends_quietly_with_141(album):
    """`embed ... | head -1`: the reader goes away after one line."""
    proc = subprocess.Popen([*CLI, "embed", str(album.root), "--batch-size", "1"],  # 11 lines, one batch each
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141
    assert b"Traceback" not in proc.stderr.read()


def test_ctrl_c_ends_quietly_with_130(album, tmp_path):
    cache = tmp_path / "cache"
    # A shell's background job starts with SIGINT ignored and Python then installs no KeyboardInterrupt handler:
    # the child gets the default disposition, as a terminal's foreground process has, wherever the suite runs.
    proc = subprocess.Popen([*CLI, "embed", str(album.root), "--out", str(tmp_path / "v.npy"), "--batch-size", "1",
                             "--cache", str(cache)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not any(f.stat().st_size for f in cache.rglob("*.bin")) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first photo is embedded: the interrupt lands mid-run
    proc.send_signal(signal.SIGINT)
    code, err = proc.wait(timeout=120), proc.stderr.read()
    assert code == 130, err.decode(errors="replace")
    assert b"Traceback" not in err and not (tmp_path / "v.npy").exists()


def test_compare_reads_camera_size_and_heic_locally_and_remotely(album, run_cli, capsys, api_server):
    pair = [str(album.root / "2023" / "astronaut.jpg"), str(album.root / "2023" / "astronaut-edit.png")]
    assert run_cli(["compare", *pair]) == 0
    local = json.loads(capsys.readouterr().out)["similarity"]
    assert local > 0.9
    assert run_cli(["compare", *pair, "--remote", api_server]) == 0
    assert json.loads(capsys.readouterr().out)["similarity"] == pytest.approx(local, abs=0.02)
    cats = [str(album.root / "formats" / "cat.heic"), str(album.root / "formats" / "cat.gif")]
    assert run_cli(["compare", *cats]) == 0 and json.loads(capsys.readouterr().out)["similarity"] > 0.95


def test_compare_of_a_broken_file_is_one_line(album, run_cli, capsys):
    assert run_cli(["compare", str(album.root / "broken" / "notes.jpg"), str(album.root / "misc" / "rocket.jpg")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("image-similarity: not an image file this program reads")


@pytest.mark.parametrize("document", ["README.md", "docs/USAGE.md"])
def test_the_documented_curl_command_works_for_a_big_photo(document, album, api_server, tmp_path):
    """The docs' first curl example, run as written (with this test's server and photo): a photo over 128 KB would
    not fit in one command-line argument, so the body must come through the pipe."""
    text = (Path(__file__).resolve().parents[2] / document).read_text()
    start = text.index("{ printf '{\"img\": \"'; base64 -w0 photo.jpg")
    command = text[start : text.index("--data-binary @-", start) + len("--data-binary @-")]
    big = tmp_path / "big.jpg"
    with Image.open(album.root / "2023" / "astronaut.jpg") as photo:
        photo.draft("RGB", (3000, 2000))
        photo.resize((3000, 2000)).save(big, quality=95)
    assert big.stat().st_size > 500_000
    command = command.replace("photo.jpg", str(big)).replace("http://127.0.0.1:8080", api_server)
    answer = subprocess.run(["bash", "-c", command], check=False, capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0, answer.stderr
    assert len(json.loads(answer.stdout)["result"]) == 512
