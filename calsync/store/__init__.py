"""The database: SQLAlchemy models, the Database handle and the Alembic migrations."""
