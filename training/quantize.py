r"""Put a seproc model's one-row product matrices on a per-row int8 grid (issue 20).

Command::

    python -m training.quantize models/seproc-default.onnx --out /tmp/seproc-int8.onnx

The matrices are those the BLAS engine multiplies one row at a time
(:func:`seproc._blas_net.int8_candidates`: the bottleneck's squeeze and expand MatMul
weights, the GRU's input and recurrent weights; 276 k of the shipped model's 349 k
weights). Each is rounded onto a symmetric grid with one float32 scale per *input*
index (the engine's row, ``ys += m[r, :] * x[r]``): ``w = float32(q) * s`` with
integers ``|q| <= 127``. The output file stays float32 and stays a plain ONNX model
(onnxruntime runs it as any other); its values are exactly those products, with each
scale chosen so that :func:`seproc._blas_net.int8_grid` recovers ``q`` and ``s`` from
the file bit for bit, so the engine holds them as int8 (a quarter of the bytes). Every
other byte of the model (nodes, other initializers, metadata) is left as it was.

This changes the network: the quality cost has to be measured (e.g.
``training/evaluate.py`` on the validation split) before such a model is shipped. The
relative weight change is printed per matrix.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx

from seproc._blas_net import INT8_MAX, int8_candidates, int8_grid
from seproc._onnx_proto import read_graph

__all__ = ["main", "quantize_matrix", "quantize_model"]

#: How many float32 steps either side of ``max |row| / 127`` a scale may move so that
#: the row's largest value gives it back exactly (one or two always suffice in practice).
_SCALE_SEARCH_ULPS = 8


def _recovered_scale(scale: np.float32) -> np.float32:
    """Return the scale :func:`int8_grid` reads from a row whose peak is ``127 * scale``."""
    peak = np.float32(INT8_MAX) * scale
    return np.float32(peak / np.float32(INT8_MAX))


def _row_scale(peak: np.float32) -> np.float32:
    """Return a float32 scale near ``peak / 127`` that :func:`int8_grid` recovers exactly."""
    start = np.float32(peak / np.float32(INT8_MAX))
    up = down = start
    for _ in range(_SCALE_SEARCH_ULPS + 1):
        for candidate in (up, down):
            if _recovered_scale(candidate) == candidate:
                return candidate
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(0.0))
    raise ValueError(f"no float32 scale near {start!r} round-trips through its row peak")


def quantize_matrix(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Round each row of ``matrix [n_in, n_out]`` onto a symmetric int8 grid.

    Parameters
    ----------
    matrix : np.ndarray
        float32 weights, one scale per row.

    Returns
    -------
    values : np.ndarray
        float32 ``[n_in, n_out]``: ``float32(q) * scale[:, None]``, exactly.
    q : np.ndarray
        int8 ``[n_in, n_out]``, in ``[-127, 127]``.
    scale : np.ndarray
        float32 ``[n_in]`` (0 for an all-zero row).
    """
    m = np.asarray(matrix, np.float32)
    peaks = np.max(np.abs(m), axis=1)
    scale = np.array([_row_scale(p) if p > 0 else np.float32(0.0) for p in peaks], np.float32)
    divisor = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float64)
    q = np.clip(np.rint(m.astype(np.float64) / divisor[:, None]), -INT8_MAX, INT8_MAX)
    values = q.astype(np.float32) * scale[:, None]
    grid = int8_grid(values)
    if grid is None or not (np.array_equal(grid[0], q) and np.array_equal(grid[1], scale)):
        raise ValueError("the rounded matrix does not read back as its own int8 grid")
    return values, q.astype(np.int8), scale


def _rows_first(array: np.ndarray, axis: int) -> np.ndarray:
    """``array`` as ``[n_in, rest]`` with its input ``axis`` first."""
    return np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)


def quantize_model(source: Path, target: Path) -> dict[str, dict[str, float]]:
    """Write ``source`` to ``target`` with its one-row product matrices on the int8 grid.

    Parameters
    ----------
    source, target : Path
        ONNX model files (float32 initializers stored inline).

    Returns
    -------
    dict
        Per matrix: ``max_change_of_row_peak`` and ``mean_change_of_row_peak`` (``|w' -
        w|`` over the largest ``|w|`` of the element's row), ``relative_rms_change``
        (``||w' - w|| / ||w||``), ``n_weights``.

    Raises
    ------
    ValueError
        If the model has no such matrix, or one is not an inline float32 initializer.
    """
    candidates = int8_candidates(read_graph(source))
    if not candidates:
        raise ValueError(f"{source}: no MatMul or GRU weight initializers to quantise")
    model = onnx.load(str(source), load_external_data=False)
    tensors = {t.name: t for t in model.graph.initializer}
    report: dict[str, dict[str, float]] = {}
    for name, axis in candidates.items():
        tensor = tensors[name]
        if tensor.data_type != onnx.TensorProto.FLOAT or tensor.data_location != 0:
            raise ValueError(f"{name!r} is not an inline float32 initializer")
        weight = onnx.numpy_helper.to_array(tensor).astype(np.float32)
        rows = _rows_first(weight, axis)
        values, _, _ = quantize_matrix(rows)
        change = np.abs(values - rows)
        peak = np.max(np.abs(rows), axis=1, keepdims=True)
        of_peak = change / np.where(peak > 0, peak, 1.0)
        report[name] = {
            "max_change_of_row_peak": float(np.max(of_peak)),
            "mean_change_of_row_peak": float(np.mean(of_peak)),
            "relative_rms_change": float(np.linalg.norm(change) / np.linalg.norm(rows)),
            "n_weights": float(rows.size),
        }
        moved = [weight.shape[axis], *np.delete(weight.shape, axis)]
        new = np.moveaxis(values.reshape(moved), 0, axis).astype("<f4")
        # only the values change: name, dims, data type and field layout stay
        if tensor.raw_data:
            tensor.raw_data = np.ascontiguousarray(new).tobytes()
        else:
            tensor.float_data[:] = new.ravel().tolist()
    onnx.save(model, str(target))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the float32 seproc ONNX model")
    parser.add_argument("--out", type=Path, required=True, help="where to write the result")
    args = parser.parse_args(argv)
    report = quantize_model(args.model, args.out)
    print("| initializer | weights | max |dw| / row peak | mean |dw| / row peak | rms dw / rms w |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, row in report.items():
        print(
            f"| {name} | {int(row['n_weights'])} | {row['max_change_of_row_peak']:.3g} | "
            f"{row['mean_change_of_row_peak']:.3g} | {row['relative_rms_change']:.3g} |"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
