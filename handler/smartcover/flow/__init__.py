"""Orchestration: one callback's plan carried out in COS (execute, verify, manifest).

Called by the SCF adapter and by the operations alike (:mod:`flow.session`)."""
