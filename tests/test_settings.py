"""One settings schema: checks, CLI flags and Train widgets all come from charmodel/run/settings.py."""

import pytest
from streamlit.testing.v1 import AppTest

from charmodel import CharModelError
from charmodel.cli import parser as _parser
from charmodel.run import settings

from .conftest import ROOT

NEW = settings.Setting("warmup_epochs", 0, "epochs at a reduced learning rate before the schedule starts",
                       "Warm-up epochs", low=0, high=10)


@pytest.fixture
def one_more_setting(monkeypatch):
    monkeypatch.setattr(settings, "SETTINGS", [*settings.SETTINGS, NEW])


def test_a_setting_added_to_the_schema_reaches_checks_cli_and_page(one_more_setting, tmp_path, monkeypatch):
    assert settings.check({"warmup_epochs": 3})["warmup_epochs"] == 3
    with pytest.raises(CharModelError, match=r"warmup_epochs must be in \[0, 10\], not 11"):
        settings.check({"warmup_epochs": 11})
    args = _parser().parse_args(["train", "--run", "r", "--warmup-epochs", "2"])
    assert settings.from_args(args) == {"warmup_epochs": 2}
    monkeypatch.setenv("CHARMODEL_WEIGHTS", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    at.switch_page("pages/train.py").run()
    widget = at.number_input(key="train_warmup_epochs")
    assert widget.label == "Warm-up epochs" and widget.value == 0 and widget.max == 10


def test_every_setting_has_one_definition_used_everywhere():
    names = [s.name for s in settings.SETTINGS]
    assert len(names) == len(set(names))
    flags = {a.dest for a in _parser()._subparsers._group_actions[0].choices["train"]._actions}
    assert {s.name for s in settings.SETTINGS if s.cli_flag != "-"} <= flags
    assert set(settings.RESUMABLE) == {"epochs", "patience", "lr_plateau"}
    checked = settings.check({})
    assert checked == settings.DEFAULTS


@pytest.mark.parametrize("name, bad, message", [
    ("units", 0, "units must be at least 1, not 0"),
    ("units", 2.5, "units must be a whole number at least 1"),
    ("dropout", 1.0, r"dropout must be in \[0, 1\), not 1.0"),
    ("lr", 0, "lr must be more than 0"),
    ("carry_state", "yes", "carry_state must be true or false"),
])
def test_bad_values_are_named_with_their_range(name, bad, message):
    with pytest.raises(CharModelError, match=message):
        settings.check({name: bad})
