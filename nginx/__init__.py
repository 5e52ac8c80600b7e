"""nginx configuration rendered from Settings."""
