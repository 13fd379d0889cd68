"""Tests of the VNNLIB reader: shared benchmark files, semantics, errors, round trips."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relax.errors import SpecError, VnnlibSyntaxError
from relax.spec import robustness
from relax.io.vnnlib import MAX_DNF_TERMS, parse_vnnlib, read_vnnlib


def _declare(n_in: int, n_out: int) -> str:
    xs = "".join(f"(declare-const X_{i} Real)\n" for i in range(n_in))
    return xs + "".join(f"(declare-const Y_{j} Real)\n" for j in range(n_out))


def _mnistfc_files(shared_data):
    return sorted((shared_data / "vnncomp2021" / "mnistfc").glob("*.vnnlib"))


def _eran_files(shared_data):
    return sorted((shared_data / "vnncomp2021" / "eran" / "specs").glob("*.vnnlib"))


def _read(path):
    return read_vnnlib(path, num_inputs=784, num_outputs=10)


def _robustness_label(spec) -> int:
    """Check the 9 single-row ``y_label - y_j <= 0`` disjuncts; return the label."""
    assert len(spec.disjuncts) == 9
    labels, others = set(), set()
    for d in spec.disjuncts:
        assert d.A.shape == (1, 10) and np.array_equal(d.b, [0.0])
        assert sorted(d.A[0]) == [-1.0] + [0.0] * 8 + [1.0]
        labels.add(int(np.argmax(d.A[0])))
        others.add(int(np.argmin(d.A[0])))
    assert len(labels) == 1
    (label,) = labels
    assert others == set(range(10)) - {label}
    return label


def _check_box(spec):
    assert spec.input_size == 784 and spec.output_size == 10
    assert np.all(spec.lower <= spec.upper)
    assert np.all(spec.lower >= 0.0) and np.all(spec.upper <= 1.0)


# --------------------------------------------------------------------------- shared files


def test_mnistfc_files(shared_data):
    files = _mnistfc_files(shared_data)
    assert len(files) == 30
    for path in files:
        specs = _read(path)  # reading speed: benchmarks/vnnlib_read.py
        assert len(specs) == 1
        _check_box(specs[0])
        first = path.read_text().splitlines()[0]
        expected = int(re.search(r"label:\s*(\d+)", first).group(1))
        assert _robustness_label(specs[0]) == expected, path.name


def test_eran_files(shared_data):
    files = _eran_files(shared_data)
    assert len(files) == 36
    for path in files:
        specs = _read(path)  # reading speed: benchmarks/vnnlib_read.py
        assert len(specs) == 1
        _check_box(specs[0])
        _robustness_label(specs[0])


def _mnist_test_set(shared_data):
    root = shared_data / "mnist"
    with gzip.open(root / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def test_eran_files_match_mnist_images(shared_data):
    """ERAN spec ``idx_I`` is test image I at eps 0.015 (bounds printed with 8 decimals)."""
    if not (shared_data / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST test set not in the shared data")
    images, labels = _mnist_test_set(shared_data)
    for path in _eran_files(shared_data)[:8]:
        index = int(re.search(r"idx_(\d+)", path.name).group(1))
        (spec,) = read_vnnlib(path)
        expected = robustness(images[index] / 255.0, int(labels[index]), 0.015)
        np.testing.assert_allclose(spec.lower, expected.lower, rtol=0, atol=1e-7)
        np.testing.assert_allclose(spec.upper, expected.upper, rtol=0, atol=1e-7)
        for got, want in zip(spec.disjuncts, expected.disjuncts, strict=True):
            assert np.array_equal(got.A, want.A) and np.array_equal(got.b, want.b)


# --------------------------------------------------------------------------- semantics


def _robustness_text(x, label: int, eps: float) -> str:
    lines = ["; robustness property", _declare(len(x), 10)]
    for i, xi in enumerate(x):
        lo, hi = max(0.0, float(xi) - eps), min(1.0, float(xi) + eps)
        lines.append(f"(assert (<= X_{i} {hi!r}))\n(assert (>= X_{i} {lo!r}))")
    others = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(10) if j != label)
    lines.append(f"(assert (or {others}))")
    return "\n".join(lines)


def test_equals_robustness_exactly():
    rng = np.random.default_rng(0)
    x = rng.random(30)
    x[:3] = [0.0, 1.0, 0.01]  # clipped at both ends
    (spec,) = parse_vnnlib(_robustness_text(x, 3, 0.05), num_inputs=30, num_outputs=10)
    expected = robustness(x, 3, 0.05)
    assert np.array_equal(spec.lower, expected.lower)
    assert np.array_equal(spec.upper, expected.upper)
    assert len(spec.disjuncts) == len(expected.disjuncts)
    for got, want in zip(spec.disjuncts, expected.disjuncts):
        assert np.array_equal(got.A, want.A) and np.array_equal(got.b, want.b)


def test_inputs_in_disjunction_give_two_specs():
    text = _declare(2, 2) + """
        (assert (<= X_1 2)) (assert (>= X_1 -1))
        (assert (or (and (>= X_0 0) (<= X_0 0.5) (>= Y_0 Y_1))
                    (and (>= X_0 0.5) (<= X_0 1) (>= Y_1 Y_0))))
    """
    first, second = parse_vnnlib(text)
    assert np.array_equal(first.lower, [0.0, -1.0]) and np.array_equal(first.upper, [0.5, 2.0])
    assert np.array_equal(second.lower, [0.5, -1.0]) and np.array_equal(second.upper, [1.0, 2.0])
    assert np.array_equal(first.disjuncts[0].A, [[-1.0, 1.0]])
    assert np.array_equal(second.disjuncts[0].A, [[1.0, -1.0]])
    assert len(first.disjuncts) == len(second.disjuncts) == 1


def test_same_box_grouped_empty_box_dropped_and_unconstrained_output():
    text = _declare(1, 2) + """
        (assert (and (>= X_0 0) (<= X_0 1)))
        (assert (or (and (<= X_0 1) (<= Y_0 3))
                    (and (>= X_0 2) (<= Y_1 4))
                    (>= Y_1 5)
                    (and (<= X_0 0.5))))
    """
    whole, half = parse_vnnlib(text)
    assert np.array_equal(whole.lower, [0.0]) and np.array_equal(whole.upper, [1.0])
    assert [d.A.tolist() for d in whole.disjuncts] == [[[1.0, 0.0]], [[0.0, -1.0]]]
    assert [d.b.tolist() for d in whole.disjuncts] == [[3.0], [-5.0]]
    assert np.array_equal(half.upper, [0.5])
    (always,) = half.disjuncts
    assert np.array_equal(always.A, [[0.0, 0.0]]) and np.array_equal(always.b, [0.0])
    assert always.margin(np.array([123.0, -4.0]))[0] <= 0


def test_dnf_order_and_product():
    text = _declare(1, 2) + """
        (assert (<= 0 X_0 1))
        (assert (and (or (<= Y_0 1) (<= Y_0 2)) (or (<= Y_1 3) (<= Y_1 4))))
    """
    (spec,) = parse_vnnlib(text)
    got = [(d.A.tolist(), d.b.tolist()) for d in spec.disjuncts]
    rows = {1: [1.0, 0.0], 2: [1.0, 0.0], 3: [0.0, 1.0], 4: [0.0, 1.0]}
    want = [([rows[a], rows[c]], [float(a), float(c)]) for a in (1, 2) for c in (3, 4)]
    assert got == want


def test_number_forms_terms_and_strict_comparisons():
    text = _declare(2, 3) + """
        ; comment (with parens) ((
        (assert (>= X_0 -0.5)) (assert (< X_0 (- 0.25)))   ; strict read as non-strict
        (assert (= X_1 2.5e-1))
        (assert (or
            (and (> (+ (* 2 Y_0) (* -1.5 Y_2) 1) (- Y_1 3)))
            (and (<= (- Y_0) 1E2) (>= Y_2 (/ 1 4)))
            (and (<= Y_0 Y_1 Y_2))))
    """
    (spec,) = parse_vnnlib(text)
    assert np.array_equal(spec.lower, [-0.5, 0.25]) and np.array_equal(spec.upper, [-0.25, 0.25])
    first, second, third = spec.disjuncts
    # 2 y0 - 1.5 y2 + 1 >= y1 - 3  <=>  -2 y0 + y1 + 1.5 y2 <= 4
    assert np.array_equal(first.A, [[-2.0, 1.0, 1.5]]) and np.array_equal(first.b, [4.0])
    assert np.array_equal(second.A, [[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    assert np.array_equal(second.b, [100.0, -0.25])
    assert np.array_equal(third.A, [[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])
    assert np.array_equal(third.b, [0.0, 0.0])


def test_constant_formulas_and_empty_result():
    head = _declare(1, 1) + "(assert (<= 0 X_0)) (assert (<= X_0 1))\n"
    (spec,) = parse_vnnlib(head + "(assert (or (<= 2 1) (and true (<= Y_0 0))))")
    assert len(spec.disjuncts) == 1
    assert parse_vnnlib(head + "(assert (and (<= Y_0 0) (<= 2 1)))") == ()
    assert parse_vnnlib(head + "(assert (>= X_0 3)) (assert (<= Y_0 0))") == ()


def test_gz_and_missing_file(tmp_path):
    text = _robustness_text(np.full(4, 0.5), 0, 0.1)
    path = tmp_path / "p.vnnlib.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    (spec,) = read_vnnlib(path)
    assert np.allclose(spec.lower, 0.4) and np.allclose(spec.upper, 0.6)
    missing = tmp_path / "nope.vnnlib"
    with pytest.raises(SpecError, match="nope.vnnlib"):
        read_vnnlib(missing)


# --------------------------------------------------------------------------- errors


HEADER = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"


@pytest.mark.parametrize(
    ("body", "line", "column", "message"),
    [
        ("(assert (<= X_0 1)))\n", 3, 20, "unbalanced"),
        ("(assert (<= X_0 1))\n(assert (and (<= Y_0 1)\n", 4, 9, "unclosed"),
        ("(assert (<= X_0 1))\n  (assert (foo X_0 1))\n", 4, 12, "unknown operator"),
        ("(assert (<= X_0 1))\n(assert (<= Y_0 (+ Y_0 X_5)))\n", 4, 24, "undeclared"),
        ("(assert (<= X_0 1))\n(assert (<= Y_1 0))\n", 4, 13, "undeclared"),
        ("(assert\n\t(<= X_0 1.2.3))\n", 4, 10, "bad number"),
        ("(assert (<= X_0 1e999))\n", 3, 17, "bad number"),
        ("(assert (<= X_0 inf))\n", 3, 17, "expected a number"),
        ("(declare-const X_1 Int)\n", 3, 20, "Real"),
        ("(declare-const X_0 Real)\n", 3, 16, "twice"),
        ("(assert (<= (* Y_0 Y_0) 1))\n", 3, 14, "non-linear"),
        ("(assert ())\n", 3, 9, "empty"),
        ("assert\n", 3, 1, "top level"),
        ("(assert (not (<= Y_0 1)))\n", 3, 10, "unknown operator"),
    ],
)
def test_syntax_errors_have_positions(body, line, column, message):
    with pytest.raises(VnnlibSyntaxError, match=message) as info:
        parse_vnnlib(HEADER + body, path="bad.vnnlib")
    assert (info.value.line, info.value.column) == (line, column)
    assert info.value.path == "bad.vnnlib"
    assert str(info.value).startswith(f"bad.vnnlib:{line}:{column}:")


def test_linked_inputs_rejected_with_position():
    text = _declare(2, 1) + "(assert (<= 0 X_0 1))\n  (assert (<= X_0 X_1))\n"
    with pytest.raises(SpecError, match="X_0, X_1") as info:
        parse_vnnlib(text)
    assert (info.value.line, info.value.column) == (5, 12)
    with pytest.raises(SpecError, match="X_0, Y_0"):
        parse_vnnlib(_declare(1, 1) + "(assert (<= 0 X_0 1)) (assert (>= Y_0 X_0))")


def test_unbounded_input_names_the_variable():
    text = _declare(3, 1) + "(assert (<= 0 X_0 1)) (assert (<= 0 X_2 1)) (assert (>= X_1 0))"
    with pytest.raises(SpecError, match="X_1 has no finite upper bound"):
        parse_vnnlib(text + " (assert (<= Y_0 0))")


def test_size_checks():
    text = _robustness_text(np.full(3, 0.5), 1, 0.1)
    assert len(parse_vnnlib(text, num_inputs=3, num_outputs=10)) == 1
    with pytest.raises(SpecError, match="3 inputs but 4"):
        parse_vnnlib(text, num_inputs=4)
    with pytest.raises(SpecError, match="10 outputs but 2"):
        parse_vnnlib(text, num_outputs=2)
    with pytest.raises(VnnlibSyntaxError, match="X_1 is not") as info:
        parse_vnnlib("(declare-const X_0 Real)\n(declare-const X_2 Real)(declare-const Y_0 Real)")
    assert (info.value.line, info.value.column) == (2, 16)


def test_dnf_blowup_is_refused():
    side = 400
    assert side * side > MAX_DNF_TERMS
    disjunction = "(assert (or " + " ".join(f"(<= Y_0 {k})" for k in range(side)) + "))\n"
    text = HEADER + "(assert (<= 0 X_0 1))\n" + disjunction * 2
    with pytest.raises(SpecError, match="DNF"):
        parse_vnnlib(text)


# --------------------------------------------------------------------------- round trip


_values = st.one_of(
    st.integers(-50, 50).map(float),
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, allow_subnormal=False),
)


def _number(value: float, style: int) -> str:
    """Write ``value`` in one of the accepted spellings."""
    if style == 1 and value < 0:
        return f"(- {-value!r})"
    if style == 2 and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@st.composite
def _specs(draw):
    n_in, n_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    lows = [draw(_values) for _ in range(n_in)]
    highs = [lo + draw(st.floats(0, 100, allow_subnormal=False)) for lo in lows]
    row = st.tuples(
        st.lists(st.one_of(st.just(0.0), _values.filter(bool)), min_size=n_out, max_size=n_out)
        .filter(lambda r: any(r)),
        _values,
    )
    disjuncts = draw(st.lists(st.lists(row, min_size=1, max_size=3), min_size=1, max_size=4))
    return lows, highs, disjuncts, draw(st.randoms(use_true_random=False))


def _row_text(coefs, bound, rnd) -> str:
    parts = [f"(* {_number(c, rnd.randrange(3))} Y_{j})" for j, c in enumerate(coefs) if c]
    expr = parts[0] if len(parts) == 1 and rnd.random() < 0.5 else f"(+ {' '.join(parts)})"
    b = _number(bound, rnd.randrange(3))
    return f"(<= {expr} {b})" if rnd.random() < 0.5 else f"(>= {b} {expr})"


def _spec_text(lows, highs, disjuncts, rnd) -> str:
    lines = [_declare(len(lows), len(disjuncts[0][0][0]))]
    for i, (lo, hi) in enumerate(zip(lows, highs)):
        lo_text, hi_text = _number(lo, rnd.randrange(3)), _number(hi, rnd.randrange(3))
        if rnd.random() < 0.5:
            lines.append(f"(assert (<= X_{i} {hi_text})) ; upper\n(assert (>= X_{i} {lo_text}))")
        else:
            lines.append(f"(assert (and (<= {lo_text} X_{i}) (>= {hi_text} X_{i})))")
    terms = ["(and " + " ".join(_row_text(c, b, rnd) for c, b in conj) + ")" for conj in disjuncts]
    lines.append("(assert (or\n  " + "\n  ".join(terms) + "))")
    return "\n".join(lines)


@settings(max_examples=150, deadline=None)
@given(_specs())
def test_round_trip(case):
    lows, highs, disjuncts, rnd = case
    (spec,) = parse_vnnlib(_spec_text(lows, highs, disjuncts, rnd))
    assert np.array_equal(spec.lower, lows) and np.array_equal(spec.upper, highs)
    assert len(spec.disjuncts) == len(disjuncts)
    for got, conj in zip(spec.disjuncts, disjuncts):
        assert np.array_equal(got.A, [c for c, _ in conj])
        assert np.array_equal(got.b, [b for _, b in conj])
