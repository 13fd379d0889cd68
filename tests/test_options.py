"""Typed method options: parsing "method.field=value", listing, one-line errors, and
VerifyOptions.of; the Deadline type."""

from __future__ import annotations

import dataclasses
import math
import threading
import time

import pytest

from relax.deadline import NEVER, Deadline
from relax.errors import UsageError
from relax.krelu import KreluOptions
from relax.lp.method import LpOptions
from relax.options import METHOD_OPTIONS, describe_options, format_options, parse_settings
from relax.protocol import VerifyOptions
from relax.sdp.method import SdpOptions
from relax.verify import BOUND_METHODS
from solvers.backend import SolveOptions


def test_settings_become_typed_options():
    methods = parse_settings(["krelu.k=2", "krelu.bab=torch", "krelu.refine=off",
                              "krelu.max_groups=none", "sdp.cuts=yes", "sdp.lr=0.01"])
    options = VerifyOptions(methods=methods)
    assert options.of(KreluOptions) == KreluOptions(k=2, bab="torch", refine=False)
    assert options.of(SdpOptions) == SdpOptions(cuts=True, lr=0.01)
    assert options.of(LpOptions) == LpOptions()  # not given: the defaults
    later = parse_settings(["krelu.ns=9"], base=methods)
    assert VerifyOptions(methods=later).of(KreluOptions) == KreluOptions(k=2, ns=9, bab="torch",
                                                                         refine=False)


@pytest.mark.parametrize("setting, message", [
    ("krelu.q=1", "has no option 'q'"), ("krelu.k=x", "expected int"),
    ("krelu.k=9", "1 <= k <= 5"), ("nosuch.k=1", "unknown method"),
    ("krelu", "METHOD.NAME=VALUE"), ("krelu.bab=maybe", "expected one of"),
    ("krelu.refine=2", "true or false"), ("sdp-dual1.start=1", "has no option"),
    ("crown.x=1", "has no option"), ("krelu.tighten_share=nan", "tighten_share"),
])
def test_bad_settings_are_one_line_usage_errors(setting, message):
    with pytest.raises(UsageError, match=message) as error:
        parse_settings([setting])
    assert "\n" not in str(error.value)


def test_ill_typed_fields_are_refused_at_construction():
    with pytest.raises(UsageError, match="expected"):
        LpOptions(intermediate="ibx")
    with pytest.raises(UsageError, match="expected"):
        KreluOptions(k=2.5)
    with pytest.raises(UsageError, match="one options object per method"):
        VerifyOptions(methods=(LpOptions(), LpOptions()))


def test_every_method_lists_its_options():
    assert set(METHOD_OPTIONS) <= set(BOUND_METHODS)
    for method in BOUND_METHODS:
        infos = describe_options(method)
        assert all(i.doc for i in infos), method
        assert method in format_options(method)
    names = [i.name for i in describe_options("krelu")]
    fields = [f.name for f in dataclasses.fields(KreluOptions)]
    assert names == fields and describe_options("krelu")[0].default == 3


def test_deadline_never_and_shares():
    assert NEVER.left() == math.inf and not NEVER.expired and NEVER.time_limit() is None
    assert NEVER.share(0.5) is NEVER and NEVER.solve_options() == SolveOptions()
    d = Deadline.after(100.0)
    assert 99 < d.left() <= 100 and not d.expired
    half = d.share(0.5)
    assert 49 < half.left() <= 50 and half.at < d.at
    assert abs(d.split(4).left() - d.left() / 4) < 0.5
    assert d.earliest(half) is half and d.earliest(NEVER) is d
    opts = d.solve_options(SolveOptions(time_limit=5.0, tolerance=1e-7))
    assert opts.time_limit == 5.0 and opts.tolerance == 1e-7
    assert 99 < d.solve_options().time_limit <= 100


def test_a_deadline_with_an_event_ends_when_the_event_is_set():
    event = threading.Event()
    d = Deadline.after(100.0).or_when(event)
    half, never = d.share(0.5), NEVER.or_when(event)
    both = Deadline.after(10.0).earliest(d)
    assert not d.expired and not half.expired and not never.expired and not both.expired
    assert 99 < d.left() <= 100 and never.left() == math.inf and never.time_limit() is None
    assert 9 < both.left() <= 10
    event.set()
    for cancelled in (d, half, never, both):   # shares and combinations keep the event
        assert cancelled.expired and cancelled.cancelled and cancelled.left() == 0.0
        assert cancelled.time_limit() > 0   # a solver still gets a valid (tiny) limit
    assert not Deadline.after(100.0).expired   # the event belongs to the derived deadlines only


def test_an_expired_deadline_still_gives_a_valid_solver_limit():
    gone = Deadline(time.monotonic() - 1.0)
    assert gone.expired and gone.left() == 0.0
    assert gone.time_limit() > 0 and gone.solve_options().time_limit > 0
    assert Deadline.after(None) is NEVER
