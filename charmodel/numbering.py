"""How layers are numbered for people. A leaf module: the engine and the run folder both use it."""


def layer_number(index: int) -> int:
    """Layers are counted from 0 in Python and from 1 wherever a user reads or types one (the CLI,
    its JSON, files for people such as highlights.json, the app, URLs). These two functions are the
    only conversion: every surface calls them."""
    return index + 1


def layer_index(number: int) -> int:
    """The Python index of the layer a user numbered (see layer_number)."""
    return number - 1
