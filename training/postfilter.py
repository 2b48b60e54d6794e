r"""Write (or remove) the gain post-filter of a seproc mask model (format 2, ``models/FORMAT.md``).

Command::

    python -m training.postfilter models/seproc-default.onnx --out /tmp/seproc-pf.onnx \
        --release-db-per-s 60 --exponent 1.2

writes ``gain_release_db_per_s`` and ``gain_exponent`` into the model's metadata and
sets ``seproc_model_format`` to 2: per bin, the runtime lets a gain fall by at most
``gain_release_db_per_s`` per second and raises the held gain to ``gain_exponent``
(``seproc.Denoiser(postfilter=False)`` turns it off). ``--pitch-filter-strength 1``
adds ``pitch_filter_strength``: RNNoise's pitch (comb) filter on the frames before the
gains (``seproc.pitch``). Without any of the three (or with 0, 1, 0) the keys are
removed and the format set back to 1, the model's raw gains. Only the metadata
changes: every node, initializer and other metadata entry is left as it was, in its
order.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import onnx

from seproc.model import POSTFILTER_KEYS

__all__ = ["add_postfilter_arguments", "main", "postfilter_keys", "set_postfilter"]


def _format_float(value: float) -> str:
    """Return the shortest text that reads back as ``value`` (``60.0``, ``1.25``)."""
    return repr(float(value))


def postfilter_keys(
    release_db_per_s: float | None = None,
    exponent: float | None = None,
    pitch_filter_strength: float | None = None,
) -> dict[str, str]:
    """Return the post-filter's metadata entries, key -> value (empty: no post-filter).

    Parameters
    ----------
    release_db_per_s : float or None
        ``gain_release_db_per_s``, >= 0; ``None`` or 0 leaves the key out.
    exponent : float or None
        ``gain_exponent``, > 0; ``None`` or 1 leaves the key out.
    pitch_filter_strength : float or None
        ``pitch_filter_strength``, >= 0 (1: RNNoise's comb); ``None`` or 0 leaves it out.

    Raises
    ------
    ValueError
        If a value is negative, zero (the exponent) or not finite.
    """
    for name, value, allowed_zero in (
        ("release_db_per_s", release_db_per_s, True),
        ("exponent", exponent, False),
        ("pitch_filter_strength", pitch_filter_strength, True),
    ):
        if value is None:
            continue
        if not math.isfinite(value) or value < 0 or (value == 0 and not allowed_zero):
            rule = ">= 0 (0: none)" if allowed_zero else "> 0 (1: no exponent)"
            raise ValueError(f"{name}={value!r} must be a finite number {rule}")
    keys: dict[str, str] = {}
    if release_db_per_s:
        keys["gain_release_db_per_s"] = _format_float(release_db_per_s)
    if exponent is not None and exponent != 1.0:
        keys["gain_exponent"] = _format_float(exponent)
    if pitch_filter_strength:
        keys["pitch_filter_strength"] = _format_float(pitch_filter_strength)
    return keys


def set_postfilter(
    source: Path,
    target: Path,
    release_db_per_s: float | None = None,
    exponent: float | None = None,
    pitch_filter_strength: float | None = None,
) -> dict[str, str]:
    """Copy ``source`` to ``target`` with the post-filter keys set (or removed).

    Parameters
    ----------
    source, target : Path
        The seproc ONNX model to read and where to write the result (may be the same).
    release_db_per_s : float or None
        ``gain_release_db_per_s``, > 0; ``None`` or 0 leaves the key out.
    exponent : float or None
        ``gain_exponent``, > 0; ``None`` or 1 leaves the key out.
    pitch_filter_strength : float or None
        ``pitch_filter_strength`` (the comb before the gains, ``seproc.pitch``), >= 0;
        ``None`` or 0 leaves the key out.

    Returns
    -------
    dict[str, str]
        The metadata written, key -> value.

    Raises
    ------
    ValueError
        If a value is negative, zero (the exponent) or not finite, or if the model is
        not a seproc mask model and a key would be written.
    """
    keys = postfilter_keys(release_db_per_s, exponent, pitch_filter_strength)
    model = onnx.load(str(source), load_external_data=False)
    meta = {entry.key: entry.value for entry in model.metadata_props}
    if "seproc_model_format" not in meta:
        raise ValueError(f"{source} has no seproc_model_format metadata: not a seproc model")
    if keys and meta.get("formulation") != "mask":
        raise ValueError(
            f"{source} has formulation={meta.get('formulation')!r}; the gain post-filter "
            "applies to mask models only"
        )
    # metadata_props is a repeated field: keep the other entries and their order
    kept = [(e.key, e.value) for e in model.metadata_props if e.key not in POSTFILTER_KEYS]
    del model.metadata_props[:]
    for key, value in kept:
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = ("2" if keys else "1") if key == "seproc_model_format" else value
    for key, value in keys.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(target))
    return {"seproc_model_format": "2" if keys else "1", **keys}


def add_postfilter_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--release-db-per-s``, ``--exponent``, ``--pitch-filter-strength``.

    This tool's and ``training.export``'s.
    """
    parser.add_argument(
        "--release-db-per-s",
        type=float,
        default=None,
        metavar="DB",
        help="the gain post-filter's release: the most a bin's gain may fall, in dB per "
        "second (format 2; 0 or absent: no release)",
    )
    parser.add_argument(
        "--exponent",
        type=float,
        default=None,
        help="the gain post-filter's exponent on the released gain (1 or absent: none)",
    )
    parser.add_argument(
        "--pitch-filter-strength",
        type=float,
        default=None,
        metavar="S",
        help="the pitch (comb) filter before the gains, 1 = RNNoise's (seproc.pitch; "
        "0 or absent: none)",
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the seproc ONNX mask model")
    parser.add_argument("--out", type=Path, required=True, help="where to write the result")
    add_postfilter_arguments(parser)
    args = parser.parse_args(argv)
    try:
        written = set_postfilter(
            args.model, args.out, args.release_db_per_s, args.exponent, args.pitch_filter_strength
        )
    except ValueError as error:
        parser.error(str(error))
    for key, value in written.items():
        print(f"{key} = {value}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
