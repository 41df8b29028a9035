"""Operations on top of the flow: reconcile (lost callbacks), fan-out backfill, doctor (account checks), CI queue setup."""
