"""The SCF adapter: events in, authentication, the integration response out, and the App that dispatches them."""
