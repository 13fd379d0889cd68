"""ONNX and torch importers: float64 agreement with onnxruntime and torch, and typed errors."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from relax.io.conv import conv2d_matrix
from relax.errors import NetworkError, UnsupportedOperatorError
from relax.network import Network
from relax.io.onnx_import import from_onnx
from relax.io.torch_import import from_torch

ort = pytest.importorskip("onnxruntime")

ATOL = 1e-6
INT64_MAX = np.iinfo(np.int64).max


# ---------------------------------------------------------------- float64 onnxruntime reference


def _double_tensor(tensor: onnx.TensorProto) -> onnx.TensorProto:
    """A float/float16 tensor re-encoded as DOUBLE (other tensors unchanged)."""
    if tensor.data_type not in (TensorProto.FLOAT, TensorProto.FLOAT16):
        return tensor
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float64), tensor.name)


def _conv_as_double_ops(node: onnx.NodeProto, weights: dict[str, np.ndarray]):
    """Rewrite a group-1 Conv as Pad, strided Slices, Einsum and Sum (float64 in onnxruntime).

    ``y = b + sum_{p,q} W[:, :, p, q] . xpad[:, :, p dH :: sH, q dW :: sW]`` (cropped).
    onnxruntime has no float64 Conv kernel, and this decomposition does not share code with relax.
    """
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs.get("group", 1) == 1 and attrs.get("auto_pad", b"NOTSET") == b"NOTSET"
    weight = weights[node.input[1]]
    _, _, k_h, k_w = weight.shape
    s_h, s_w = attrs.get("strides", [1, 1])
    d_h, d_w = attrs.get("dilations", [1, 1])
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    tag = node.output[0]
    pads = np.array([0, 0, top, left, 0, 0, bottom, right])
    inits = [numpy_helper.from_array(pads, f"{tag}_pads")]
    nodes = [helper.make_node("Pad", [node.input[0], f"{tag}_pads"], [f"{tag}_xp"])]
    terms = []
    for p in range(k_h):
        for q in range(k_w):
            key = f"{tag}_{p}_{q}"
            ends = [-(k_h - 1 - p) * d_h or INT64_MAX, -(k_w - 1 - q) * d_w or INT64_MAX]
            slicing = {"s": [p * d_h, q * d_w], "e": ends, "a": [2, 3], "t": [s_h, s_w]}
            for suffix, value in slicing.items():
                array = np.array(value, dtype=np.int64)
                inits.append(numpy_helper.from_array(array, f"{key}_{suffix}"))
            inits.append(numpy_helper.from_array(weight[:, :, p, q].copy(), f"{key}_w"))
            nodes.append(helper.make_node(
                "Slice", [f"{tag}_xp", f"{key}_s", f"{key}_e", f"{key}_a", f"{key}_t"], [f"{key}_x"]
            ))
            nodes.append(helper.make_node(
                "Einsum", [f"{key}_w", f"{key}_x"], [f"{key}_y"], equation="mc,bchw->bmhw"
            ))
            terms.append(f"{key}_y")
    if len(node.input) > 2 and node.input[2]:
        bias = weights[node.input[2]].reshape(1, -1, 1, 1)
        inits.append(numpy_helper.from_array(bias, f"{tag}_b"))
        terms.append(f"{tag}_b")
    nodes.append(helper.make_node("Sum", terms, [node.output[0]]))
    return nodes, inits


def to_double(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` computing in float64.

    Float initializers and Constant tensors become DOUBLE, graph input/output and
    value_info element types become DOUBLE, Casts to FLOAT cast to DOUBLE, and
    Conv (no float64 kernel in onnxruntime) is rewritten by :func:`_conv_as_double_ops`.
    """
    model = copy.deepcopy(model)
    graph = model.graph
    for init in graph.initializer:
        init.CopyFrom(_double_tensor(init))
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    nodes = []
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value":
                attr.t.CopyFrom(_double_tensor(attr.t))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.DOUBLE
        if node.op_type == "Conv":
            new_nodes, new_inits = _conv_as_double_ops(node, weights)
            nodes += new_nodes
            graph.initializer.extend(new_inits)
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.DOUBLE
    if all(op.domain not in ("", "ai.onnx") or op.version < 13 for op in model.opset_import):
        del model.opset_import[:]
        model.opset_import.append(helper.make_opsetid("", 13))  # Slice steps and Einsum need >= 12
    return model


def run_onnxruntime_double(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """onnxruntime's output for one input ``x`` (with batch dimension), computed in float64."""
    session = ort.InferenceSession(
        to_double(model).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    return session.run(None, {name: x.astype(np.float64)})[0]


def input_batch_shape(model: onnx.ModelProto) -> tuple[int, ...]:
    """The graph input's shape with the batch dimension set to 1."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return (1, *(d.dim_value for d in dims[1:]))


def assert_matches_onnxruntime(model: onnx.ModelProto, net: Network, seed=0, trials=4):
    """``net.forward`` equals float64 onnxruntime on ``trials`` random inputs within ATOL."""
    rng = np.random.default_rng(seed)
    shape = input_batch_shape(model)
    for _ in range(trials):
        x = rng.uniform(-1.0, 1.0, size=shape)
        expected = run_onnxruntime_double(model, x).reshape(-1)
        np.testing.assert_allclose(net.forward(x[0]), expected, rtol=0, atol=ATOL)


# ---------------------------------------------------------------- (a) the shared vnncomp nets


def shared_onnx_files(root):
    return sorted((root / "vnncomp2021" / "mnistfc").glob("*.onnx")) + sorted(
        (root / "vnncomp2021" / "eran" / "nets").glob("*.onnx")
    )


def test_shared_nets_match_onnxruntime(shared_data):
    files = shared_onnx_files(shared_data)
    assert files, f"no .onnx files under {shared_data / 'vnncomp2021'}"
    for path in files:
        net = from_onnx(path)
        assert net.is_relu, path
        assert net.output_size == 10, path
        assert_matches_onnxruntime(onnx.load(str(path)), net)


def test_eran_normalisation_becomes_affine(shared_data):
    path = shared_data / "vnncomp2021" / "eran" / "nets" / "mnist_relu_9_200.onnx"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    net = from_onnx(path)
    assert net.input_shape == (1, 28, 28)
    # Sub/Div/Flatten merge into the first Gemm; the final Relu gets an identity affine map.
    assert net.hidden_sizes == (200,) * 8 + (10,)


# ---------------------------------------------------------------- (b) torch-built conv nets


def conv_net_a() -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.Linear(6 * 3 * 3, 12),
        nn.Tanh(),
        nn.Linear(12, 5),
    ), (1, 8, 8)


def conv_net_b() -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Sequential(
            nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 2), dilation=2), nn.Tanh()
        ),
        nn.Conv2d(3, 2, 2, stride=2, bias=False),
        nn.ReLU(),
        nn.Flatten(),
        nn.Sequential(nn.Identity(), nn.Linear(2 * 1 * 5, 3)),
    ), (2, 7, 9)


def conv_net_c() -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 10),
    ), (3, 8, 8)


CONV_NETS = [conv_net_a, conv_net_b, conv_net_c]


def torch_forward(module: nn.Module, x: np.ndarray) -> np.ndarray:
    """The module's float64 output for a batch ``x``."""
    module = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy().reshape(len(x), -1)


def export(module: nn.Module, shape: tuple[int, ...], path) -> onnx.ModelProto:
    """Export with the legacy (TorchScript) exporter at batch size 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module.eval(), torch.zeros(1, *shape), str(path), dynamo=False,
            input_names=["x"], output_names=["y"],
        )
    return onnx.load(str(path))


@pytest.mark.parametrize("build", CONV_NETS, ids=lambda f: f.__name__)
def test_torch_conv_net_via_onnx(build, tmp_path):
    module, shape = build()
    model = export(module, shape, tmp_path / "net.onnx")
    net = from_onnx(tmp_path / "net.onnx")
    assert net.input_shape == shape
    assert_matches_onnxruntime(model, net)
    x = np.random.default_rng(3).uniform(-1, 1, size=(6, *shape))
    np.testing.assert_allclose(net.forward(x), torch_forward(module, x), rtol=0, atol=ATOL)


@pytest.mark.parametrize("build", CONV_NETS, ids=lambda f: f.__name__)
def test_from_torch_matches_torch_and_onnx(build, tmp_path):
    module, shape = build()
    net = from_torch(module, shape)
    x = np.random.default_rng(4).uniform(-1, 1, size=(6, *shape))
    np.testing.assert_allclose(net.forward(x), torch_forward(module, x), rtol=0, atol=ATOL)
    export(module, shape, tmp_path / "net.onnx")
    via_onnx = from_onnx(tmp_path / "net.onnx")
    np.testing.assert_allclose(net.forward(x), via_onnx.forward(x), rtol=0, atol=ATOL)
    assert net.hidden_sizes == via_onnx.hidden_sizes


def test_from_torch_same_padding_and_softplus():
    torch.manual_seed(5)
    module = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding="same", dilation=2),
        nn.Softplus(),
        nn.Flatten(),
        nn.Linear(3 * 6 * 5, 4),
    )
    net = from_torch(module, (2, 6, 5))
    x = np.random.default_rng(6).uniform(-2, 2, size=(5, 2, 6, 5))
    np.testing.assert_allclose(net.forward(x), torch_forward(module, x), rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    "stride, padding, dilation",
    [
        ((1, 1), (0, 0, 0, 0), (1, 1)),
        ((2, 1), (1, 0, 2, 1), (1, 2)),
        ((3, 2), (2, 2, 2, 2), (2, 1)),
    ],
)
def test_conv2d_matrix_matches_torch(stride, padding, dilation):
    rng = np.random.default_rng(7)
    weight, bias = rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3)
    x = rng.normal(size=(4, 2, 9, 8))
    matrix, offset, out_shape = conv2d_matrix(weight, bias, (2, 9, 8), stride, padding, dilation)
    top, left, bottom, right = padding
    padded = torch.nn.functional.pad(torch.from_numpy(x), (left, right, top, bottom))
    expected = torch.nn.functional.conv2d(
        padded, torch.from_numpy(weight), torch.from_numpy(bias), stride=stride, dilation=dilation
    ).numpy()
    assert expected.shape[1:] == out_shape
    ours = (matrix @ x.reshape(4, -1).T).T + offset
    np.testing.assert_allclose(ours, expected.reshape(4, -1), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- hand-built ONNX graphs


def make_model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    """A model onnxruntime accepts (opset 13, IR version 8)."""
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def value(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def tensor(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def save(model, tmp_path, name="model.onnx"):
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_normalise_reshape_matmul_graph(tmp_path):
    """Constant, Sub/Div/Mul/Add normalisation, Reshape, MatMul, Sigmoid, Identity, Gemm."""
    rng = np.random.default_rng(8)
    nodes = [
        helper.make_node("Constant", [], ["mean"], value=tensor("m", rng.normal(size=(2, 1, 1)))),
        helper.make_node("Sub", ["x", "mean"], ["a"], name="sub"),
        helper.make_node("Div", ["a", "std"], ["b"], name="div"),
        helper.make_node("Mul", ["scale", "b"], ["c"], name="mul"),
        helper.make_node("Reshape", ["c", "shape"], ["d"], name="reshape"),
        helper.make_node("MatMul", ["d", "w1"], ["e"], name="matmul"),
        helper.make_node("Add", ["e", "b1"], ["f"], name="add"),
        helper.make_node("Sigmoid", ["f"], ["g"], name="sigmoid"),
        helper.make_node("Identity", ["g"], ["h"], name="identity"),
        helper.make_node("Gemm", ["h", "w2", "b2"], ["y"], name="gemm", alpha=0.5, beta=2.0),
    ]
    inits = [
        tensor("std", rng.uniform(0.5, 2.0, size=(2, 1, 1))),
        tensor("scale", rng.normal(size=(3,))),
        numpy_helper.from_array(np.array([-1, 18]), "shape"),
        tensor("w1", rng.normal(size=(18, 7))),
        tensor("b1", rng.normal(size=(7,))),
        tensor("w2", rng.normal(size=(7, 4))),
        tensor("b2", rng.normal(size=(1, 4))),
    ]
    model = make_model(nodes, [value("x", ["batch", 2, 3, 3])], [value("y", None)], inits)
    net = from_onnx(save(model, tmp_path))
    assert net.input_shape == (2, 3, 3)
    assert len(net.affines) == 2
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    assert_matches_onnxruntime(model, net)


def test_conv_auto_pad_same_upper(tmp_path):
    rng = np.random.default_rng(9)
    weight = rng.normal(size=(2, 1, 3, 3))
    node = helper.make_node(
        "Conv", ["x", "w"], ["y"], name="conv", auto_pad="SAME_UPPER", strides=[2, 2]
    )
    inputs, outputs = [value("x", [1, 1, 6, 6])], [value("y", None)]
    model = make_model([node], inputs, outputs, [tensor("w", weight)])
    net = from_onnx(save(model, tmp_path))
    x = rng.normal(size=(1, 1, 6, 6))
    padded = torch.nn.functional.pad(torch.from_numpy(x), (0, 1, 0, 1))
    stored = torch.from_numpy(weight.astype(np.float32).astype(np.float64))  # saved as float32
    expected = torch.nn.functional.conv2d(padded, stored, stride=2)
    np.testing.assert_allclose(net.forward(x), expected.numpy().ravel(), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- (c) bad inputs


def gemm_chain(extra_nodes, weight=None, extra_inits=()):
    """x[1,4] -> Gemm(4->3, node 'fc') -> extra nodes ending in 'y'."""
    weight = np.ones((3, 4)) if weight is None else weight
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["h"], name="fc", transB=1), *extra_nodes]
    inits = [tensor("W", weight), tensor("B", np.zeros(3)), *extra_inits]
    return make_model(nodes, [value("x", [1, 4])], [value("y", None)], inits)


@pytest.mark.parametrize("op, extra", [("Softmax", {"axis": 1}), ("LeakyRelu", {"alpha": 0.1})])
def test_unsupported_operator(op, extra, tmp_path):
    model = gemm_chain([helper.make_node(op, ["h"], ["y"], name="the_bad_node", **extra)])
    with pytest.raises(UnsupportedOperatorError, match="the_bad_node") as info:
        from_onnx(save(model, tmp_path))
    assert op in str(info.value) and "Gemm" in str(info.value)
    assert info.value.node == "the_bad_node" and info.value.operator == op
    assert "\n" not in str(info.value)


def test_unsupported_maxpool(tmp_path):
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2])
    model = make_model([node], [value("x", [1, 1, 4, 4])], [value("y", None)])
    with pytest.raises(UnsupportedOperatorError, match="'MaxPool' at node 'pool'"):
        from_onnx(save(model, tmp_path))


def test_branching_graph(tmp_path):
    model = gemm_chain([
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Add", ["h", "r"], ["y"], name="skip"),
    ])
    with pytest.raises(NetworkError, match="'skip'.*sequential"):
        from_onnx(save(model, tmp_path))


def test_fork_graph(tmp_path):
    model = gemm_chain([
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Sigmoid", ["h"], ["y"], name="side"),
    ])
    with pytest.raises(NetworkError, match="'side'.*sequential"):
        from_onnx(save(model, tmp_path))


def test_two_graph_inputs(tmp_path):
    node = helper.make_node("Add", ["x", "z"], ["y"], name="add")
    model = make_model([node], [value("x", [1, 4]), value("z", [1, 4])], [value("y", None)])
    with pytest.raises(NetworkError, match="2 inputs"):
        from_onnx(save(model, tmp_path))


def test_nan_weight(tmp_path):
    weight = np.ones((3, 4))
    weight[1, 2] = np.nan
    model = gemm_chain([helper.make_node("Relu", ["h"], ["y"])], weight=weight)
    with pytest.raises(NetworkError, match="'fc'.*NaN"):
        from_onnx(save(model, tmp_path))


def test_gemm_weight_does_not_fit(tmp_path):
    model = gemm_chain([helper.make_node("Relu", ["h"], ["y"])], weight=np.ones((3, 5)))
    with pytest.raises(NetworkError, match="node 'fc' \\(Gemm\\).*does not fit"):
        from_onnx(save(model, tmp_path))


def test_broadcast_mismatch(tmp_path):
    model = gemm_chain(
        [helper.make_node("Sub", ["h", "mean"], ["y"], name="norm")],
        extra_inits=[tensor("mean", np.zeros(4))],
    )
    with pytest.raises(NetworkError, match="node 'norm'"):
        from_onnx(save(model, tmp_path))


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_text("this is not a protobuf\n" * 10)
    with pytest.raises(NetworkError, match="garbage.onnx"):
        from_onnx(path)
    with pytest.raises(NetworkError, match="missing.onnx"):
        from_onnx(tmp_path / "missing.onnx")


@pytest.mark.parametrize(
    "module, name",
    [
        (nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Softplus(beta=2.0)), "Softplus"),
        (nn.Sequential(nn.Sequential(nn.MaxPool2d(2)), nn.Flatten()), "MaxPool2d"),
        (nn.Sequential(nn.Conv2d(2, 2, 1, groups=2)), "Conv2d"),
    ],
)
def test_from_torch_unsupported(module, name):
    with pytest.raises(UnsupportedOperatorError, match=name):
        from_torch(module, (2, 1, 2))


def test_from_torch_errors():
    with pytest.raises(NetworkError, match="Linear"):
        from_torch(nn.Sequential(nn.Linear(5, 2)), (4,))
    module = nn.Sequential(nn.Linear(4, 2))
    with torch.no_grad():
        module[0].weight[0, 0] = float("inf")
    with pytest.raises(NetworkError, match="NaN or Inf"):
        from_torch(module, (4,))
