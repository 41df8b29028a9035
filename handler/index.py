"""SCF entry point: ``index.main_handler`` (Handler setting of the function).

The configuration is read and validated once, when SCF loads this module (cold start); warm
invocations reuse it. Only the standard library and the project's light modules are imported
here: the COS SDK is imported after a callback is authenticated and validated.
"""
from smartcover.scf.app import load

_APP = load()


def main_handler(event, context):
    """SCF handler. ``event``: API Gateway / Function URL event or a callback body; ``context``:
    SCF's context dict. Returns an integration response dict (never raises)."""
    return _APP(event, context)
