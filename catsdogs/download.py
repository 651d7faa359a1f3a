"""Getting the competition files: Kaggle credentials and download, or an archive at hand, or the demo.

``kaggle`` is imported only when a download is really needed: the client authenticates as it is
imported, which fails on a machine without credentials.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from pathlib import Path

from .archives import ARCHIVE_ADVICE, DatasetError, check_archive, extract_competition, is_extracted
from .config import (ARCHIVE_NAME, COMPETITION, RULES_URL, Workspace, data_dir, demo_workspace, is_small,
                     kaggle_workspace, shown)
from .demo import demo_size, make_demo_archive

# ---------------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------------
def kaggle_config_dir() -> Path:
    """Where the client keeps kaggle.json: ``$KAGGLE_CONFIG_DIR``, else ``~/.kaggle``, else (Linux,
    when ``~/.kaggle`` does not exist) ``$XDG_CONFIG_HOME/kaggle``, as ``kaggle`` itself decides."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"]).expanduser()
    home = Path.home() / ".kaggle"
    if sys.platform.startswith("linux") and not home.exists():
        return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"
    return home


def has_kaggle_credentials() -> bool:
    """True when the kaggle client will find a way to sign in, each way it has: ``KAGGLE_USERNAME``
    and ``KAGGLE_KEY``; ``KAGGLE_API_TOKEN``; ``kaggle.json``; an access token in ``~/.kaggle/access_token``
    (or ``.txt``); or the OAuth sign-in of ``kaggle auth login``, kept in ``~/.kaggle/credentials.json``."""
    if (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")) or os.environ.get("KAGGLE_API_TOKEN"):
        return True
    home = Path.home() / ".kaggle"
    files = (kaggle_config_dir() / "kaggle.json", home / "access_token", home / "access_token.txt",
             home / "credentials.json")
    return any(f.is_file() and f.stat().st_size > 0 for f in files)


def write_kaggle_json(username: str, key: str) -> Path:
    """Save credentials where the kaggle client looks, readable by the owner only (mode 600)."""
    folder = kaggle_config_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kaggle.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"username": username, "key": key}, f)
    os.chmod(path, 0o600)
    return path


def _colab_secret(name: str) -> str | None:
    """A Colab secret (the key icon on the left), or None when it is missing or access was not granted."""
    try:
        from google.colab import userdata  # type: ignore

        return userdata.get(name) or None
    except Exception:  # SecretNotFoundError, NotebookAccessError, or an older Colab without secrets
        return None


def colab_credentials(ask_upload: bool = False) -> bool:
    """In Colab: take Kaggle credentials from the Colab secrets ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``
    (written to kaggle.json, mode 600) or ``KAGGLE_API_TOKEN`` (set for this session only); with
    ``ask_upload``, else ask for a ``kaggle.json`` upload. Nothing is printed of them. Returns True
    when credentials are now in place."""
    if "google.colab" not in sys.modules:
        return False
    username, key = _colab_secret("KAGGLE_USERNAME"), _colab_secret("KAGGLE_KEY")
    if username and key:
        write_kaggle_json(username, key)
        return True
    token = _colab_secret("KAGGLE_API_TOKEN")
    if token:
        os.environ["KAGGLE_API_TOKEN"] = token
        return True
    if not ask_upload:
        return False
    from google.colab import files  # type: ignore

    print("Upload your kaggle.json (Kaggle → Settings → API → Create New Token), or cancel to use the demo:")
    uploaded = files.upload()
    if "kaggle.json" not in uploaded:
        return False
    creds = json.loads(uploaded["kaggle.json"])
    write_kaggle_json(creds["username"], creds["key"])
    return True


NO_CREDENTIALS = (
    "No Kaggle credentials found. Either\n"
    "  - sign in once with `kaggle auth login` (kept in ~/.kaggle/credentials.json),\n"
    "  - or set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN) in the environment,\n"
    "  - or save kaggle.json (Kaggle → Settings → API → Create New Token) as ~/.kaggle/kaggle.json,\n"
    "  - or in Colab add KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN) as secrets (the key icon on the left),\n"
    f"  - or download {ARCHIVE_NAME} from the competition's Data page by hand and put it in {{data}}."
)


def _redact(text: str) -> str:
    """Hide the Kaggle key in a message: client and server errors may echo what was sent."""
    key = os.environ.get("KAGGLE_KEY") or os.environ.get("KAGGLE_API_TOKEN")
    try:
        key = key or json.loads((kaggle_config_dir() / "kaggle.json").read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        pass
    return text.replace(key, "***") if key else text


def _explain_download_error(err: Exception, data: Path) -> DatasetError:
    """A message that says what to do, for any way the download can fail."""
    import requests  # the kaggle client's transport; its errors carry the HTTP status
    import urllib3

    status = getattr(getattr(err, "response", None), "status_code", None)
    if status == 401:
        return DatasetError("Kaggle refused the credentials (HTTP 401). Check the username and key in "
                            "kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY; create a new token on Kaggle → Settings → API.")
    if status == 403:
        return DatasetError(f"Kaggle says the competition rules are not accepted yet (HTTP 403). Open {RULES_URL}, "
                            "click 'I Understand and Accept', then run this again.")
    if status == 404:
        return DatasetError(f"Kaggle has no competition called {COMPETITION!r} (HTTP 404).")
    by_hand = f"Without network, download {ARCHIVE_NAME} by hand and put it in {data}."
    if isinstance(err, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError)):
        return DatasetError(f"The download was cut off before the end ({type(err).__name__}); nothing was kept. "
                            f"Run this again. {by_hand}")
    if isinstance(err, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return DatasetError(f"Could not reach Kaggle ({type(err).__name__}). {by_hand}")
    return DatasetError(_redact(f"The Kaggle download failed ({type(err).__name__}: {err}). {by_hand}"))


def download_competition(dest: Path | None = None) -> Path:
    """Download the competition archive with the real ``kaggle`` client, into ``dest``.

    The file is downloaded into a private folder and moved into place only once it is a complete,
    readable zip: an interrupted download never leaves a file that looks finished.
    """
    dest = Path(dest or data_dir())
    if not has_kaggle_credentials():
        raise DatasetError(NO_CREDENTIALS.format(data=dest))
    import requests
    import urllib3

    from kaggle.api.kaggle_api_extended import KaggleApi  # lazy: importing `kaggle` authenticates

    staging = dest / ".download"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        api = KaggleApi()
        try:
            api.authenticate()
            api.competition_download_files(COMPETITION, path=str(staging), force=True, quiet=False)
        except SystemExit:
            raise DatasetError(NO_CREDENTIALS.format(data=dest)) from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as err:
            raise _explain_download_error(err, dest) from None
        downloaded = staging / ARCHIVE_NAME
        if not downloaded.exists():
            raise DatasetError(f"The Kaggle client finished but wrote no {ARCHIVE_NAME} in {staging}.")
        check_archive(downloaded, name=f"The downloaded {ARCHIVE_NAME}", advice="Kaggle's download was probably cut short; "
                      "nothing was kept. Run this again to download it again.")
        final = dest / ARCHIVE_NAME
        os.replace(downloaded, final)
        return final
    finally:  # whatever happened, no partial file stays behind
        shutil.rmtree(staging, ignore_errors=True)


def find_archive(explicit: Path | str | None = None) -> Path | None:
    """The competition archive given by argument or ``$CATSDOGS_ARCHIVE``, or one already in ``data/``."""
    given = explicit or os.environ.get("CATSDOGS_ARCHIVE")
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            what = "is a folder, not a zip" if path.is_dir() else "does not exist"
            raise DatasetError(f"The archive given, {path}, {what}. {ARCHIVE_ADVICE}")
        return path
    for candidate in (data_dir() / ARCHIVE_NAME, kaggle_workspace().archive):
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------------------------------------
# One call for notebook 01
# ---------------------------------------------------------------------------------------------
def prepare_dataset(archive: Path | str | None = None, *, download: bool = True, ask_upload: bool = True,
                    quiet: bool = False) -> Workspace:
    """Put the competition files in place and return their workspace, saying in one line what it did.

    In order: an archive given (or ``$CATSDOGS_ARCHIVE``, or already in ``data/``) is used; else
    photos extracted earlier; else, with Kaggle credentials (in Colab also its secrets, or a
    kaggle.json uploaded when asked: ``ask_upload``), a download; else the generated demo archive,
    with a warning. The ``small`` profile always uses the demo. Every step is skipped when already
    done, so any notebook can call this first, on a fresh machine or after the others.
    """
    say = (lambda message: None) if quiet else print
    if not is_small():
        found, real = find_archive(archive), kaggle_workspace()
        if found is None and real.extracted_marker.exists():  # extracted earlier, archive since moved
            say(f"Kaggle photos: already in place in {shown(real.local)} (extracted earlier)")
            return real
        if found is None and download and (has_kaggle_credentials() or colab_credentials(ask_upload)):
            found = download_competition(data_dir())
            say(f"downloaded {shown(found)} from Kaggle")
        if found is not None:
            return _extract_and_say(found, real, say)
        if not quiet:
            warnings.warn(f"No {ARCHIVE_NAME} in {shown(data_dir())} and no Kaggle credentials: this uses the generated "
                          "DEMO archive (synthetic pictures), not the Kaggle photos. See notebook 01 or the README for "
                          "the real data.", DemoDataWarning, stacklevel=2)
    ws = demo_workspace()
    if not ws.archive.exists():
        make_demo_archive(ws.archive, **demo_size())
    return _extract_and_say(ws.archive, ws, say)


class DemoDataWarning(UserWarning):
    """The notebooks run on the generated demo archive: their figures say nothing of the real photos."""


def _extract_and_say(archive: Path, ws: Workspace, say) -> Workspace:
    done = is_extracted(archive, ws)
    extract_competition(archive, ws)
    counts = json.loads(ws.extracted_marker.read_text())
    what = "already in place in" if done else "extracted just now into"
    say(f"{ws.label}: {what} {shown(ws.local)} ({counts['train']:,} labelled, {counts['test']:,} test photos; "
        f"from {shown(archive)})")
    return ws
