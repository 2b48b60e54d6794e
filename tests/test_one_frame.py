"""The one-frame graph (seproc._one_frame) and its runs (OnnxModel.frame_run).

Against the file's graph on the bundled model: every output and state element of a
long stream, one frame per call, within 1e-5 (the acceptance bound; here they agree
bit for bit), and a stream that switches between both graphs call by call. The same, bit for
bit, on small U-Nets exported by ``training.export`` with and without a refine head;
heads the derivation cannot follow keep the file's graph. The ONNX writer against the
``onnx`` package.
"""

import tracemalloc

import numpy as np
import pytest

import seproc.model
from seproc._one_frame import OPSET, one_frame_graph
from seproc._onnx_proto import read_graph, write_model
from seproc.errors import ParameterError
from seproc.model import OnnxModel, default_model_path
from tests.model_factory import make_model, make_unet_model
from tests.streaming import stream

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def file_model():
    return OnnxModel()


@pytest.fixture(scope="module")
def one_model():
    model = OnnxModel(one_frame_graph=True)
    assert model.one_frame_graph, model.one_frame_refusal
    return model


def speech_like_features(frames, seed=0):
    """Normalised features: noise, with loud voiced stretches and near-silent ones."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((frames, 161)).astype(np.float32)
    envelope = np.sin(2 * np.pi * np.arange(frames) / 150.0)[:, None]
    harmonics = np.cos(2 * np.pi * np.arange(161) / 3.6)[None, :]
    features += (2.5 * np.maximum(envelope, 0) * harmonics).astype(np.float32)
    features[frames // 3 : frames // 3 + 100] = -3.0  # near silence
    return features


def states_of(state):
    return {name: array.copy() for name, array in state.inputs().items()}


def test_one_frame_graph_equals_the_file_graph_on_every_frame_of_a_long_stream(
    file_model, one_model
):
    frames = 3000  # 30 s at a 10 ms hop
    features = speech_like_features(frames)
    expected = np.zeros_like(features)
    whole = file_model.new_state()
    file_model.run(features, expected, whole)

    state = one_model.new_state()
    row = np.zeros((1, 161), np.float32)
    out = np.zeros((1, 161), np.float32)
    run = one_model.frame_run(row, out, state)
    reference = file_model.new_state()
    reference_out = np.zeros((1, 161), np.float32)
    worst = 0.0
    for t in range(frames):
        row[:] = features[t]
        run()
        np.testing.assert_allclose(out[0], expected[t], rtol=0, atol=TOLERANCE)
        file_model.run(features[t : t + 1], reference_out, reference)
        if t % 97 == 0:  # the states, every so often, against the file graph's frame by frame
            for name, value in states_of(state).items():
                np.testing.assert_allclose(value, reference.inputs()[name], atol=TOLERANCE)
        worst = max(worst, float(np.max(np.abs(out[0] - expected[t]))))
    for name, value in states_of(state).items():
        np.testing.assert_allclose(value, whole.inputs()[name], rtol=0, atol=TOLERANCE)
    assert worst <= TOLERANCE


def test_a_stream_may_switch_graphs_from_call_to_call(file_model, one_model):
    features = speech_like_features(400, seed=1)
    expected = np.zeros_like(features)
    file_model.run(features, expected, file_model.new_state())
    state = one_model.new_state()
    got = np.zeros_like(features)
    start, sizes, i = 0, [1, 3, 1, 1, 7, 2], 0
    while start < len(features):
        size = min(sizes[i % len(sizes)], len(features) - start)
        # one frame: the derived graph; more: the file's graph; the same state either way
        one_model.run(features[start : start + size], got[start : start + size], state)
        start += size
        i += 1
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


def test_frame_run_equals_run_and_allocates_nothing(one_model):
    features = speech_like_features(1500, seed=2)
    row = np.zeros((1, 161), np.float32)
    out = np.zeros((1, 161), np.float32)
    state_a, state_b = one_model.new_state(), one_model.new_state()
    run = one_model.frame_run(row, out, state_a)
    expected = np.zeros((1, 161), np.float32)
    for t in range(500):  # onnxruntime's Python binding keeps ~20 KB on its first runs
        row[:] = features[t]
        run()
        one_model.run(features[t : t + 1], expected, state_b)
        np.testing.assert_array_equal(out, expected)
    grown, peak = _traced(lambda t: (row.__setitem__(slice(None), features[t]), run()), 500, 1500)
    assert grown < 1024  # a leak of even one small object per run would be >= 16 KB
    assert peak < 8 * 1024  # views and numbers only, no array


def _traced(step, first, stop):
    """Run ``step(t)`` for ``t`` in ``[first, stop)``; return the bytes kept and the peak."""
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for t in range(first, stop):
            step(t)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return current - baseline, peak - baseline


def test_frame_run_after_reset_starts_a_new_stream(one_model):
    features = speech_like_features(10, seed=3)
    row = np.zeros((1, 161), np.float32)
    out = np.zeros((1, 161), np.float32)
    state = one_model.new_state()
    run = one_model.frame_run(row, out, state)
    first = []
    for t in range(10):
        row[:] = features[t]
        run()
        first.append(out.copy())
    state.reset()
    for t in range(10):
        row[:] = features[t]
        run()
        np.testing.assert_array_equal(out, first[t])


def test_frame_run_refuses_wrong_buffers(one_model):
    state = one_model.new_state()
    good = np.zeros((1, 161), np.float32)
    with pytest.raises(ParameterError, match=r"features must be float32 of shape \(1, 161\)"):
        one_model.frame_run(np.zeros((2, 161), np.float32), good, state)
    with pytest.raises(ParameterError, match=r"out must be float32 .* got float64"):
        one_model.frame_run(good, np.zeros((1, 161)), state)
    strided = np.zeros((1, 322), np.float32)[:, ::2]
    with pytest.raises(ParameterError, match=r"out must be C-contiguous"):
        one_model.frame_run(good, strided, state)


def test_frame_run_works_without_the_derived_graph(file_model):
    features = speech_like_features(5, seed=4)
    expected = np.zeros_like(features)
    file_model.run(features, expected, file_model.new_state())
    row = np.zeros((1, 161), np.float32)
    out = np.zeros((1, 161), np.float32)
    run = file_model.frame_run(row, out, file_model.new_state())
    for t in range(5):
        row[:] = features[t]
        run()
        np.testing.assert_array_equal(out[0], expected[t])


def test_a_graph_of_another_layout_keeps_the_file_graph(tmp_path):
    model = OnnxModel(make_model(tmp_path / "toy.onnx"), one_frame_graph=True)
    assert not model.one_frame_graph
    assert "Conv" in model.one_frame_refusal
    assert OnnxModel().one_frame_refusal == "not requested"


def test_a_derived_graph_that_disagrees_is_not_used(monkeypatch):
    monkeypatch.setattr(seproc.model, "_ONE_FRAME_TOLERANCE", -1.0)
    model = OnnxModel(one_frame_graph=True)
    assert not model.one_frame_graph
    assert model.one_frame_refusal.startswith("it differs from the file's graph by")


def test_written_model_reads_back_with_the_onnx_package(one_model):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    info = one_model.info
    graph, inputs, outputs = one_frame_graph(
        read_graph(default_model_path()), info.state_shapes, info.n_bins, info.output_name
    )
    proto = onnx.load_from_string(write_model(graph, inputs, outputs, opset=OPSET))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == list(inputs)
    assert [o.name for o in proto.graph.output] == list(outputs)
    for value in proto.graph.input:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        assert tuple(dims) == inputs[value.name]
    for tensor in proto.graph.initializer:
        np.testing.assert_array_equal(
            numpy_helper.to_array(tensor), graph.initializers[tensor.name]
        )
    for node, ours in zip(proto.graph.node, graph.nodes, strict=True):
        assert (node.op_type, list(node.input), list(node.output)) == (
            ours.op_type,
            ours.inputs,
            ours.outputs,
        )
        for attribute in node.attribute:
            value = onnx.helper.get_attribute_value(attribute)
            expected = ours.attributes[attribute.name]
            if isinstance(value, float):
                assert value == pytest.approx(expected)
            else:
                assert (list(value) if isinstance(value, list) else value) == expected
    # no Slice, Transpose or dynamic axis left
    assert not {n.op_type for n in graph.nodes} & {"Slice", "Transpose", "Squeeze", "Unsqueeze"}


def test_negative_integers_round_trip_through_the_writer(tmp_path):
    import onnxruntime as ort

    from seproc._onnx_proto import OnnxGraph, OnnxNode

    graph = OnnxGraph(
        [
            OnnxNode("Reshape", ["x", "shape"], ["flat"], {}),
            OnnxNode("Concat", ["flat", "flat"], ["y"], {"axis": -1}),  # a negative varint
        ],
        {"shape": np.array([1, -1], np.int64)},
    )
    data = write_model(graph, {"x": (2, 3)}, {"y": (1, 12)}, opset=OPSET)
    (tmp_path / "m.onnx").write_bytes(data)
    assert read_graph(tmp_path / "m.onnx").nodes[1].attributes == {"axis": -1}
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    flat = x.reshape(1, 6)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], np.concatenate([flat, flat], 1))


@pytest.fixture(autouse=True)
def _onnxruntime_engine(monkeypatch):
    """Denoisers here run onnxruntime (the one-frame graph), not the streaming default."""
    import seproc.denoiser

    monkeypatch.setattr(seproc.denoiser, "_ENGINE", "onnxruntime")


@pytest.fixture(scope="module")
def speech_16k():
    rng = np.random.default_rng(7)
    t = np.arange(3 * 16000) / 16000
    voice = 0.2 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    return (voice + 0.03 * rng.standard_normal(t.size)).astype(np.float32)[None]


@pytest.mark.parametrize("sizes", [[160], [64], [1, 159, 160, 161, 480]])
def test_denoiser_partitions_equal_one_call_with_the_one_frame_graph(speech_16k, sizes):
    from seproc import Denoiser

    expected = Denoiser(sample_rate=16000).process(speech_16k).copy()  # many frames per call
    denoiser = Denoiser(sample_rate=16000)
    assert denoiser._model.one_frame_graph
    np.testing.assert_array_equal(stream(denoiser, speech_16k, sizes), expected)


@pytest.mark.parametrize(("sample_rate", "block"), [(16000, 160), (48000, 480), (48000, 128)])
def test_denoiser_one_frame_calls_allocate_nothing(sample_rate, block):
    from seproc import Denoiser

    denoiser = Denoiser(sample_rate=sample_rate)
    rng = np.random.default_rng(8)
    signal = (0.1 * rng.standard_normal((1, 1500 * block))).astype(np.float32)
    out = np.zeros((1, block), np.float32)

    def step(i):
        denoiser.process(signal[:, i * block : (i + 1) * block], out=out)

    for i in range(500):  # onnxruntime's Python binding keeps ~20 KB on its first runs
        step(i)
    grown, peak = _traced(step, 500, 1500)
    assert grown < 1024  # nothing kept per call
    assert peak < 8 * 1024  # views and numbers only: no audio buffer, no binding


# -- exported U-Nets, with and without a refine head ----------------------------------------
@pytest.fixture(scope="module")
def refine_path(tmp_path_factory):
    pytest.importorskip("torch")
    return make_unet_model(tmp_path_factory.mktemp("refine") / "refine.onnx", refine_channels=4)


@pytest.fixture(scope="module", params=["plain", "refine"])
def unet_path(request, tmp_path_factory, refine_path):
    if request.param == "refine":
        return refine_path
    return make_unet_model(tmp_path_factory.mktemp("plain") / "plain.onnx")


def test_the_derived_graph_equals_the_file_graph_bit_for_bit_on_exported_unets(unet_path):
    one = OnnxModel(unet_path, one_frame_graph=True)
    assert one.one_frame_graph, one.one_frame_refusal
    file_model = OnnxModel(unet_path)
    frames = 1200
    features = speech_like_features(frames, seed=5)
    expected = np.zeros_like(features)
    whole = file_model.new_state()
    file_model.run(features, expected, whole)

    state = one.new_state()
    row = np.zeros((1, 161), np.float32)
    out = np.zeros((1, 161), np.float32)
    run = one.frame_run(row, out, state)
    reference = file_model.new_state()
    reference_out = np.zeros((1, 161), np.float32)
    for t in range(frames):
        row[:] = features[t]
        run()
        np.testing.assert_array_equal(out[0], expected[t])
        file_model.run(features[t : t + 1], reference_out, reference)
        if t % 53 == 0:  # states mid-stream, against the file graph's own one-frame runs
            for name, value in states_of(state).items():
                np.testing.assert_array_equal(value, reference.inputs()[name])
    for name, value in states_of(state).items():
        np.testing.assert_array_equal(value, whole.inputs()[name])
    # the gains move with the input: a model with a dead head would pass the above too
    assert float(np.std(expected)) > 1e-3


def test_the_refine_head_is_in_the_derived_graph(refine_path):
    path = refine_path
    info = OnnxModel(path).info
    graph, _, _ = one_frame_graph(read_graph(path), info.state_shapes, info.n_bins, "gain")
    ops = [node.op_type for node in graph.nodes]
    assert ops.count("Conv") == 2 + 3  # two encoder levels, three refine convolutions
    refine_concat = graph.nodes[len(ops) - ops[::-1].index("ConvTranspose")]
    assert refine_concat.op_type == "Concat"
    assert refine_concat.inputs[0] == "conv1_out"  # the frame's features
    assert refine_concat.attributes["axis"] == 1


def _concat_in_time(node):
    node.attributes["axis"] = 2


def _kernel_over_two_frames(node):
    node.attributes["kernel_shape"] = [2, 5]


def _tanh(node):
    node.op_type = "Tanh"
    node.attributes.clear()


@pytest.mark.parametrize(
    ("op_type", "edit", "message"),
    [
        ("Concat", _concat_in_time, "Concat after the decoder does not join channels"),
        ("Conv", _kernel_over_two_frames, "Conv after the decoder reaches across frames"),
        ("LeakyRelu", _tanh, "unexpected Tanh after the decoder"),
    ],
)
def test_a_head_that_the_derivation_cannot_follow_is_refused(refine_path, op_type, edit, message):
    info = OnnxModel(refine_path).info
    graph = read_graph(refine_path)
    one_frame_graph(graph, info.state_shapes, info.n_bins, "gain")  # as exported: derived
    deconv = max(i for i, n in enumerate(graph.nodes) if n.op_type == "ConvTranspose")
    edit(next(n for n in graph.nodes[deconv + 1 :] if n.op_type == op_type))
    with pytest.raises(ValueError, match=message):
        one_frame_graph(graph, info.state_shapes, info.n_bins, "gain")


def test_a_model_with_an_unknown_head_runs_on_the_file_graph(refine_path, tmp_path):
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(refine_path)
    act = next(n for n in proto.graph.node if n.name.startswith("/model/refine/act"))
    act.op_type = "Softsign"  # not a head operator the derivation knows
    del act.attribute[:]
    onnx.save(proto, tmp_path / "softsign.onnx")
    model = OnnxModel(tmp_path / "softsign.onnx", one_frame_graph=True)
    assert not model.one_frame_graph
    assert model.one_frame_refusal == "unexpected Softsign after the decoder"
    features = speech_like_features(20, seed=6)
    expected = np.zeros_like(features)
    model.run(features, expected, model.new_state())
    state = model.new_state()
    got = np.zeros_like(features)
    for t in range(20):
        model.run(features[t : t + 1], got[t : t + 1], state)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("sizes", [[160], [1, 159, 160, 161, 480]])
def test_denoiser_partitions_equal_one_call_with_a_refine_head(refine_path, speech_16k, sizes):
    from seproc import Denoiser

    path = refine_path
    expected = Denoiser(sample_rate=16000, model=path).process(speech_16k).copy()
    denoiser = Denoiser(sample_rate=16000, model=path)
    assert denoiser._model.one_frame_graph
    np.testing.assert_array_equal(stream(denoiser, speech_16k, sizes), expected)
