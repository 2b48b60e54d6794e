"""training.evaluate end to end on tiny generated mixtures, and its pieces."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.eval_fixtures import write_mixture_set
from tests.model_factory import make_model, model_with_frames
from training import evaluate, metrics, peers


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """One full run: two sets of one mixture each, every system, DNSMOS on."""
    root = tmp_path_factory.mktemp("eval")
    write_mixture_set(root / "test_real", [(0.0, "white")])
    write_mixture_set(root / "test_tts", [(5.0, "hum")])
    model = make_model(root / "mask.onnx", scale=0.0, bias=0.0)  # constant gain 0.5
    seed = make_model(root / "seed.onnx", formulation="noise_subtraction", noise_db_value=-30)
    out = root / "out"
    code = evaluate.main(
        [
            "--sets",
            str(root / "test_real"),
            str(root / "test_tts"),
            "--model",
            str(model),
            "--seed-model",
            str(seed),
            "--out",
            str(out),
            "--rtf-seconds",
            "1",
        ]
    )
    assert code == 0
    return root, out


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_end_to_end_writes_one_row_per_clip_and_system(run):
    _, out = run
    rows = _rows(out)
    assert len(rows) == 2 * len(peers.PEER_NAMES)
    assert {(r["set"], r["system"]) for r in rows} == {
        (s, p) for s in ("test_real", "test_tts") for p in peers.PEER_NAMES
    }
    for row in rows:
        for metric in evaluate.METRICS:
            assert np.isfinite(float(row[metric])), (row["system"], metric)
    assert (out / "summary.png").stat().st_size > 10_000


def test_end_to_end_scores_match_the_metrics_called_directly(run):
    root, out = run
    clean, _ = sf.read(root / "test_real" / "clean" / "mix000.wav", dtype="float32")
    noisy, _ = sf.read(root / "test_real" / "noisy" / "mix000.wav", dtype="float32")
    by_system = {r["system"]: r for r in _rows(out) if r["set"] == "test_real"}
    assert float(by_system["noisy"]["si_sdr_db"]) == pytest.approx(
        metrics.si_sdr(clean, noisy), abs=1e-3
    )
    assert float(by_system["noisy"]["pesq_wb"]) == pytest.approx(
        metrics.pesq_wb(clean, noisy), abs=1e-3
    )
    # the constant-gain model only scales the input: SI-SDR and STOI are unchanged
    assert float(by_system["seproc"]["si_sdr_db"]) == pytest.approx(
        float(by_system["noisy"]["si_sdr_db"]), abs=1e-2
    )
    assert float(by_system["seproc"]["stoi"]) == pytest.approx(
        float(by_system["noisy"]["stoi"]), abs=1e-3
    )
    # the white-noise mixture at 0 dB: every real denoiser raises SI-SDR
    for name in ("rnnoise", "nsnet2", "deepfilternet3"):
        assert float(by_system[name]["si_sdr_db"]) > float(by_system["noisy"]["si_sdr_db"]) + 2


def test_end_to_end_summary(run):
    root, out = run
    summary = (out / "summary.md").read_text()
    assert "## test_real, input SNR 0 dB (1 clips)" in summary
    assert "## test_tts, input SNR 5 dB (1 clips)" in summary
    assert "### test_real: PESQ-wb per noise type" in summary
    assert "| white | 1 |" in summary
    assert "## seproc minus each peer, paired over clips" in summary
    assert "## Acceptance checks (issue 11) on test_real" in summary
    assert "| 0 | PESQ-wb vs rnnoise |" in summary
    assert "## Real-time factor on one core" in summary
    for name in peers.PEER_NAMES:
        assert f"| {name} |" in summary
    assert "formulation mask, run by seproc.Denoiser)." in summary
    run_meta = json.loads((out / "run.json").read_text())
    assert set(run_meta["rtf"]) == set(peers.PEER_NAMES)
    # the clean references scored by DNSMOS alone, per set and SNR
    assert "## DNSMOS of the clean references and of an oracle mask" in summary
    reference = run_meta["reference_dnsmos"]
    assert set(reference) == {"test_real", "test_tts"}
    assert set(reference["test_real"]) == {"0", "all"}
    clean, _ = sf.read(root / "test_real" / "clean" / "mix000.wav", dtype="float32")
    direct = metrics.Dnsmos()(clean)
    assert reference["test_real"]["0"]["ovrl"] == pytest.approx(direct.ovrl, abs=1e-3)
    ovrl = reference["test_real"]["0"]["ovrl"]
    assert f"| test_real | 0 | {reference['test_real']['0']['sig']:.2f} |" in summary
    assert f"{ovrl:.2f} |" in summary
    noisy, _ = sf.read(root / "test_real" / "noisy" / "mix000.wav", dtype="float32")
    oracle = metrics.Dnsmos()(evaluate.oracle_mask(clean, noisy))
    assert reference["test_real"]["0"]["oracle_ovrl"] == pytest.approx(oracle.ovrl, abs=1e-3)
    assert f"{reference['test_real']['all']['oracle_ovrl']:.2f} |" in summary
    assert run_meta["sample_rate_hz"]["rnnoise"] == 48000


def test_summarize_only_rebuilds_the_same_summary(run, tmp_path):
    _, out = run
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("results.csv", "run.json"):
        (copy / name).write_bytes((out / name).read_bytes())
    assert evaluate.main(["--out", str(copy), "--summarize-only"]) == 0
    assert (copy / "summary.md").read_text() == (out / "summary.md").read_text()
    assert (copy / "summary.png").is_file()


def test_seed_system_is_skipped_with_a_note_when_its_model_is_absent(tmp_path):
    write_mixture_set(tmp_path / "test_real", [(10.0, "hum")], seconds=1.0)
    out = tmp_path / "out"
    model = make_model(tmp_path / "m.onnx", scale=0.0, bias=100.0)
    args = ["--sets", str(tmp_path / "test_real"), "--model", str(model), "--out", str(out)]
    args += ["--systems", "noisy", "seproc", "seproc-seed", "--no-dnsmos", "--rtf-seconds", "0"]
    assert evaluate.main(args) == 0
    summary = (out / "summary.md").read_text()
    assert "seproc-seed skipped: no seed (noise-subtraction) model file" in summary
    assert "DNSMOS off (--no-dnsmos)." in summary
    assert {r["system"] for r in _rows(out)} == {"noisy", "seproc"}
    assert all(r["dnsmos_ovrl"] == "nan" for r in _rows(out))


def test_read_set_accepts_a_jsonl_manifest_with_other_key_spellings(tmp_path):
    lines = [
        {"id": "a", "noisy_path": "n/a.wav", "clean_path": "/abs/c.wav", "snr": 5, "noise": "car"}
    ]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (mixture,) = evaluate.read_set(tmp_path)
    assert mixture == evaluate.Mixture(
        set_name=tmp_path.name,
        mixture_id="a",
        noisy_path=tmp_path / "n/a.wav",
        clean_path=Path("/abs/c.wav"),
        snr_db=5.0,
        noise_type="car",
    )


def test_read_set_reads_the_corpus_builders_layout(tmp_path):
    """``training.data`` writes ``id`` and no file columns; files are {noisy,clean}/{id}.wav."""
    header = "id,split,snr_db,measured_snr_db,length_samples,noise_type,noise_unit\n"
    row = "test_real_000_snr+05,test,5.0,5.0001,64000,recorded: car,car-1\n"
    (tmp_path / "manifest.csv").write_text(header + row)
    (mixture,) = evaluate.read_set(tmp_path)
    assert mixture.mixture_id == "test_real_000_snr+05"
    assert mixture.noisy_path == tmp_path / "noisy" / "test_real_000_snr+05.wav"
    assert mixture.clean_path == tmp_path / "clean" / "test_real_000_snr+05.wav"
    assert (mixture.snr_db, mixture.noise_type) == (5.0, "recorded: car")


def test_infrasonic_note_names_noise_below_50_hz(tmp_path):
    write_mixture_set(tmp_path / "set", [(0.0, "rumble"), (0.0, "white"), (5.0, "hum")])
    note = evaluate.infrasonic_note(evaluate.read_set(tmp_path / "set"))
    assert note is not None
    assert note.startswith("1 of 3 mixtures have noise types whose energy lies mostly below 50 Hz")
    assert "rumble (98 %)" in note  # 0.5 / (0.5 + 0.1 ** 2)
    assert "white" not in note and "hum (" not in note
    write_mixture_set(tmp_path / "plain", [(0.0, "white")])
    assert evaluate.infrasonic_note(evaluate.read_set(tmp_path / "plain")) is None


def test_read_set_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"has no manifest\.csv"):
        evaluate.read_set(tmp_path)
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"noisy": "x.wav", "snr_db": 0}) + "\n")
    with pytest.raises(ValueError, match="a row lacks 'clean'"):
        evaluate.read_set(tmp_path)


def test_limit_keeps_n_per_set_and_snr_across_noise_types():
    mixtures = [
        evaluate.Mixture(s, f"{s}{snr}{noise}{i}", Path("n"), Path("c"), snr, noise)
        for s in ("real", "tts")
        for snr in (0.0, 5.0)
        for noise in ("car", "fan", "babble")
        for i in range(3)
    ]
    kept = evaluate.limit_mixtures(mixtures, 4)
    assert len(kept) == 2 * 2 * 4
    for s in ("real", "tts"):
        for snr in (0.0, 5.0):
            stratum = [m for m in kept if m.set_name == s and m.snr_db == snr]
            assert len(stratum) == 4
            assert {m.noise_type for m in stratum} == {"car", "fan", "babble"}
    # interleaved: the first four cover every (set, SNR) once
    assert {(m.set_name, m.snr_db) for m in kept[:4]} == {
        (s, snr) for s in ("real", "tts") for snr in (0.0, 5.0)
    }
    assert len(evaluate.limit_mixtures(mixtures, None)) == len(mixtures)


def test_command_line_errors(capsys):
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--out", "x"])
    assert "--sets FOLDER" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--sets", "a", "--out", "x"])
    assert "system 'seproc' needs --model PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--sets", "a", "--out", "x", "--systems", "noisy", "--limit", "0"])
    assert "--limit must be >= 1" in capsys.readouterr().err


def _earlier_results(rows, folder, marked):
    """Write ``test_real``'s noisy and rnnoise rows as an earlier run's ``results.csv``.

    The ``marked`` systems' PESQ-wb becomes 9.99, a marker no real score can reach, so a
    reused row is told from a recomputed one. Returns the file's path.
    """
    folder.mkdir()
    kept = [r for r in rows if r["set"] == "test_real" and r["system"] in ("noisy", "rnnoise")]
    for row in kept:
        if row["system"] in marked:
            row["pesq_wb"] = "9.99"
    path = folder / "results.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return path


def test_reuse_takes_earlier_peer_rows_and_computes_the_rest(run, tmp_path):
    root, out = run
    rows = _rows(out)
    earlier = _earlier_results(rows, tmp_path / "earlier", marked=("noisy",))
    new = tmp_path / "new"
    args = ["--sets", str(root / "test_real"), str(root / "test_tts"), "--out", str(new)]
    args += ["--systems", "noisy", "rnnoise", "--reuse", str(earlier)]
    assert evaluate.main([*args, "--rtf-seconds", "1"]) == 0
    result = {(r["set"], r["system"]): r for r in _rows(new)}
    assert len(result) == 4
    assert result[("test_real", "noisy")]["pesq_wb"] == "9.99"
    assert float(result[("test_tts", "noisy")]["pesq_wb"]) < 4.7  # computed afresh
    assert result[("test_tts", "rnnoise")]["si_sdr_db"] == next(
        r["si_sdr_db"] for r in rows if r["set"] == "test_tts" and r["system"] == "rnnoise"
    )
    summary = (new / "summary.md").read_text()
    assert "2 of 4 clip × system scores were taken from" in summary
    assert set(json.loads((new / "run.json").read_text())["rtf"]) == {"noisy", "rnnoise"}


def test_oracle_mask_reproduces_clean_input_and_beats_the_mixture():
    rng = np.random.default_rng(3)
    t = np.arange(32000) / 16000
    clean = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    noise = (0.1 * rng.standard_normal(clean.size)).astype(np.float32)
    # no noise: the mask is 1 everywhere speech is, the output is the input
    np.testing.assert_allclose(evaluate.oracle_mask(clean, clean), clean, atol=1e-5)
    noisy = clean + noise
    output = evaluate.oracle_mask(clean, noisy)
    assert output.shape == noisy.shape and output.dtype == np.float32
    assert metrics.si_sdr(clean, output) > metrics.si_sdr(clean, noisy) + 10
    # the floor bounds the attenuation: noise alone comes out 40 dB down, not silenced
    quiet = evaluate.oracle_mask(np.zeros_like(noise), noise)
    ratio_db = 10 * np.log10(np.mean(quiet[400:-400] ** 2) / np.mean(noise[400:-400] ** 2))
    assert ratio_db == pytest.approx(-40.0, abs=0.5)


def _scipy_oracle(clean, noisy, n_fft=320, hop=160, floor_db=-40.0, power=1.0):
    """The ideal ratio mask on scipy's STFT (frames centred on multiples of the hop)."""
    from scipy.signal import istft, stft

    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft))
    kwargs = dict(fs=16000, window=window, nperseg=n_fft, noverlap=n_fft - hop)
    _, _, noisy_spec = stft(noisy.astype(np.float64), **kwargs)
    _, _, clean_spec = stft(clean.astype(np.float64), **kwargs)
    gain = (
        np.clip(
            np.abs(clean_spec) / np.maximum(np.abs(noisy_spec), 1e-12), 10 ** (floor_db / 20), 1
        )
        ** power
    )
    return istft(noisy_spec * gain, **kwargs)[1][: noisy.size]


@pytest.mark.parametrize("n_samples", [1009, 16001, 48000])
def test_oracle_mask_is_the_ideal_ratio_mask_on_scipys_stft(n_samples):
    """The runtime's STFT frames the clip as scipy.signal.stft does (centred, zero-padded)."""
    rng = np.random.default_rng(n_samples)
    t = np.arange(n_samples) / 16000
    clean = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    noisy = clean + (0.1 * rng.standard_normal(n_samples)).astype(np.float32)
    output = evaluate.oracle_mask(clean, noisy)
    np.testing.assert_allclose(output, _scipy_oracle(clean, noisy), rtol=0, atol=1e-7)
    assert np.max(np.abs(output - noisy)) > 0.05  # the mask does something
    # raised to a power: scipy's frames again, and more taken out than at power 1
    powered = evaluate.oracle_mask(clean, noisy, power=1.5)
    np.testing.assert_allclose(powered, _scipy_oracle(clean, noisy, power=1.5), rtol=0, atol=1e-7)
    assert np.sum(powered**2) < np.sum(output**2)
    with pytest.raises(ValueError, match="power"):
        evaluate.oracle_mask(clean, noisy, power=0.0)


def test_oracle_mask_uses_the_models_frames(tmp_path):
    rng = np.random.default_rng(4)
    clean = (0.3 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)).astype(np.float32)
    noisy = clean + (0.1 * rng.standard_normal(clean.size)).astype(np.float32)
    model = model_with_frames(tmp_path / "frames640.onnx", 640)
    output = evaluate.oracle_mask(clean, noisy, model=model)
    reference = _scipy_oracle(clean, noisy, n_fft=640, hop=320)
    np.testing.assert_allclose(output, reference, rtol=0, atol=1e-7)
    assert np.max(np.abs(output - evaluate.oracle_mask(clean, noisy))) > 1e-3


@pytest.mark.parametrize("n_samples", [0, 1, 159, 161])
def test_oracle_mask_keeps_clips_shorter_than_a_frame(n_samples):
    """scipy.signal.stft refuses these ('window is longer than input signal')."""
    clean = (0.3 * np.sin(np.arange(n_samples) / 3)).astype(np.float32)
    np.testing.assert_allclose(evaluate.oracle_mask(clean, clean), clean, atol=1e-6)
    noisy = clean + 0.1
    output = evaluate.oracle_mask(clean, noisy)
    assert output.shape == (n_samples,) and output.dtype == np.float32
    assert np.all(np.isfinite(output))


def test_oracle_mask_errors(tmp_path):
    with pytest.raises(ValueError, match=r"clean \(10,\) and noisy \(11,\) must have the same"):
        evaluate.oracle_mask(np.zeros(10), np.zeros(11))
    model = model_with_frames(tmp_path / "8k.onnx", 160, sample_rate_hz=8000)
    with pytest.raises(ValueError, match="runs at 8000 Hz; the oracle mask works on 16000 Hz"):
        evaluate.oracle_mask(np.zeros(10), np.zeros(10), model=model)


def test_reuse_systems_takes_only_the_named_systems_rows(run, tmp_path):
    root, out = run
    earlier = _earlier_results(_rows(out), tmp_path / "earlier", marked=("noisy", "rnnoise"))
    new = tmp_path / "new"
    args = ["--sets", str(root / "test_real"), "--out", str(new), "--systems", "noisy", "rnnoise"]
    args += ["--reuse", str(earlier), "--reuse-systems", "rnnoise"]
    assert evaluate.main([*args, "--rtf-seconds", "0"]) == 0
    result = {r["system"]: r for r in _rows(new)}
    assert result["rnnoise"]["pesq_wb"] == "9.99"  # taken
    assert float(result["noisy"]["pesq_wb"]) < 4.7  # recomputed, though the file had it
    assert "(systems rnnoise)" in (new / "summary.md").read_text()
