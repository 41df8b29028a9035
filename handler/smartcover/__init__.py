"""SmartCover callback handler: CI SmartCover notifications in, covers moved or tagged in COS.

Layers, each importing only those before it: ``core`` (model, parse, validate, plan; no I/O) ->
``cloud`` (COS client, transport, pool, SSM) -> ``flow`` (one callback carried out) -> ``ops``
(reconcile, fan-out, doctor, CI setup) -> ``scf`` (SCF events in, integration responses out) ->
``cli`` (the local command line).

The package has one import name, ``smartcover`` (``handler/`` is the code root SCF loads, so the
package sits at the top level there). Imported under any other name, for example
``handler.smartcover``, its classes would be second copies (``except BadRequest`` would miss the
other copy's errors), so that is refused.
"""
if __name__ != "smartcover":
    raise ImportError(f"import this package as 'smartcover' (with handler/ on sys.path), not as {__name__!r}")
