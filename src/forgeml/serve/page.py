"""The web page at / (placeholder until the form page lands)."""


def render(api_key_required: bool = False) -> str:
    return "<!doctype html><title>forgeml</title><p>forgeml model server: see <a href=/docs>/docs</a>"
