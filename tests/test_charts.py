"""The logic behind chart selections (AppTest cannot fire them), and small pieces they rely on."""

import numpy as np

from charmodel.run import folder as runfolder
from charmodel.view import charts


def test_brush_range_turns_a_selection_into_whole_characters():
    assert charts.brush_range({charts.BRUSH: {"position": [12.4, 3.6]}}, 100) == (4, 13)
    assert charts.brush_range({charts.BRUSH: {"position": [90.2, 140.0]}}, 100) == (91, 100)  # clipped to the text
    assert charts.brush_range({charts.BRUSH: {"position": [5.2, 5.8]}}, 100) is None  # no whole character inside
    assert charts.brush_range({}, 100) is None and charts.brush_range(None, 100) is None


def test_picked_cell_reads_the_point_selection():
    assert charts.picked_cell({charts.PICK: [{"cell": 17, "start": 0}]}) == 17
    assert charts.picked_cell({charts.PICK: []}) is None and charts.picked_cell(None) is None


def test_heatmap_frame_keeps_the_most_variable_cells_and_averages_position_bins():
    states = np.zeros((100, 5), np.float32)
    states[:50, 1] = 1.0  # varies most (sd 0.5)
    states[:, 3] = np.arange(100) / 100  # varies next (sd 0.29)
    df = charts.heatmap_frame(states, cells=2, columns=4)
    assert list(dict.fromkeys(df["cell"])) == [1, 3] and len(df) == 2 * 4
    first_bin = df[(df["cell"] == 1) & (df["start"] == 0)]["value"].item()
    assert first_bin == 1.0 and df[(df["cell"] == 3) & (df["start"] == 75)]["value"].item() == np.mean(np.arange(75, 100) / 100).astype(np.float32)


def test_a_history_without_the_lr_and_batch_s_columns_still_reads(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,train_loss,val_loss,val_bpc,wall_s,chars_per_s\n1,2.0,2.1,3.03,10.0,900\n")
    rows = runfolder.read_history(tmp_path)
    assert rows == [{"epoch": 1, "train_loss": 2.0, "val_loss": 2.1, "val_bpc": 3.03, "wall_s": 10.0, "chars_per_s": 900.0}]
    runfolder.write_history(tmp_path, rows)  # and writes back with empty lr and batch_s columns
    assert (tmp_path / "history.csv").read_text().splitlines()[1] == "1,2.0,2.1,3.03,10.0,900.0,,"


def test_the_epoch_frame_is_in_bits():
    df = charts.epoch_frame([{"epoch": 1, "train_loss": charts.LN2 * 2, "val_bpc": 2.5}])
    assert df["bpc"].tolist() == [2.0, 2.5] and df["series"].tolist() == ["train", "validation"]


def test_the_deep_link_workaround_still_finds_streamlits_flag():
    """pages/shared/mode.py flips PagesManager.uses_pages_directory so a deep link works as a fresh
    server's first request; if a Streamlit upgrade removes it, this fails instead of the app."""
    from streamlit.runtime.pages_manager import PagesManager

    assert hasattr(PagesManager, "uses_pages_directory")


def test_the_loss_chart_draws_the_baseline_to_beat_as_a_labelled_rule():
    df = charts.epoch_frame([{"epoch": 1, "train_loss": 2.0, "val_bpc": 3.1}, {"epoch": 2, "train_loss": 1.5, "val_bpc": 2.6}])
    assert "layer" not in charts.loss_chart(df, "epoch", "t").to_dict()  # no baseline: the lines alone
    spec = charts.loss_chart(df, "epoch", "t", to_beat=("bz2", 2.388)).to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]]
    assert marks == ["line", "rule", "text"]
    rule_data = [d for d in spec["datasets"].values() if d and "label" in d[0]]
    assert rule_data == [[{"bpc": 2.388, "label": "bz2: 2.388 (to beat)"}]]
