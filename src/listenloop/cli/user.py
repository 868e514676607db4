"""`listenloop user create`: accounts made from the command line (owners, admins, annotators)."""

from __future__ import annotations

from typing import Annotated

import typer

from listenloop.cli.app import app

user_app = typer.Typer(help="Manage platform accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("create")
def create(
    username: Annotated[str, typer.Option("--username", help="Login name.")],
    password: Annotated[str, typer.Option("--password", help="At least 8 characters.")],
    role: Annotated[str, typer.Option("--role", help="owner, annotator or admin.")] = "owner",
    db: Annotated[str, typer.Option("--db", help="Database URL.")] = "sqlite:///./listenloop.db",
) -> None:
    """Create an account (the database is created or migrated first)."""
    from listenloop.engine.accounts import check_credentials, create_user, hash_password
    from listenloop.store.database import Database

    check_credentials(username, password, role)
    database = Database(db)
    try:
        database.upgrade()
        with database.write() as session:
            user = create_user(session, username, hash_password(password), role)
            user_id = user.id
    finally:
        database.dispose()
    print(f"created {role} {username} (id {user_id})")
