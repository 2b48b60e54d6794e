import json
import multiprocessing
import os
import threading

import numpy as np
import pytest

from seproc._validation import max_threads
from seproc.errors import ModelError, ParameterError
from seproc.model import OnnxModel
from tests.model_factory import make_model, reference_gain


@pytest.fixture
def model_path(tmp_path):
    return make_model(tmp_path / "m.onnx")


def test_metadata_is_read_and_validated(model_path):
    info = OnnxModel(model_path).info
    assert (info.sample_rate_hz, info.n_fft, info.hop_length, info.win_length) == (
        16000,
        320,
        160,
        320,
    )
    assert info.n_bins == 161 and info.formulation == "mask" and info.output_name == "gain"
    assert info.state_shapes == {"acc": (1, 1, 161)}
    assert info.feature_mean_db.shape == (161,) and not info.feature_mean_db.flags.writeable
    assert info.gain_floor_db == -25.0 and info.lookahead_frames == 0


def test_batched_run_equals_frame_by_frame_and_reference(model_path):
    model = OnnxModel(model_path)
    rng = np.random.default_rng(0)
    features = rng.standard_normal((23, 161)).astype(np.float32)
    whole = np.empty_like(features)
    model.run(features, whole, model.new_state())
    state = model.new_state()
    pieces = np.empty_like(features)
    start = 0
    for size in (1, 5, 1, 7, 9):
        model.run(features[start : start + size], pieces[start : start + size], state)
        start += size
    np.testing.assert_allclose(pieces, whole, atol=1e-6)
    np.testing.assert_allclose(whole, reference_gain(features), atol=1e-6)


def test_state_reset_restarts_the_stream(model_path):
    model = OnnxModel(model_path)
    features = np.ones((4, 161), np.float32)
    first, again = np.empty_like(features), np.empty_like(features)
    state = model.new_state()
    model.run(features, first, state)
    state.reset()
    model.run(features, again, state)
    np.testing.assert_array_equal(first, again)


def test_two_models_in_threads_match_sequential(model_path):
    features = np.random.default_rng(1).standard_normal((50, 161)).astype(np.float32)
    expected = np.empty_like(features)
    OnnxModel(model_path).run(features, expected, OnnxModel(model_path).new_state())
    results = [np.empty_like(features) for _ in range(4)]

    def work(out):
        model = OnnxModel(model_path)
        state = model.new_state()
        for i in range(50):
            model.run(features[i : i + 1], out[i : i + 1], state)

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in results:
        np.testing.assert_allclose(out, expected, atol=1e-6)


def test_models_of_one_unchanged_file_share_a_session_and_keep_their_own_streams(model_path):
    first, second = OnnxModel(model_path), OnnxModel(model_path)
    assert first._session is second._session  # opened once (seproc.denoise builds one per call)
    if max_threads() >= 2:
        assert OnnxModel(model_path, num_threads=2)._session is not first._session
    rng = np.random.default_rng(2)
    a = rng.standard_normal((30, 161)).astype(np.float32)
    b = rng.standard_normal((30, 161)).astype(np.float32)
    expected_a, expected_b = np.empty_like(a), np.empty_like(b)
    OnnxModel(model_path).run(a, expected_a, first.new_state())
    OnnxModel(model_path).run(b, expected_b, first.new_state())
    got_a, got_b = np.empty_like(a), np.empty_like(b)
    state_a, state_b = first.new_state(), second.new_state()
    for i in range(30):  # interleaved on the shared session
        first.run(a[i : i + 1], got_a[i : i + 1], state_a)
        second.run(b[i : i + 1], got_b[i : i + 1], state_b)
    np.testing.assert_array_equal(got_a, expected_a)
    np.testing.assert_array_equal(got_b, expected_b)


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
# Python 3.12+ warns when a process with threads forks: what a user's fork pool does
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_opens_its_own_session(model_path):
    parent = OnnxModel(model_path)
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child():
        model = OnnxModel(model_path)
        out = np.empty((1, 161), np.float32)
        model.run(np.zeros((1, 161), np.float32), out, model.new_state())
        send.send((id(model._session), bool(np.all(np.isfinite(out)))))

    process = context.Process(target=child)
    process.start()
    assert receive.poll(60), "the child did not answer"
    child_session, finite = receive.recv()
    process.join(10)
    assert child_session != id(parent._session)  # the inherited object has the same id
    assert finite


def test_a_rewritten_model_file_is_opened_again(tmp_path):
    path = make_model(tmp_path / "m.onnx", bias=0.0)
    features = np.zeros((1, 161), np.float32)
    before, after = np.empty_like(features), np.empty_like(features)
    model = OnnxModel(path)
    model.run(features, before, model.new_state())
    stat = path.stat()
    make_model(path, bias=3.0)  # same path and size, other weights
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    again = OnnxModel(path)
    assert again._session is not model._session
    again.run(features, after, again.new_state())
    assert not np.array_equal(before, after)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "does not exist"),
        (b"", "empty"),
        (b"this is not an onnx file at all", "could not be loaded"),
    ],
)
def test_bad_files_raise_model_error_naming_the_file(tmp_path, content, match):
    path = tmp_path / "bad.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=match) as raised:
        OnnxModel(path)
    assert "bad.onnx" in str(raised.value)


def test_truncated_file_raises_model_error(model_path, tmp_path):
    data = model_path.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"truncated\.onnx.*could not be loaded"):
        OnnxModel(truncated)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metadata": {"formulation": None}}, "lacks formulation"),
        ({"metadata": {"seproc_model_format": "9"}}, "format"),
        ({"metadata": {"n_fft": "abc"}}, "n_fft='abc' is not an integer"),
        ({"metadata": {"window": "hamming"}}, "window='hamming'"),
        ({"metadata": {"feature_std_db": json.dumps([0.0] * 161)}}, "feature_std_db must be > 0"),
        ({"metadata": {"feature_mean_db": "[1, 2]"}}, "feature_mean_db must hold 161"),
        ({"n_bins": 100}, r"shape \[1, frames, 161\]"),
        (
            {"formulation": "noise_subtraction", "metadata": {"formulation": "mask"}},
            "output named 'gain'",
        ),
    ],
)
def test_mismatched_metadata_raises_model_error(tmp_path, kwargs, match):
    path = make_model(tmp_path / "odd.onnx", **kwargs)
    with pytest.raises(ModelError, match=match):
        OnnxModel(path)


@pytest.mark.parametrize("num_threads", [0, -1, 1.5, True])
def test_num_threads_is_validated(model_path, num_threads):
    with pytest.raises(ParameterError, match="num_threads"):
        OnnxModel(model_path, num_threads=num_threads)
