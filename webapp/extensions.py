"""Flask extensions, created unbound here and bound to the app in `create_app` with init_app."""

from __future__ import annotations

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

# One session for both databases: the catalog models (nvrlib.catalog.models.Base, no bind key) use the
# default engine, the users models (webapp.models.UsersBase, metadata bind_key "users") use the
# "users" bind. Flask-SQLAlchemy's session picks the engine from each table's metadata.
db = SQLAlchemy()
# `flask --app webapp db ...` works on the catalog through the catalog's migrations (nvrlib/catalog/migrations/).
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
