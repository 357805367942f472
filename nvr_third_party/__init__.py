"""Third-party files the web app serves (Bootstrap, hls.js), kept apart from our own code.

No Python lives here: the package only carries ``web/`` (see web/README.md for versions,
licences and checksums) into an installation, as package data.
"""
