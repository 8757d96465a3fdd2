"""The flat module names of charmodel 0.1 (`charmodel.runfolder`, `charmodel.atlas`, ...) still
import: each is the module in its sub-package, the same object, so scripts and notebooks written
against the flat layout keep working. New code imports from the sub-packages."""

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "corpus": "run.corpus", "settings": "run.settings", "runfolder": "run.folder",
    "sample": "engine.sampling", "evaluate": "engine.scoring",
    "cells": "analysis.cells", "explain": "analysis.explain", "atlas": "analysis.atlas", "ablate": "analysis.ablate",
    "probe": "analysis.probe", "saliency": "analysis.saliency", "study": "analysis.study",
    "compare": "analysis.compare",
    "render": "view.render", "charts": "view.charts",
    "model": "training.model", "train": "training.train", "distribute": "training.distribute",
    "recipe": "training.recipe", "jobs": "training.jobs",
    "archive": "exchange.archive", "keras_io": "exchange.keras_io",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """charmodel.OLD -> charmodel.NEW, the same module object under both names."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.partition(".")
        if package == "charmodel" and name in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module("charmodel." + MOVED[spec.name.partition(".")[2]])

    def exec_module(self, module):
        pass  # the real module has run already


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
