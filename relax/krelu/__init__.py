"""Multi-neuron (k-ReLU) relaxation: groups, octahedral bounds, convex hulls, LP rows.

Modules: :mod:`~relax.krelu.groups` (which neurons), :mod:`~relax.krelu.octahedron`
(CROWN bounds on ``c^T z_G``), :mod:`~relax.krelu.hull` (exact Qhull hull and a fast
template relaxation, both with sound right-hand sides), :mod:`~relax.krelu.encode`
(rows for the LP), :mod:`~relax.krelu.method` (the ``krelu`` verification method).
"""

from relax.krelu.options import KreluOptions
from relax.krelu.encode import LayerRows, add_rows, layer_rows
from relax.krelu.groups import select_groups
from relax.krelu.hull import HullRows, exact_hull, fast_hull, graph_points
from relax.krelu.method import krelu_disjunct_bounds, krelu_method, krelu_tighten
from relax.krelu.octahedron import OctahedronBounder, directions

__all__ = ["KreluOptions", "LayerRows", "add_rows", "layer_rows", "select_groups", "HullRows",
           "exact_hull", "fast_hull", "graph_points", "krelu_disjunct_bounds", "krelu_method",
           "krelu_tighten", "OctahedronBounder", "directions"]
