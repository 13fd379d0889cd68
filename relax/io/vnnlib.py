"""Reading VNNLIB properties (the SMT-LIB subset used by VNN-COMP).

Supported:

- comments (``;`` to the end of the line);
- ``(declare-const X_i Real)`` / ``(declare-const Y_i Real)`` (and the equivalent
  ``(declare-fun X_i () Real)``); inputs must be ``X_0 .. X_{n-1}`` and outputs
  ``Y_0 .. Y_{m-1}``, declared before use;
- ``(assert F)`` where ``F`` nests ``and``, ``or``, ``true``, ``false`` and the
  comparisons ``<=``, ``>=``, ``<``, ``>``, ``=`` (chains such as ``(<= a b c)``
  mean ``a <= b and b <= c``);
- linear terms: numbers (``1``, ``-0.5``, ``2.5e-3``, ``(- 0.5)``), variables,
  ``(+ ...)``, ``(- a)``, ``(- a b ...)``, ``(* ...)`` with at most one
  non-constant factor, and ``(/ a c)`` with constant ``c``;
- ``check-sat``, ``get-model``, ``set-logic``, ``set-info``, ``set-option`` and
  ``exit`` commands, which are ignored.

Semantics.  The asserts describe the *unsafe* (counterexample) set; their
conjunction is put in disjunctive normal form.  Strict comparisons ``<`` and
``>`` are read as ``<=`` and ``>=``: this closes the unsafe set (and the input
box), a superset of the exact set, so proving the closed property safe proves
the original one -- a sound over-approximation.

Each DNF term splits into input bounds and output rows ``a . y <= b``.
Constraints on inputs must be single-variable bounds (``X_i <= c``,
``c <= X_i``, scalar multiples); anything linking several inputs, or inputs and
outputs, is rejected.  The input box of a term is the intersection of the bounds
of the term (global asserts included); terms with an empty box are dropped (they
cannot be unsafe), and terms with the same box are grouped into one
:class:`~relax.spec.Spec` whose disjuncts are the terms' output conjunctions.  A
term without output constraints is unsafe on its whole box and becomes the
always-satisfied conjunction ``0 . y <= 0``.  The property holds iff every
returned spec holds; when every term is dropped the result is the empty tuple
(the property holds trivially).

Errors.  Malformed text raises :class:`~relax.errors.VnnlibSyntaxError` with the
1-based line and column of the offending token (unsupported constraints, such
as non-linear products or inputs linked to other variables, are reported the
same way: it is a :class:`~relax.errors.SpecError`).  Unbounded inputs,
mismatched sizes, a DNF of more than :data:`MAX_DNF_TERMS` terms and unreadable
files raise :class:`~relax.errors.SpecError`.  No partial result is returned.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from relax.errors import SpecError, VnnlibSyntaxError
from relax.spec import Conjunction, Spec

__all__ = ["MAX_DNF_TERMS", "parse_vnnlib", "read_vnnlib"]

#: Largest number of DNF terms a property may expand to.
MAX_DNF_TERMS = 100_000

_WHITESPACE = frozenset(" \t\r\n\f\v")
_DELIMITERS = frozenset(" \t\r\n\f\v();")
_COMPARISONS = frozenset({"<=", ">=", "<", ">", "="})
_CONNECTIVES = frozenset({"and", "or"})
_TERM_OPS = frozenset({"+", "-", "*", "/"})
_IGNORED_COMMANDS = frozenset({"check-sat", "get-model", "set-logic", "set-info", "set-option", "exit"})


# --------------------------------------------------------------------------- reader


class _Atom:
    """A token other than a parenthesis, with its 1-based position."""

    __slots__ = ("text", "line", "col")

    def __init__(self, text: str, line: int, col: int):
        self.text, self.line, self.col = text, line, col


class _List:
    """A parenthesised expression: its items and the position of its ``(``."""

    __slots__ = ("items", "line", "col")

    def __init__(self, line: int, col: int):
        self.items: list = []
        self.line, self.col = line, col


def _tokens(text: str):
    """Yield ``(token, line, col)``; a token is ``(``, ``)`` or an atom's text."""
    i, n, line, line_start = 0, len(text), 1, 0
    while i < n:
        ch = text[i]
        if ch == "\n":
            i += 1
            line, line_start = line + 1, i
        elif ch in _WHITESPACE:
            i += 1
        elif ch == ";":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif ch == "(" or ch == ")":
            yield ch, line, i - line_start + 1
            i += 1
        else:
            start = i
            while i < n and text[i] not in _DELIMITERS:
                i += 1
            yield text[start:i], line, start - line_start + 1


def _read(text: str, path: str) -> list:
    """Read all top-level S-expressions, checking that parentheses balance."""
    top: list = []
    stack: list[_List] = []
    for token, line, col in _tokens(text):
        if token == "(":
            stack.append(_List(line, col))
        elif token == ")":
            if not stack:
                raise VnnlibSyntaxError("unbalanced ')'", path, line, col)
            node = stack.pop()
            (stack[-1].items if stack else top).append(node)
        else:
            (stack[-1].items if stack else top).append(_Atom(token, line, col))
    if stack:
        node = stack[-1]
        raise VnnlibSyntaxError("unclosed '(' (missing ')')", path, node.line, node.col)
    return top


# --------------------------------------------------------------------------- DNF terms


class _Term:
    """One DNF term: input bounds ``lo``/``hi`` (index -> value) and output rows."""

    __slots__ = ("lo", "hi", "rows")

    def __init__(self, lo=None, hi=None, rows=None):
        self.lo: dict[int, float] = lo if lo is not None else {}
        self.hi: dict[int, float] = hi if hi is not None else {}
        self.rows: list[tuple[dict[int, float], float]] = rows if rows is not None else []

    def copy(self) -> _Term:
        return _Term(dict(self.lo), dict(self.hi), list(self.rows))

    def merge(self, other: _Term) -> bool:
        """Conjoin ``other`` into this term in place; False when the box became empty."""
        lo, hi = self.lo, self.hi
        for i, v in other.lo.items():
            if v > lo.get(i, -math.inf):
                lo[i] = v
        for i, v in other.hi.items():
            if v < hi.get(i, math.inf):
                hi[i] = v
        self.rows.extend(other.rows)
        touched = other.lo.keys() | other.hi.keys()
        return all(lo.get(i, -math.inf) <= hi.get(i, math.inf) for i in touched)


def _product(left: list[_Term], right: list[_Term], err) -> list[_Term]:
    """Conjunction of two DNFs (terms with an empty box are pruned)."""
    if len(left) * len(right) > MAX_DNF_TERMS:
        raise err(f"the property expands to more than {MAX_DNF_TERMS} DNF terms")
    out = []
    for a in left:
        for b in right:
            term = a.copy()
            if term.merge(b):
                out.append(term)
    return out


def _conjoin(dnfs: list[list[_Term]], err) -> tuple[_Term | None, list[_Term]]:
    """Split a conjunction of DNFs into a common term and the product of the rest.

    Single-term DNFs are merged in place into the common term (linear time); the
    result is ``common AND OR(rest)``, with ``common`` None when it is empty.
    """
    common = _Term()
    rest = [_Term()]
    feasible = True
    for dnf in dnfs:
        if len(dnf) == 1:
            feasible = common.merge(dnf[0]) and feasible
        else:
            rest = _product(rest, dnf, err)
    return (common if feasible else None), rest


# --------------------------------------------------------------------------- semantics


class _Parser:
    """Turns the top-level expressions into a common term and a list of DNF terms."""

    def __init__(self, path: str):
        self.path = path
        self.names: dict[str, tuple[str, int]] = {}
        self.decl_nodes: dict[tuple[str, int], _Atom] = {}
        self.asserts: list[list[_Term]] = []

    def error(self, message: str, node) -> VnnlibSyntaxError:
        return VnnlibSyntaxError(message, self.path, node.line, node.col)

    def dnf_error(self, node):
        """An error factory for DNF blowup, positioned at ``node``."""
        return lambda message: SpecError(f"{self.path}:{node.line}:{node.col}: {message}")

    # ---- commands

    def command(self, node) -> None:
        """Process one top-level expression."""
        if not isinstance(node, _List):
            raise self.error(f"expected '(' at top level, got {node.text!r}", node)
        head = self.head(node)
        if head.text in ("declare-const", "declare-fun"):
            self.declare(node, head.text == "declare-fun")
        elif head.text == "assert":
            if len(node.items) != 2:
                raise self.error("assert takes exactly one formula", head)
            try:
                self.asserts.append(self.formula(node.items[1]))
            except RecursionError:
                raise self.error("expression nested too deeply", node) from None
        elif head.text not in _IGNORED_COMMANDS:
            raise self.error(f"unknown command {head.text!r}", head)

    def head(self, node: _List) -> _Atom:
        """The operator of a list expression."""
        if not node.items:
            raise self.error("empty expression '()'", node)
        head = node.items[0]
        if not isinstance(head, _Atom):
            raise self.error("expected an operator, got '('", head)
        return head

    def declare(self, node: _List, is_fun: bool) -> None:
        """``(declare-const NAME Real)`` or ``(declare-fun NAME () Real)``."""
        items = node.items
        expected = 4 if is_fun else 3
        if len(items) < 2 or not isinstance(items[1], _Atom):
            raise self.error("expected a variable name after the declaration", node)
        if len(items) != expected or (is_fun and not (isinstance(items[2], _List) and not items[2].items)):
            raise self.error(f"malformed declaration of {items[1].text}", items[0])
        name, sort = items[1], items[-1]
        if not isinstance(sort, _Atom) or sort.text != "Real":
            shown = sort.text if isinstance(sort, _Atom) else "(...)"
            raise self.error(f"only Real variables are supported, got sort {shown!r}", sort)
        key = _variable_key(name.text)
        if key is None:
            raise self.error(f"variable names must be X_<i> or Y_<i>, got {name.text!r}", name)
        if name.text in self.names:
            raise self.error(f"{name.text} is declared twice", name)
        self.names[name.text] = key
        self.decl_nodes[key] = name

    # ---- formulas

    def formula(self, node) -> list[_Term]:
        """The DNF of a formula: a list of terms (empty: false)."""
        if isinstance(node, _Atom):
            if node.text == "true":
                return [_Term()]
            if node.text == "false":
                return []
            raise self.error(f"expected a constraint, got {node.text!r}", node)
        head = self.head(node)
        op, args = head.text, node.items[1:]
        if op in _COMPARISONS:
            return self.comparison(head, args)
        if op == "or":
            return self.disjunction(head, args)
        if op == "and":
            common, rest = _conjoin([self.formula(a) for a in args], self.dnf_error(head))
            return [] if common is None else _product([common], rest, self.dnf_error(head))
        if op in _TERM_OPS:
            raise self.error(f"expected a constraint, got the term operator {op!r}", head)
        raise self.error(f"unknown operator {op!r}", head)

    def disjunction(self, head: _Atom, args: list) -> list[_Term]:
        """The DNF of ``(or ...)``: the concatenation of the arguments' DNFs."""
        out: list[_Term] = []
        for arg in args:
            out.extend(self.formula(arg))
            if len(out) > MAX_DNF_TERMS:
                raise self.dnf_error(head)(f"the property expands to more than {MAX_DNF_TERMS} DNF terms")
        return out

    def comparison(self, head: _Atom, args: list) -> list[_Term]:
        """``(op t1 t2 ...)``: the conjunction of ``t_k op t_{k+1}`` as ``e <= 0`` forms."""
        if len(args) < 2:
            raise self.error(f"{head.text!r} needs at least two arguments", head)
        terms = [self.term(a) for a in args]
        pieces = []
        for left, right in zip(terms, terms[1:]):
            if head.text in ("<=", "<", "="):
                pieces.append(self.constraint(_sub(left, right), head))
            if head.text in (">=", ">", "="):
                pieces.append(self.constraint(_sub(right, left), head))
        common, rest = _conjoin(pieces, self.dnf_error(head))
        return [] if common is None else _product([common], rest, self.dnf_error(head))

    def constraint(self, expr: tuple[dict, float], head: _Atom) -> list[_Term]:
        """The DNF of ``expr <= 0`` for a linear ``expr``."""
        coefs, const = expr
        if not coefs:
            return [_Term()] if const <= 0 else []
        inputs = [i for kind, i in coefs if kind == "X"]
        if not inputs:
            return [_Term(rows=[({i: c for (_, i), c in coefs.items()}, 0.0 - const)])]
        if len(coefs) > 1:
            names = ", ".join(f"{k}_{i}" for k, i in sorted(coefs))
            raise self.error(
                f"unsupported constraint linking {names}: inputs may only have single-variable bounds",
                head,
            )
        (c,) = coefs.values()
        bound = -const / c + 0.0  # + 0.0 turns -0.0 into 0.0
        if c > 0:
            return [_Term(hi={inputs[0]: bound})]
        return [_Term(lo={inputs[0]: bound})]

    # ---- terms

    def term(self, node) -> tuple[dict, float]:
        """A linear term as ``(coefficients by (kind, index), constant)``."""
        if isinstance(node, _Atom):
            return self.atom(node)
        head = self.head(node)
        op = head.text
        if op not in _TERM_OPS:
            if op in _COMPARISONS or op in _CONNECTIVES:
                raise self.error(f"expected a term, got the formula operator {op!r}", head)
            raise self.error(f"unknown operator {op!r}", head)
        args = [self.term(a) for a in node.items[1:]]
        if not args:
            raise self.error(f"{op!r} needs at least one argument", head)
        if op == "+":
            return _sum(args)
        if op == "-":
            return _scale(args[0], -1.0) if len(args) == 1 else _sub(args[0], _sum(args[1:]))
        if op == "*":
            return self.product(args, head)
        return self.quotient(args, head)

    def atom(self, node: _Atom) -> tuple[dict, float]:
        """A number or a declared variable."""
        text = node.text
        first = text[0]
        if first.isdigit() or (first in "+-." and len(text) > 1):
            return {}, self.number(node)
        key = self.names.get(text)
        if key is not None:
            return {key: 1.0}, 0.0
        if _variable_key(text) is not None:
            raise self.error(f"undeclared variable {text!r}{self.declared_range(text[0])}", node)
        raise self.error(f"expected a number or a variable, got {text!r}", node)

    def number(self, node: _Atom) -> float:
        """A finite decimal number (integers, decimals, scientific notation)."""
        text = node.text
        try:
            if "_" in text or not text.isascii():
                raise ValueError
            value = float(text)
        except ValueError:
            raise self.error(f"bad number {text!r}", node) from None
        if not math.isfinite(value):
            raise self.error(f"bad number {text!r} (not finite)", node)
        return value

    def declared_range(self, kind: str) -> str:
        """``' (declared: X_0..X_9)'`` for the error messages."""
        count = sum(1 for k, _ in self.names.values() if k == kind)
        return f" (declared: {kind}_0..{kind}_{count - 1})" if count else f" (no {kind} declared)"

    def product(self, args: list, head: _Atom) -> tuple[dict, float]:
        """``(* ...)`` with at most one non-constant factor."""
        factor, result = 1.0, None
        for coefs, const in args:
            if coefs:
                if result is not None:
                    raise self.error("non-linear product: at most one factor may be a variable", head)
                result = (coefs, const)
            else:
                factor *= const
        return _scale(result, factor) if result is not None else ({}, factor)

    def quotient(self, args: list, head: _Atom) -> tuple[dict, float]:
        """``(/ a c ...)`` with constant, non-zero divisors."""
        result = args[0]
        for coefs, const in args[1:]:
            if coefs or const == 0:
                raise self.error("division only by a non-zero constant is supported", head)
            result = _scale(result, 1.0 / const)
        return result

    # ---- assembly

    def counts(self) -> tuple[int, int]:
        """The number of inputs and outputs; indices must be contiguous from 0."""
        counts = []
        for kind, what in (("X", "inputs"), ("Y", "outputs")):
            indices = sorted(i for k, i in self.names.values() if k == kind)
            if not indices:
                raise SpecError(f"{self.path}: no {what} ({kind}_0, ...) are declared")
            missing = next((j for j, i in enumerate(indices) if i != j), None)
            if missing is not None:
                last = self.decl_nodes[(kind, indices[-1])]
                raise self.error(
                    f"{kind}_{indices[-1]} is declared but {kind}_{missing} is not: "
                    f"{what} must be {kind}_0..{kind}_<n-1>",
                    last,
                )
            counts.append(len(indices))
        return counts[0], counts[1]


def _variable_key(name: str) -> tuple[str, int] | None:
    """``('X', 3)`` for ``X_3``; None for anything that is not a canonical X_i / Y_i."""
    digits = name[2:]
    if name[:2] not in ("X_", "Y_") or not (digits.isascii() and digits.isdigit()):
        return None
    if digits != str(int(digits)):
        return None
    return name[0], int(digits)


def _scale(expr: tuple[dict, float], factor: float) -> tuple[dict, float]:
    coefs, const = expr
    return {k: c * factor for k, c in coefs.items() if c * factor != 0}, const * factor


def _sum(exprs: list) -> tuple[dict, float]:
    coefs: dict = {}
    const = 0.0
    for expr_coefs, expr_const in exprs:
        for k, c in expr_coefs.items():
            coefs[k] = coefs.get(k, 0.0) + c
        const += expr_const
    return {k: c for k, c in coefs.items() if c != 0}, const


def _sub(left: tuple[dict, float], right: tuple[dict, float]) -> tuple[dict, float]:
    return _sum([left, _scale(right, -1.0)])


# --------------------------------------------------------------------------- to specs


def _box(term: _Term, lower: np.ndarray, upper: np.ndarray) -> tuple | None:
    """The term's bounds that are tighter than the common box, as a hashable key.

    None when the term's box is empty.
    """
    lo = tuple(sorted((i, v) for i, v in term.lo.items() if v > lower[i]))
    hi = tuple(sorted((i, v) for i, v in term.hi.items() if v < upper[i]))
    final_lo, final_hi = dict(lo), dict(hi)
    for i in final_lo.keys() | final_hi.keys():
        if final_lo.get(i, lower[i]) > final_hi.get(i, upper[i]):
            return None
    return lo, hi


def _conjunction(rows: list, num_outputs: int) -> Conjunction:
    """Output rows as a Conjunction; no rows means the whole box is unsafe (0 <= 0)."""
    if not rows:
        return Conjunction(np.zeros((1, num_outputs)), np.zeros(1))
    A = np.zeros((len(rows), num_outputs))
    b = np.empty(len(rows))
    for r, (coefs, bound) in enumerate(rows):
        for j, c in coefs.items():
            A[r, j] = c
        b[r] = bound
    return Conjunction(A, b)


def _bounds_array(pairs, default: np.ndarray) -> np.ndarray:
    array = default.copy()
    for i, v in pairs:
        array[i] = v
    return array


def _specs(parser: _Parser, num_inputs: int, num_outputs: int) -> tuple[Spec, ...]:
    """Assemble the specs: one per distinct input box, in order of appearance."""
    path = parser.path
    common, terms = _conjoin(parser.asserts, lambda m: SpecError(f"{path}: {m}"))
    if common is None:
        return ()
    lower = _bounds_array(common.lo.items(), np.full(num_inputs, -np.inf))
    upper = _bounds_array(common.hi.items(), np.full(num_inputs, np.inf))
    groups: dict[tuple, list[Conjunction]] = {}
    for term in terms:
        key = _box(term, lower, upper)
        if key is not None:
            groups.setdefault(key, []).append(_conjunction(common.rows + term.rows, num_outputs))
    specs = []
    for (lo, hi), disjuncts in groups.items():
        box_lo, box_hi = _bounds_array(lo, lower), _bounds_array(hi, upper)
        _check_bounded(box_lo, box_hi, path)
        specs.append(Spec(box_lo, box_hi, tuple(disjuncts)))
    return tuple(specs)


def _check_bounded(lower: np.ndarray, upper: np.ndarray, path: str) -> None:
    """Every input needs a finite lower and upper bound."""
    for what, array in (("lower", lower), ("upper", upper)):
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise SpecError(f"{path}: input X_{bad[0]} has no finite {what} bound")


# --------------------------------------------------------------------------- API


def parse_vnnlib(
    text: str,
    path: str = "<string>",
    num_inputs: int | None = None,
    num_outputs: int | None = None,
) -> tuple[Spec, ...]:
    """Parse VNNLIB ``text``; ``path`` only labels error messages.

    Returns one :class:`Spec` per distinct input box; the property holds iff
    every returned spec holds.  ``num_inputs`` / ``num_outputs``, when given,
    must match the declared variables.
    """
    parser = _Parser(path)
    for node in _read(text, path):
        parser.command(node)
    n_in, n_out = parser.counts()
    for what, declared, expected in (("inputs", n_in, num_inputs), ("outputs", n_out, num_outputs)):
        if expected is not None and declared != expected:
            raise SpecError(f"{path}: declares {declared} {what} but {expected} were expected")
    return _specs(parser, n_in, n_out)


def read_vnnlib(
    path: str | Path,
    num_inputs: int | None = None,
    num_outputs: int | None = None,
) -> tuple[Spec, ...]:
    """Read a ``.vnnlib`` file (or ``.vnnlib.gz``); see :func:`parse_vnnlib`."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                text = handle.read()
        else:
            text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"VNNLIB file not found: {path}") from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise SpecError(f"cannot read VNNLIB file {path}: {exc}") from None
    return parse_vnnlib(text, str(path), num_inputs, num_outputs)
