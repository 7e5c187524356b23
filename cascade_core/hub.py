"""The Hugging Face hub: which files a variant needs, fetched into the standard cache.

Files land in huggingface_hub's cache (`$HF_HOME/hub`, or `$HF_HUB_CACHE`), so other tools
share them; a file already there is not fetched again, and an interrupted download resumes
from the part an earlier run left. Every failure of the hub, the network or the disk becomes a
`ModelLoadError` that says what to do; any other error (a bug) is raised as it is.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from huggingface_hub import (HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url,
                             try_to_load_from_cache)
from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                    RevisionNotFoundError)
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import build_hf_headers

from .errors import ModelLoadError, first_line
from .options import DEFAULT_MODEL, WEIGHTS
from .released import RELEASED_FILES, TEXT_ENCODER_DIR, TEXT_ENCODER_FILES, TOKENIZER_DIR
from .units import format_bytes

log = logging.getLogger(__name__)
# The HTTP library's base error, of whichever library huggingface_hub uses (httpx in 1.x, httpx2 in 2.x):
# HfHubHTTPError derives from it, and so do its connection, TLS and timeout errors.
_HTTPError = next(base for base in HfHubHTTPError.__mro__[1:] if base.__name__ == "HTTPError")

REPO = DEFAULT_MODEL
SHARED = tuple(RELEASED_FILES[stage]["full"]["bf16"] for stage in ("stage_a", "previewer")) + (
    f"{TEXT_ENCODER_DIR}/config.json",)
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")

Say = Callable[[str], None]


def is_repo_id(source: str) -> bool:
    """`owner/name` that is not an existing local path."""
    return bool(_REPO_ID.fullmatch(str(source))) and not Path(source).expanduser().exists()


def wanted_files(variant: str, weights: str, available: set[str], skip: tuple[str, ...] = ()) -> list[str]:
    """Repository paths a variant needs, given the files the repository (or cache) has.

    The text encoder's bf16 file is taken where present, else its fp32 one; the whole
    `tokenizer/` folder is taken; the `skip`ped networks (stage_c, stage_b: given as files) are not.
    Raises ModelLoadError naming what is missing.
    """
    if variant not in ("full", "lite") or weights not in WEIGHTS:
        raise ModelLoadError(f"unknown variant {variant!r} or weights {weights!r}; use full or lite, bf16 or fp32")
    text_files = [f"{TEXT_ENCODER_DIR}/{TEXT_ENCODER_FILES[w]}" for w in (weights, *WEIGHTS)]
    text = next((f for f in text_files if f in available), text_files[0])
    tokenizer = sorted(f for f in available if f.startswith(f"{TOKENIZER_DIR}/"))
    files = [*(RELEASED_FILES[stage][variant][weights] for stage in ("stage_c", "stage_b") if stage not in skip),
             *SHARED, text, *tokenizer]
    missing = [f for f in files if f not in available] + ([] if tokenizer else [f"{TOKENIZER_DIR}/"])
    if missing:
        raise _Missing(missing)
    return files


class _Missing(ModelLoadError):
    def __init__(self, missing: list[str]):
        super().__init__(", ".join(missing))
        self.missing = missing


@dataclass(frozen=True)
class _Wanted:
    """What one fetch takes from a repository: `select(available paths)` → the paths (raises _Missing),
    how to say it, and the download command that fetches it again."""
    select: Callable[[set[str]], list[str]]
    what: str  # "for the lite variant (bf16 weights)"
    command: str  # "python -m cascade_core download --model REPO --variant lite"
    missing: str = "it is not a Stable Cascade repository in the released layout (stabilityai/stable-cascade)"


def fetch(repo: str = REPO, *, variant: str, weights: str = "bf16", revision: str | None = None,
          force: bool = False, skip: tuple[str, ...] = (), progress: Say | None = None) -> Path:
    """Download what `variant` needs from `repo` (or find it in the cache), less the `skip`ped networks;
    the snapshot folder."""
    wanted = _Wanted(lambda available: wanted_files(variant, weights, available, skip),
                     f"for the {variant} variant ({weights} weights)",
                     f"python -m cascade_core download --model {repo} --variant {variant}")
    return _fetch(repo, wanted, revision, force, progress or (lambda message: None))


def fetch_files(repo: str, names: list[str], *, revision: str | None = None, force: bool = False,
                progress: Say | None = None) -> Path:
    """Download the named files of `repo` (or find them in the cache); the snapshot folder."""
    def select(available: set[str]) -> list[str]:
        missing = [name for name in names if name not in available]
        if missing:
            raise _Missing(missing)
        return list(names)

    wanted = _Wanted(select, f"({', '.join(names)})", f"python -m cascade_core download --model {repo} --extras")
    return _fetch(repo, wanted, revision, force, progress or (lambda message: None))


def fetch_file(repo: str, name: str, *, progress: Say | None = None) -> Path:
    """One file of `repo` (a LoRA) from the cache, downloaded first when it is not there; its path."""
    def select(available: set[str]) -> list[str]:
        if name not in available:
            raise _Missing([name])
        return [name]

    wanted = _Wanted(select, f"({name})", f"hf download {repo} {name}", "check the file's path in the repository")
    return _fetch(repo, wanted, None, False, progress or (lambda message: None)) / name


def fetch_text_support(repo: str = REPO, *, progress: Say | None = None) -> Path:
    """`tokenizer/` and `text_encoder/config.json` of `repo` (about 2 MB), or their cached copy: what a
    single-file checkpoint's text encoder lacks. The snapshot folder."""
    config = f"{TEXT_ENCODER_DIR}/config.json"

    def select(available: set[str]) -> list[str]:
        tokenizer = sorted(f for f in available if f.startswith(f"{TOKENIZER_DIR}/"))
        missing = ([] if tokenizer else [f"{TOKENIZER_DIR}/"]) + ([] if config in available else [config])
        if missing:
            raise _Missing(missing)
        return [*tokenizer, config]

    wanted = _Wanted(select, "(the tokenizer and the text encoder's config)",
                     f"python -m cascade_core download --model {repo}")
    return _fetch(repo, wanted, None, False, progress or (lambda message: None))


def _fetch(repo: str, wanted: _Wanted, revision: str | None, force: bool, say: Say) -> Path:
    try:
        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    except (GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise _access_error(repo, revision, e) from e
    except HfHubHTTPError as e:
        if _status(e) in (401, 403):
            raise _access_error(repo, revision, e) from e
        if _status(e) is not None and _status(e) < 500:
            raise ModelLoadError(f"the Hugging Face hub refused {repo} (HTTP {_status(e)}: {first_line(e)})") from e
        return _cached(repo, wanted, revision, reason=f"the hub answered HTTP {_status(e)}", say=say)
    except OfflineModeIsEnabled:
        return _cached(repo, wanted, revision, reason="offline mode is on (HF_HUB_OFFLINE=1)", say=say)
    except _HTTPError as e:  # no connection, DNS, TLS, timeout: try the cache
        log.debug("the hub did not answer for %s", repo, exc_info=True)
        return _cached(repo, wanted, revision, say=say,
                       reason=f"the Hugging Face hub cannot be reached ({type(e).__name__}: {first_line(e)})")
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or ()}
    try:
        files = wanted.select(set(sizes))
    except _Missing as e:
        raise ModelLoadError(f"{repo} has no {', '.join(e.missing)}: {wanted.missing}") from e
    say(f"{repo} at {info.sha[:7]}: {len(files)} file{'s' if len(files) != 1 else ''}, {format_bytes(sum(sizes[f] for f in files))} {wanted.what}")
    _remember_revision(repo, revision or "main", info.sha)
    path = None
    for number, name in enumerate(files, 1):
        if not force and isinstance(try_to_load_from_cache(repo, name, revision=info.sha), str):
            say(f"[{number}/{len(files)}] {name}: in the cache")
        else:
            say(f"[{number}/{len(files)}] downloading {name} ({format_bytes(sizes[name])})")
        path = _download(repo, name, info.sha, force, functools.partial(_Bar, say, name))
    return _snapshot_root(Path(path), files[-1])


def _cached(repo: str, wanted: _Wanted, revision: str | None, *, reason: str, say: Say) -> Path:
    """The cached snapshot that holds everything wanted, when the hub cannot be asked."""
    folder = cache_snapshot(repo, revision)
    available = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} if folder else set()
    try:
        wanted.select(available)
    except _Missing as e:
        where = folder or Path(constants.HF_HUB_CACHE)
        raise ModelLoadError(
            f"{reason}, and the cache ({where}) lacks {', '.join(e.missing)}. Connect to the internet and run "
            f"`{wanted.command}`, or pass --model a local folder with the files.") from e
    say(f"{reason}; using the cached copy of {repo} ({folder.name[:7]})")
    return folder


def _download(repo: str, name: str, revision: str, force: bool, bar) -> str:
    """One file into the cache; a plain HTTP download resumes from the part an earlier run left."""
    try:
        meta = get_hf_file_metadata(hf_hub_url(repo, name, revision=revision))
        if meta.xet_file_data is not None:  # Xet storage: hf_xet transfers it
            return hf_hub_download(repo, name, revision=revision, force_download=force, tqdm_class=bar)
        return str(_resumable_get(repo, name, revision, meta, force, bar))
    except (GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise _access_error(repo, revision, e) from e
    except (_HTTPError, OSError) as e:  # the network or the disk failed mid-file (HfHubHTTPError is both)
        raise ModelLoadError(
            f"downloading {name} from {repo} stopped ({type(e).__name__}: {first_line(e)}). Run the same command "
            "again: it resumes where it stopped. If the disk is full, free space in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) or set HF_HOME to a larger disk.") from e


def _resumable_get(repo: str, name: str, revision: str, meta, force: bool, bar) -> Path:
    """Fetch into blobs/<etag>.part (kept if the run stops), then link it into the snapshot.

    huggingface_hub's own download discards a partial file when it fails; the cache layout
    (blobs/, snapshots/<commit>/ linking to them) is the one it documents, so it finds the file later.
    """
    root = _cache_root(repo)
    blob, pointer = root / "blobs" / meta.etag, root / "snapshots" / revision / name
    if force:
        blob.unlink(missing_ok=True)
    if not blob.is_file():
        part = blob.with_name(blob.name + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        with part.open("ab") as f:
            http_get(meta.location, f, resume_size=f.tell(), headers=build_hf_headers(), expected_size=meta.size,
                     displayed_filename=name, tqdm_class=bar)
        part.replace(blob)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.unlink(missing_ok=True)
    try:
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    except OSError:  # no symlinks (Windows without developer mode): a copy
        shutil.copyfile(blob, pointer)
    return pointer


def _access_error(repo: str, revision: str | None, e: Exception) -> ModelLoadError:
    if isinstance(e, GatedRepoError):
        return ModelLoadError(
            f"{repo} is gated: accept its licence on https://huggingface.co/{repo} while logged in, then log in here "
            "with `hf auth login` or set HF_TOKEN to a token of that account.")
    if isinstance(e, RevisionNotFoundError):
        return ModelLoadError(f"{repo} has no revision {revision!r}; leave out --revision to use main")
    return ModelLoadError(
        f"{repo} was not found, or it is private or gated and no valid token was sent: check the name; if it needs "
        "access, accept its licence on its model page, then `hf auth login` or set HF_TOKEN.")


def _cache_root(repo: str) -> Path:
    return Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"


def cache_snapshot(repo: str, revision: str | None) -> Path | None:
    """snapshots/<commit> of `repo` in the cache (the layout huggingface_hub documents)."""
    root = _cache_root(repo)
    commit = revision or "main"
    ref = root / "refs" / commit
    if ref.is_file():
        commit = ref.read_text().strip()
    folder = root / "snapshots" / commit
    return folder if folder.is_dir() else None


def _remember_revision(repo: str, revision: str, commit: str) -> None:
    """Write refs/<revision> → commit, as huggingface_hub's snapshot_download does, so the cache finds it offline."""
    if revision != commit:
        ref = _cache_root(repo) / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)


def _snapshot_root(path: Path, name: str) -> Path:
    """The snapshot folder, from a downloaded file's path and its name in the repository."""
    return path.parents[len(Path(name).parts) - 1]


def _status(e: HfHubHTTPError) -> int | None:
    return getattr(getattr(e, "response", None), "status_code", None)


class _Bar:
    """The progress-bar protocol huggingface_hub drives (its `tqdm_class`), reported as lines."""

    EVERY_S = 2.0

    def __init__(self, say: Say, name: str, *, total: int | None = None, initial: int = 0, **_):
        self.say, self.name, self.total, self.n, self.shown = say, name, total, initial, time.monotonic()
        if initial:
            say(f"resuming {name} at {format_bytes(initial)}")

    def update(self, n: int = 1) -> None:
        self.n += n
        done = self.total is not None and self.n >= self.total
        if done or time.monotonic() - self.shown >= self.EVERY_S:
            self.shown = time.monotonic()
            share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
            total = f" of {format_bytes(self.total)}" if self.total else ""
            self.say(f"{self.name}: {format_bytes(self.n)}{total}{share}")

    def close(self) -> None:
        pass

    def __enter__(self) -> "_Bar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
