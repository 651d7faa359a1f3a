"""Google Drive: mounting shows the user's files under ``<mountpoint>/MyDrive``."""
import os

MOUNTED: list[str] = []


def mount(mountpoint: str, force_remount: bool = False) -> None:
    os.makedirs(os.path.join(mountpoint, "MyDrive"), exist_ok=True)
    MOUNTED.append(mountpoint)
