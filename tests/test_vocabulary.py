"""The shared words (xentconf.vocabulary) are the ones every part actually uses.

Each part keeps a table keyed by these words (the oracle's entries, the protocol's
parameters, the strategies' features, the results schema, the run options); a word added
in one place and forgotten in another fails here.
"""

from __future__ import annotations

import functools

from xentconf import oracle, protocol, results, vocabulary
from xentconf.conformance import options
from xentconf.conformance.strategies import FEATURES_OF
from xentconf.oracle import fast


def _resolve(ns, dotted: str):
    return functools.reduce(getattr, dotted.split(".")[1:], ns)


def test_every_api_id_names_an_entry_of_both_oracle_tiers():
    for api in vocabulary.API_IDS:
        assert callable(_resolve(oracle.tf, api)), api
        assert callable(_resolve(fast.tf, api)), api


def test_every_table_keyed_by_api_covers_exactly_the_apis():
    assert tuple(protocol.API_PARAMS) == vocabulary.API_IDS
    assert set(FEATURES_OF) == set(vocabulary.API_IDS)
    assert all(set(fs) <= set(protocol.FEATURES) for fs in FEATURES_OF.values())
    assert set(vocabulary.API_SHORT) == set(vocabulary.API_IDS)
    assert len(set(vocabulary.API_SHORT.values())) == len(vocabulary.API_IDS)
    assert set(vocabulary.KERAS_APIS) | set(vocabulary.RAW_OPS) < set(vocabulary.API_IDS)


def test_every_api_name_is_accepted_both_ways():
    for api, short in vocabulary.API_SHORT.items():
        assert protocol.api_id(api) == api and protocol.api_id(short) == api
    assert protocol.api_id("tf.nn.softmax") is None


def test_grades_and_choices_come_from_the_vocabulary():
    schema = results.JSON_SCHEMA
    run_props = schema["properties"]["run"]["properties"]
    assert run_props["accuracy"]["enum"] == list(vocabulary.REQUIRED_GRADES)
    assert oracle.GRADES == vocabulary.GRADES and results.GRADES == vocabulary.GRADES
    by_name = {o.name: o for o in options.OPTIONS}
    assert by_name["accuracy"].choices == vocabulary.REQUIRED_GRADES
    assert by_name["dtype"].choices == vocabulary.DTYPES
    assert by_name["device"].choices == vocabulary.DEVICES
    assert by_name["profile"].choices == vocabulary.PROFILES
    assert by_name["keras"].choices == vocabulary.KERAS_VARIANTS
    assert by_name["mode"].choices == vocabulary.MODES
    assert set(vocabulary.KERAS_BACKENDS) < set(vocabulary.MODES)
