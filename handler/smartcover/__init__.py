"""SmartCover callback handler: CI SmartCover notifications in, covers moved or tagged in COS."""
