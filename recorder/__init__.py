"""The hub: accepts edge streams, pulls RTSP cameras, segments and catalogs footage."""
