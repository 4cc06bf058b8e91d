"""HTTP for accounts: register, login and profile (the rules are api.services.auth)."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import SERVICES
from api.present import auth_out, user_out
from api.schemas import AuthOut, LoginIn, RegisterIn, UserOut
from api.security import Principal
from api.services.auth import AuthService


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]
    dependencies = SERVICES

    @post("/register", status_code=HTTP_201_CREATED, exclude_from_auth=True)
    async def register(self, auth: AuthService, client: str, data: RegisterIn) -> AuthOut:
        return auth_out(await auth.register(data, client))

    @post("/login", status_code=HTTP_200_OK, exclude_from_auth=True)
    async def login(self, auth: AuthService, client: str, data: LoginIn) -> AuthOut:
        return auth_out(await auth.login(data.email, data.password, client))

    @get("/profile")
    async def profile(self, auth: AuthService, who: Principal) -> UserOut:
        return user_out(await auth.profile(who))
