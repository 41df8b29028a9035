"""Pure core: the model, parsing, validation, configuration and planning. No I/O; imports nothing above it."""
