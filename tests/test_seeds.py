"""Derived seeds: one scheme, independent streams per (purpose, index)."""
import itertools

import numpy as np
import pytest

from keras_sdd import seeds


def test_streams_never_shared_across_seed_and_round():
    # seed s round k+1 vs seed s+1 round k: what `seed + round` arithmetic would have merged.
    values = {(s, p, k): seeds.derive(s, p, k) for s, p, k in itertools.product(range(5), ["shuffle", "masks",
                                                                                          "init"], range(30))}
    assert len(set(values.values())) == len(values)
    assert seeds.derive(1, "shuffle", 0) != seeds.derive(0, "shuffle", 1)


def test_deterministic_and_in_range():
    assert seeds.derive(7, "init", 3) == seeds.derive(7, "init", 3)
    assert 0 <= seeds.derive(2**40, "masks", 10**6) < 2**31
    a = seeds.rng(3, "noise").integers(0, 10**9, 5)
    b = seeds.rng(3, "noise").integers(0, 10**9, 5)
    np.testing.assert_array_equal(a, b)


def test_data_streams_keep_their_historic_ids():
    """keras_sdd.data draws subset/noise/validation from SeedSequence([seed, 1|2|3]): the same streams."""
    for purpose, stream in (("subset", 1), ("noise", 2), ("val", 3)):
        want = np.random.default_rng(np.random.SeedSequence([5, stream])).random(3)
        np.testing.assert_array_equal(seeds.rng(5, purpose).random(3), want)


def test_bad_purpose_or_negative_refused():
    with pytest.raises(KeyError, match="unknown seed purpose"):
        seeds.derive(0, "dropout")
    with pytest.raises(ValueError):
        seeds.derive(-1, "init")
