"""The public signatures and their defaults, pinned literally (soundfile's ``test_argspec``).

Refactoring the layers underneath must not change what a caller writes: every
parameter's name, kind and default of the public entry points is written out here.
"""

from __future__ import annotations

import inspect

import pytest

from seproc import Denoiser, denoise, process_file
from seproc.batch import denoise_corpus, denoise_folder_ray
from seproc.cli import build_parser
from seproc.live import LiveClient, run

KW = inspect.Parameter.KEYWORD_ONLY
POS = inspect.Parameter.POSITIONAL_OR_KEYWORD
EMPTY = inspect.Parameter.empty


def spec(function):
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_denoiser():
    assert spec(Denoiser) == [
        ("model", POS, None),
        ("sample_rate", KW, 16000),
        ("channels", KW, 1),
        ("attenuation_limit_db", KW, None),
        ("max_block_samples", KW, 8192),
        ("num_threads", KW, 1),
        ("warm_up", KW, True),
        ("postfilter", KW, True),
    ]
    assert spec(Denoiser.process) == [
        ("self", POS, EMPTY),
        ("block", POS, EMPTY),
        ("out", POS, None),
    ]


def test_denoise():
    assert spec(denoise) == [
        ("audio", POS, EMPTY),
        ("sample_rate", POS, EMPTY),
        ("model", KW, None),
        ("attenuation_limit_db", KW, None),
        ("num_threads", KW, 1),
        ("postfilter", KW, True),
    ]


def test_process_file():
    """``on_block`` (a progress callback, default None) and ``postfilter`` were added."""
    assert spec(process_file) == [
        ("src", POS, EMPTY),
        ("dst", POS, EMPTY),
        ("model", KW, None),
        ("attenuation_limit_db", KW, None),
        ("num_threads", KW, 1),
        ("block_samples", KW, 65536),
        ("subtype", KW, None),
        ("postfilter", KW, True),
        ("denoiser", KW, None),
        ("on_block", KW, None),
    ]


def test_pedalboard_file_function():
    pedalboard = pytest.importorskip("seproc.integrations.pedalboard")
    assert spec(pedalboard.process_file_with_chain) == [
        ("src", POS, EMPTY),
        ("dst", POS, EMPTY),
        ("before", KW, None),
        ("after", KW, None),
        ("model", KW, None),
        ("attenuation_limit_db", KW, None),
        ("chunk_samples", KW, 65536),
        ("bit_depth", KW, None),
        ("postfilter", KW, True),
        ("denoiser", KW, None),
    ]


RAY_ENGINE = [
    ("in_dir", POS, EMPTY),
    ("out_dir", POS, EMPTY),
    ("address", KW, None),
    ("num_workers", KW, None),
    ("model", KW, None),
    ("attenuation_limit_db", KW, None),
    ("block_samples", KW, 65536),
    ("subtype", KW, None),
    ("overwrite", KW, False),
    ("postfilter", KW, True),
]


def test_ray_engine_functions():
    assert spec(denoise_folder_ray) == RAY_ENGINE
    assert spec(denoise_corpus) == [
        *RAY_ENGINE,
        ("on_skip", KW, None),
        ("_stop_after_files", KW, None),
    ]


LIVE_CLIENT = [
    ("channels", KW, 1),
    ("attenuation_limit_db", KW, None),
    ("model", KW, None),
    ("name", KW, "seproc"),
    ("server", KW, None),
    ("connect_input", KW, ()),
    ("connect_output", KW, ()),
    ("bypass", KW, False),
    ("postfilter", KW, True),
]


def test_live_functions():
    """``run`` passes the client's keywords on; its signature still lists each one."""
    assert spec(LiveClient) == LIVE_CLIENT
    assert spec(run) == [
        *LIVE_CLIENT,
        ("duration_s", KW, None),
        ("report", KW, None),
        ("handle_signals", KW, True),
    ]


def test_cli_denoise_defaults():
    args = build_parser().parse_args(["denoise", "in.wav", "out.wav"])
    assert vars(args) | {"run": None} == {
        "command": "denoise",
        "input": "in.wav",
        "output": "out.wav",
        "attenuation_limit": None,
        "model": None,
        "block_size": None,
        "subtype": None,
        "overwrite": False,
        "skip_existing": False,
        "quiet": False,
        "engine": "local",
        "address": None,
        "num_workers": None,
        "postfilter": True,
        "run": None,
    }


def test_cli_info_defaults():
    args = build_parser().parse_args(["info"])
    assert vars(args) | {"run": None} == {
        "command": "info",
        "model": None,
        "json": False,
        "run": None,
    }
