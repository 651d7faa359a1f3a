"""Getting the competition files: Kaggle credentials and download, or an archive at hand, or the demo.
``kaggle`` is imported only when a download is really needed: the client signs in as it is imported
(before kaggle 2.2 it exits when it cannot), so the import sits where its failures are caught."""
from __future__ import annotations

import importlib.metadata
import inspect
import json
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from .archives import DatasetError, check_archive, extract_competition, find_archive, is_extracted
from .config import (ARCHIVE_NAME, COMPETITION, RULES_URL, Workspace, data_dir, demo_workspace, is_small,
                     kaggle_workspace, shown)
from .demo import demo_size, make_demo_archive

# Credentials: every way the kaggle client signs in, in one table -----------------------------
OAUTH_ON = ("1", "true", "yes")  # the values of KAGGLE_ENABLE_OAUTH that kaggle 2.0-2.1.0 take as "on"
OAUTH_ALWAYS_FROM = (2, 1, 1)  # from this version the client always tries `kaggle auth login`'s sign-in


def kaggle_config_dir() -> Path:
    """Where the client keeps kaggle.json: ``$KAGGLE_CONFIG_DIR``, else ``~/.kaggle``, else (Linux,
    when ``~/.kaggle`` does not exist) ``$XDG_CONFIG_HOME/kaggle``, as ``kaggle`` itself decides."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"]).expanduser()
    home = Path.home() / ".kaggle"
    if sys.platform.startswith("linux") and not home.exists():
        return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"
    return home


def kaggle_version() -> tuple[int, ...] | None:
    """The installed kaggle client's version, e.g. ``(2, 0, 2)``, from its package metadata (``import
    kaggle`` would sign in); None when it is not installed."""
    try:
        return tuple(int(part) for part in re.findall(r"\d+", importlib.metadata.version("kaggle"))[:3])
    except importlib.metadata.PackageNotFoundError:
        return None


def _version_text() -> str:
    version = kaggle_version()
    return "kaggle " + ".".join(map(str, version)) if version else "the kaggle client"


def oauth_enabled() -> bool:
    """Whether the installed client reads the sign-in of ``kaggle auth login``: kaggle 2.1.1 and later
    always; 2.0 to 2.1.0 only with ``KAGGLE_ENABLE_OAUTH=1``."""
    version = kaggle_version()
    return version is None or version >= OAUTH_ALWAYS_FROM or os.environ.get("KAGGLE_ENABLE_OAUTH") in OAUTH_ON


MIN_SECRET = 6  # a shorter value is no real key or token: hiding it would garble the message


@dataclass(frozen=True)
class SignIn:
    """One way the kaggle client signs in: environment variables (all of them needed), or files (any one,
    not empty). Detection, the help, the redaction of secrets, the Colab secrets and the tests read the rows."""

    name: str  # as messages name it
    how: str  # the help line; {where} is the files' places
    variables: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # "~/..." in the home folder; "{config}/..." in kaggle_config_dir()
    secret: tuple[str, ...] = ()  # the variables, or a JSON file's fields, holding a secret (a plain file: all of it)
    json: bool = False  # the files are JSON
    oauth: bool = False  # `kaggle auth login`'s sign-in: read only where oauth_enabled()
    colab_to_kaggle_json: bool = False  # as Colab secrets, kept in kaggle.json (mode 600), else for the session

    def paths(self) -> list[Path]:
        config = str(kaggle_config_dir())
        return [Path(f.replace("{config}", config)).expanduser() for f in self.files]

    def where(self) -> str:
        home = Path.home()
        return " or ".join(f"~/{p.relative_to(home)}" if p.is_relative_to(home) else str(p) for p in self.paths())

    def found(self) -> bool:
        """Set up here (whether or not this client version reads it)."""
        if self.variables:
            return all(os.environ.get(name) for name in self.variables)
        return any(p.is_file() and p.stat().st_size > 0 for p in self.paths())

    def counts(self) -> bool:
        """Set up here, and read by the installed client."""
        return self.found() and (not self.oauth or oauth_enabled())

    def secrets(self) -> list[str]:
        """The secret values this way holds here (to hide them in messages)."""
        values = []
        for name in self.secret if self.variables else ():
            value = os.environ.get(name) or ""
            values += [value, _read_text(value)]  # KAGGLE_API_TOKEN may name a file that holds the token
        for text in map(_read_text, self.paths()):
            try:
                values += [str(json.loads(text).get(field) or "") for field in self.secret] if self.json else [text]
            except (ValueError, AttributeError):  # not JSON, or not a JSON object
                pass
        return [v for v in values if len(v) >= MIN_SECRET]


def _read_text(path) -> str:
    try:
        return Path(path).read_text().strip() if path and Path(path).is_file() else ""
    except (OSError, ValueError):
        return ""


SIGN_INS = (  # as the kaggle client (2.0.2 to 2.2.x) looks for them
    SignIn("`kaggle auth login` (~/.kaggle/credentials.json)",
           "sign in once with `kaggle auth login` (kept in {where})",
           files=("~/.kaggle/credentials.json",), secret=("refresh_token", "access_token"), json=True, oauth=True),
    SignIn("KAGGLE_API_TOKEN", "set KAGGLE_API_TOKEN to an API token (Kaggle → Settings → API → Generate New Token)",
           variables=("KAGGLE_API_TOKEN",), secret=("KAGGLE_API_TOKEN",)),
    SignIn("~/.kaggle/access_token", "save that token in {where}",
           files=("~/.kaggle/access_token", "~/.kaggle/access_token.txt")),
    SignIn("KAGGLE_USERNAME and KAGGLE_KEY", "set KAGGLE_USERNAME and KAGGLE_KEY (a legacy API key)",
           variables=("KAGGLE_USERNAME", "KAGGLE_KEY"), secret=("KAGGLE_KEY",), colab_to_kaggle_json=True),
    SignIn("kaggle.json", "save kaggle.json (Kaggle → Settings → API, legacy API key) as ~/.kaggle/kaggle.json "
           "(or in $KAGGLE_CONFIG_DIR), mode 600",
           files=("{config}/kaggle.json",), secret=("key",), json=True),
)


def has_kaggle_credentials() -> bool:
    """True when the installed kaggle client will find a way to sign in (a row of ``SIGN_INS`` that counts)."""
    return any(way.counts() for way in SIGN_INS)


def _oauth_off_note() -> str:
    """Why `kaggle auth login`'s sign-in does not count with this client version."""
    return f"{_version_text()} reads it only with KAGGLE_ENABLE_OAUTH=1 set"


def _unread_sign_ins() -> list[str]:
    """A line for each sign-in that is there but that this client version does not read."""
    return [f"{way.where()} (from `kaggle auth login`) is there, but {_oauth_off_note()}: in a notebook run "
            "os.environ['KAGGLE_ENABLE_OAUTH'] = '1' (in a shell: export KAGGLE_ENABLE_OAUTH=1) and try again, "
            "or update the client (pip install -U kaggle)." for way in SIGN_INS if way.found() and not way.counts()]


def no_credentials_message(data: Path | str, headline: str = "No Kaggle credentials found.") -> str:
    """The help when no sign-in is found: one line per row of ``SIGN_INS``, Colab's secrets, the file by hand."""
    lines = [headline, *_unread_sign_ins(), "Sign in any one way the kaggle client knows:"]
    for i, way in enumerate(SIGN_INS):
        line = way.how.format(where=way.where())
        if way.oauth and not oauth_enabled():
            line += f"; {_oauth_off_note()}"
        lines.append(f"  - {'or ' if i else ''}{line},")
    first, *others = [" and ".join(way.variables) for way in SIGN_INS if way.variables]
    colab = first + "".join(f" (or {names})" for names in others)
    lines.append(f"  - or in Colab add {colab} as secrets (the key icon on the left),")
    lines.append(f"  - or download {ARCHIVE_NAME} from the competition's Data page by hand and put it in {data}.")
    return "\n".join(lines)


def _found_names() -> str:
    return ", ".join(way.name for way in SIGN_INS if way.counts()) or "none"


def write_kaggle_json(username: str, key: str) -> Path:
    """Save credentials where the kaggle client looks, readable by the owner only (mode 600)."""
    path = kaggle_config_dir() / "kaggle.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)  # before the key is written: a kaggle.json already there may be readable by others
    path.write_text(json.dumps({"username": username, "key": key}))
    return path


def _colab_secret(name: str) -> str | None:
    """A Colab secret (the key icon on the left), or None when it is missing or access was not granted."""
    try:
        from google.colab import userdata  # type: ignore

        return userdata.get(name) or None
    except Exception:  # SecretNotFoundError, NotebookAccessError, or an older Colab without secrets
        return None


def colab_credentials(ask_upload: bool = False) -> bool:
    """In Colab: Kaggle credentials from the Colab secrets named by the variable rows of ``SIGN_INS``, else
    with ``ask_upload`` from a ``kaggle.json`` uploaded now; nothing of them printed. True once in place."""
    if "google.colab" not in sys.modules:
        return False
    for way in SIGN_INS:
        values = [_colab_secret(name) for name in way.variables]
        if values and all(values):
            if way.colab_to_kaggle_json:
                write_kaggle_json(*values)
            else:
                os.environ.update(zip(way.variables, values))
            return True
    if not ask_upload:
        return False
    from google.colab import files  # type: ignore

    print("Upload your kaggle.json (Kaggle → Settings → API), or cancel to use the demo:")
    uploaded = files.upload()
    if "kaggle.json" in uploaded:
        creds = json.loads(uploaded["kaggle.json"])
        write_kaggle_json(creds["username"], creds["key"])
    return "kaggle.json" in uploaded


def _redact(text: str) -> str:
    """Hide every secret of every sign-in in a message: client and server errors may echo what was sent."""
    for secret in sorted({s for way in SIGN_INS for s in way.secrets()}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# The download --------------------------------------------------------------------------------
def _explain_download_error(err: Exception, data: Path, *, signing_in: bool = False) -> DatasetError:
    """A message that says what to do, for any exception the client raises (secrets hidden)."""
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status == 401:
        return DatasetError(f"Kaggle refused the credentials (HTTP 401) of: {_found_names()}. Check them, or create "
                            "a new token on Kaggle → Settings → API and sign in with it.")
    if status == 403:
        return DatasetError(f"Kaggle says the competition rules are not accepted yet (HTTP 403). Open {RULES_URL}, "
                            "click 'I Understand and Accept', then run this again.")
    if status == 404:
        return DatasetError(f"Kaggle has no competition called {COMPETITION!r} (HTTP 404).")
    import requests  # the kaggle client's transport (installed with kaggle and papermill, as is urllib3)
    import urllib3

    by_hand = f"download {ARCHIVE_NAME} by hand and put it in {data}."
    if isinstance(err, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError)):
        return DatasetError(f"The download was cut off before the end ({type(err).__name__}); nothing was kept. "
                            f"Run this again. Without network, {by_hand}")
    if isinstance(err, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return DatasetError(f"Could not reach Kaggle ({type(err).__name__}). Without network, {by_hand}")
    if signing_in and isinstance(err, ImportError):
        return DatasetError(f"The kaggle client could not be imported ({type(err).__name__}: {err}). Install the "
                            "requirements: pip install -r requirements.txt")
    if signing_in:
        return DatasetError(_redact(f"The kaggle client could not sign in ({type(err).__name__}: {err}) with: "
                                    f"{_found_names()}. Check that sign-in (no_credentials_message lists the ways), "
                                    f"or {by_hand}"))
    return DatasetError(_redact(f"The Kaggle download failed ({type(err).__name__}: {err}); nothing was kept. Run "
                                "this again to download it again; if it fails the same way, update the client "
                                f"(pip install -U kaggle), or {by_hand}"))


def download_competition(dest: Path | None = None) -> Path:
    """Download the competition archive with the real ``kaggle`` client into a private folder, moved into
    ``dest`` only once it is a complete, readable zip: an interrupted download never leaves a file that looks
    finished. Whatever the client raises becomes a :class:`DatasetError` that says what to do."""
    dest = Path(dest or data_dir())
    if not has_kaggle_credentials():
        raise DatasetError(no_credentials_message(dest))
    staging = dest / ".download"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        signing_in = True
        try:
            from kaggle.api.kaggle_api_extended import KaggleApi  # signs in as it is imported: see above

            options = {}
            if "enable_oauth" in inspect.signature(KaggleApi).parameters:  # kaggle 2.0 to 2.1.0
                options["enable_oauth"] = os.environ.get("KAGGLE_ENABLE_OAUTH") in OAUTH_ON
            api = KaggleApi(**options)
            api.authenticate()
            signing_in = False
            api.competition_download_files(COMPETITION, path=str(staging), force=True, quiet=False)
        except SystemExit:  # the client's exit(1) when no sign-in works
            raise DatasetError(_redact(no_credentials_message(dest, f"{_version_text()} could not sign in with: "
                                                              f"{_found_names()} (an expired or revoked token?)."))) from None
        except Exception as err:  # anything else the client raises, of any version
            raise _explain_download_error(err, dest, signing_in=signing_in) from None
        downloaded = staging / ARCHIVE_NAME
        if not downloaded.exists():
            raise DatasetError(f"The Kaggle client finished but wrote no {ARCHIVE_NAME} in {staging}.")
        check_archive(downloaded, name=f"The downloaded {ARCHIVE_NAME}", advice="Kaggle's download was probably cut short; "
                      "nothing was kept. Run this again to download it again.")
        os.replace(downloaded, dest / ARCHIVE_NAME)
        return dest / ARCHIVE_NAME
    finally:  # whatever happened, no partial file stays behind
        shutil.rmtree(staging, ignore_errors=True)


# One call for notebook 01 --------------------------------------------------------------------
def prepare_dataset(archive: Path | str | None = None, *, ask_upload: bool = True) -> Workspace:
    """Put the competition files in place and return their workspace, saying in one line what it did: an
    archive given (:func:`find_archive`); else photos extracted earlier; else, with Kaggle credentials (in
    Colab also its secrets, or a kaggle.json uploaded, with ``ask_upload``), a download; else the generated
    demo archive, with a warning (the ``small`` profile: always). Every step is skipped when already done,
    so any notebook can call this first, on a fresh machine or after the others."""
    if not is_small():
        found, real = find_archive(archive), kaggle_workspace()
        if found is None and real.extracted_marker.exists():  # extracted earlier, archive since moved
            print(f"Kaggle photos: already in place in {shown(real.local)} (extracted earlier)")
            return real
        if found is None and (has_kaggle_credentials() or colab_credentials(ask_upload)):
            found = download_competition(data_dir())
            print(f"downloaded {shown(found)} from Kaggle")
        if found is not None:
            return _extract_and_say(found, real)
        warnings.warn(f"No {ARCHIVE_NAME} in {shown(data_dir())} and no Kaggle credentials: this uses the generated "
                      "DEMO archive (synthetic pictures), not the Kaggle photos. See notebook 01 or the README for "
                      "the real data." + "".join(" " + line for line in _unread_sign_ins()), DemoDataWarning,
                      stacklevel=2)
    ws = demo_workspace()
    if not ws.archive.exists():
        make_demo_archive(ws.archive, **demo_size())
    return _extract_and_say(ws.archive, ws)


class DemoDataWarning(UserWarning):
    """The notebooks run on the generated demo archive: their figures say nothing of the real photos."""


def _extract_and_say(archive: Path, ws: Workspace) -> Workspace:
    done = is_extracted(archive, ws)
    extract_competition(archive, ws)
    counts = json.loads(ws.extracted_marker.read_text())
    what = "already in place in" if done else "extracted just now into"
    print(f"{ws.label}: {what} {shown(ws.local)} ({counts['train']:,} labelled, {counts['test']:,} test photos; "
          f"from {shown(archive)})")
    return ws
