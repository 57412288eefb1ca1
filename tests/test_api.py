"""The top-level API: every name ``__all__`` lists resolves (the stage functions are
imported on first use), and ``dir(immunomon)`` lists them, as tab completion does: an
analyst looking for ``gate_sample`` there had not found it."""

import immunomon


def test_every_public_name_resolves_and_is_listed():
    listed = dir(immunomon)
    for name in immunomon.__all__:
        assert getattr(immunomon, name) is not None, name
        assert name in listed, name
    assert {"gating", "cohort", "chimerism"} <= set(listed)      # the stage modules too
