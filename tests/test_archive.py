"""Run archives: export, import, and import refusing hostile archives without writing anything."""

import io
import stat
import zipfile

import numpy as np
import pytest

from charmodel import CharModelError
from charmodel.engine import Engine
from charmodel.exchange import archive
from charmodel.run import folder as runfolder

from .conftest import make_random_run
from .test_cli import cli


@pytest.fixture
def exported(tmp_path, small_text):
    run = make_random_run(tmp_path / "src" / "tiny", small_text, layers=1, units=8)
    (run / "checkpoints").mkdir()
    runfolder.save_weights_npz(run / "checkpoints" / "epoch-0001.npz", runfolder.load_weights_npz(run / "best.npz"))
    (run / "train_state.json").write_text("{}")  # resume state stays behind
    return run, archive.export_run(run, tmp_path / "tiny.zip", with_checkpoints=True)


def nothing_left(root):
    return not root.exists() or [p.name for p in root.iterdir()] == []


def test_export_then_import_round_trips(exported, tmp_path):
    run, path = exported
    names = zipfile.ZipFile(path).namelist()
    assert "tiny/config.json" in names and "tiny/checkpoints/epoch-0001.npz" in names
    assert "tiny/train_state.json" not in names
    root = tmp_path / "weights"
    imported = archive.import_run(path, root)
    assert imported == (root / "tiny").resolve() and runfolder.list_runs(root) == ["tiny"]
    assert runfolder.available_checkpoints(imported) == ["best", "1"]
    ids = Engine.load(run).vocab.encode("Alice was")
    a, _, _ = Engine.load(run).forward(ids[None])
    b, _, _ = Engine.load(imported).forward(ids[None])
    assert np.array_equal(a, b)
    with pytest.raises(CharModelError, match="already exists"):
        archive.import_run(path, root)
    assert archive.import_run(path, root, name="copy").name == "copy"


def crafted(tmp_path, members: dict, symlink: str | None = None) -> io.BytesIO:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if name == symlink:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, data)
    out.seek(0)
    return out


@pytest.mark.parametrize("member, message", [
    ("tiny/evil.py", "not a file a run folder has"),
    ("/etc/passwd", "absolute"),
    ("tiny/../../escape.txt", r"climbs out"),
    ("tiny/samples/../../x", r"climbs out"),
    ("C:/windows/x", "absolute"),
    ("other/config.json", "more than one folder"),
])
def test_import_refuses_hostile_members_and_writes_nothing(exported, tmp_path, member, message):
    run, _ = exported
    zipped = crafted(tmp_path, {"tiny/config.json": (run / "config.json").read_bytes(), member: b"x"})
    root = tmp_path / "weights"
    with pytest.raises(CharModelError, match=message):
        archive.import_run(zipped, root)
    assert nothing_left(root)


def test_import_refuses_a_symlink_member(exported, tmp_path):
    run, _ = exported
    zipped = crafted(tmp_path, {"tiny/config.json": (run / "config.json").read_bytes(),
                                "tiny/corpus.txt": b"/etc/passwd"}, symlink="tiny/corpus.txt")
    with pytest.raises(CharModelError, match="symbolic link"):
        archive.import_run(zipped, tmp_path / "weights")
    assert nothing_left(tmp_path / "weights")


def test_import_refuses_a_member_named_twice_and_writes_nothing(exported, tmp_path):
    run, zipped = exported
    out = io.BytesIO()
    with zipfile.ZipFile(zipped) as src, zipfile.ZipFile(out, "w") as z, pytest.warns(UserWarning, match="Duplicate"):
        for info in src.infolist():
            z.writestr(info, src.read(info))
        z.writestr("tiny/corpus.txt", b"a second corpus")  # zipfile allows it, with a warning
    out.seek(0)
    with pytest.raises(CharModelError, match=r"holds 'tiny/corpus.txt' twice; refused"):
        archive.import_run(out, tmp_path / "weights")
    assert nothing_left(tmp_path / "weights")
    (tmp_path / "twice.zip").write_bytes(out.getvalue())
    bad = cli("import", tmp_path / "twice.zip", "--into", tmp_path / "weights")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "twice" in bad.stderr
    assert nothing_left(tmp_path / "weights")


def test_import_refuses_too_many_members_or_too_many_bytes(exported, tmp_path):
    run, path = exported
    with pytest.raises(CharModelError, match="more than the 3 a run may have"):
        archive.import_run(path, tmp_path / "weights", max_members=3)
    with pytest.raises(CharModelError, match="over the 0 MB limit"):
        archive.import_run(path, tmp_path / "weights", max_bytes=1000)
    assert nothing_left(tmp_path / "weights")


def test_a_member_larger_than_declared_is_caught_while_extracting(exported, tmp_path):
    """A zip bomb's headers understate its size: the bytes are counted as they come out."""
    run, _ = exported
    body = b"a" * 5000
    raw = crafted(tmp_path, {"tiny/config.json": (run / "config.json").read_bytes(), "tiny/corpus.txt": body}).getvalue()
    lied = raw.replace((5000).to_bytes(4, "little"), (50).to_bytes(4, "little"))  # declared sizes: 50 bytes
    with pytest.raises(CharModelError, match="damaged|more than the archive declares"):
        archive.import_run(io.BytesIO(lied), tmp_path / "weights")
    assert nothing_left(tmp_path / "weights")


def test_a_pickle_in_the_weights_is_refused(exported, tmp_path):
    run, _ = exported
    evil = io.BytesIO()
    np.savez(evil, embedding=np.array([object()], dtype=object))
    zipped = crafted(tmp_path, {"tiny/config.json": (run / "config.json").read_bytes(), "tiny/best.npz": evil.getvalue()})
    with pytest.raises(CharModelError, match="not sound.*tiny/best.npz is damaged or not a weights file"):
        archive.import_run(zipped, tmp_path / "weights")
    assert nothing_left(tmp_path / "weights")


def test_weights_that_do_not_fit_the_config_are_refused(exported, tmp_path, small_text):
    run, _ = exported
    other = make_random_run(tmp_path / "other" / "x", small_text, layers=1, units=12)
    zipped = crafted(tmp_path, {"tiny/config.json": (run / "config.json").read_bytes(),
                                "tiny/best.npz": (other / "best.npz").read_bytes()})
    with pytest.raises(CharModelError, match="not sound.*config says 1x8"):
        archive.import_run(zipped, tmp_path / "weights")
    assert nothing_left(tmp_path / "weights")


def test_export_and_import_cli(exported, tmp_path):
    run, _ = exported
    out = cli("export", "--run", run, "--out", tmp_path / "cli.zip")
    assert out.returncode == 0, out.stderr
    root = tmp_path / "w2"
    assert cli("import", tmp_path / "cli.zip", "--into", root, "--name", "moved").returncode == 0
    assert runfolder.list_runs(root) == ["moved"]
    bad = cli("import", tmp_path / "cli.zip", "--into", root, "--name", "../x")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not allowed" in bad.stderr
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    bad = cli("import", junk, "--into", root)
    assert bad.returncode == 2 and "not a zip archive" in bad.stderr
