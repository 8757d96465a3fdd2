"""The one exception type for mistakes a user can make (bad file, bad flag, bad run folder)."""


class CharModelError(Exception):
    """A user-caused problem. The message is one sentence: what was wrong and what to do."""
