"""The edge agent: runs readers, smooths reads into movement events, publishes them."""
