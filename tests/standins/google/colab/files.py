"""The upload widget: returns {file name: bytes} of what the user picked."""
UPLOADS: dict[str, bytes] = {}
CALLS: list[int] = []


def upload() -> dict[str, bytes]:
    CALLS.append(1)
    return dict(UPLOADS)
