from __future__ import annotations

import sys

import click
from sqlalchemy import select

from upgrade_server.accounts import service
from upgrade_server.accounts.models import ApiToken, User
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Role
from upgrade_server.cli import fail, transaction
from upgrade_server.errors import AppError, NotFoundError
from upgrade_server.extensions import current_settings, session


def _user_by_email(email: str) -> User:
    user = session().execute(select(User).where(User.email == email.lower())).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"no user {email}")
    return user


def _issue(user: User, name: str, days: int | None) -> str:
    issued = service.create_api_token(
        session(),
        Principal.cli(),
        name=name,
        user_id=user.id,
        expires_in_days=days,
        default_days=current_settings().token_ttl_days,
    )
    return issued.secret


@click.group("admin", help="The first administrator.")
def admin_group() -> None:
    pass


@admin_group.command("create", help="Create an administrator and print its API token once.")
@click.option("--email", required=True)
@click.option("--name", default="Administrator")
@click.option("--password", is_flag=True, help="Prompt for a password for the web login.")
@click.option("--token-days", type=int, default=None)
def create_admin(email: str, name: str, password: bool, token_days: int | None) -> None:
    secret_password = (
        click.prompt("Password", hide_input=True, confirmation_prompt=True) if password else None
    )
    try:
        with transaction() as session:
            user = service.create_user(
                session,
                Principal.cli(),
                email=email,
                name=name,
                role=Role.ADMIN.value,
                password=secret_password,
            )
            secret = _issue(user, "created by admin create", token_days)
    except AppError as error:
        fail(error)
    click.echo(f"administrator {email} created; API token (shown once):")
    click.echo(secret)


@click.group("user", help="Users.")
def user_group() -> None:
    pass


@user_group.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--organisation-id", type=int, default=None)
@click.option("--password", is_flag=True, help="Prompt for a password.")
def create_user(
    email: str, name: str, role: str, organisation_id: int | None, password: bool
) -> None:
    secret_password = (
        click.prompt("Password", hide_input=True, confirmation_prompt=True) if password else None
    )
    try:
        with transaction() as session:
            user = service.create_user(
                session,
                Principal.cli(),
                email=email,
                name=name,
                role=role,
                organisation_id=organisation_id,
                password=secret_password,
            )
    except AppError as error:
        fail(error)
    click.echo(f"user {user.id} {user.email} ({user.role}) created")


@user_group.command("list")
def list_users() -> None:
    for user in session().execute(select(User).order_by(User.id)).scalars():
        org = f" org={user.organisation_id}" if user.organisation_id else ""
        state = "" if user.active else " (inactive)"
        click.echo(f"{user.id}\t{user.email}\t{user.role}{org}{state}")


@click.group("token", help="API tokens.")
def token_group() -> None:
    pass


@token_group.command("create", help="Create an API token for a user and print it once.")
@click.option("--email", required=True)
@click.option("--name", required=True, help="What the token is for.")
@click.option("--days", type=int, default=None, help="Lifetime in days.")
def create_token(email: str, name: str, days: int | None) -> None:
    try:
        with transaction():
            secret = _issue(_user_by_email(email), name, days)
    except AppError as error:
        fail(error)
    click.echo(secret)


@token_group.command("list")
@click.option("--email", default=None)
def list_tokens(email: str | None) -> None:
    stmt = select(ApiToken).order_by(ApiToken.id)
    if email:
        stmt = stmt.where(ApiToken.user_id == _user_by_email(email).id)
    for token in session().execute(stmt).scalars():
        state = "revoked" if token.revoked_at else f"expires {token.expires_at:%Y-%m-%d}"
        click.echo(f"{token.id}\t{token.prefix}…\t{token.user.email}\t{token.name}\t{state}")


@token_group.command("revoke")
@click.argument("token_id", type=int)
def revoke_token(token_id: int) -> None:
    try:
        with transaction() as session:
            service.revoke_api_token(session, Principal.cli(), token_id)
    except NotFoundError as error:
        fail(error)
    click.echo(f"token {token_id} revoked")


@click.group("accounts", help="User accounts: passwords.")
def accounts_group() -> None:
    pass


@accounts_group.command("set-password")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the new password from the first line of standard input instead of prompting.",
)
def set_password(email: str, password_stdin: bool) -> None:
    """Set a user's password for the web login, under the API's password rules.
    The user's portal sessions end, as with any password change; the change is
    audited (never the password). The password is never an argument: it would
    show in the process list and the shell's history."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        with transaction() as session:
            user = _user_by_email(email)
            service.update_user(session, Principal.cli(), user.id, {"password": password})
    except AppError as error:
        fail(error)
    click.echo(f"password of {user.email} set; their portal sessions have ended")
