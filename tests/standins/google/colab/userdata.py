"""Colab secrets (the key icon): ``get`` raises for a missing secret, as Colab's does."""
SECRETS: dict[str, str] = {}


class SecretNotFoundError(Exception):
    pass


def get(name: str) -> str:
    if name not in SECRETS:
        raise SecretNotFoundError(name)
    return SECRETS[name]
