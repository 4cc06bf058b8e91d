"""Register, login and profile."""

from __future__ import annotations

import time
from typing import Any

from litestar import Controller, Request, get, post
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import caller, client_address, rate_limit, resources
from api.errors import ApiError
from api.present import user_out
from api.schemas import AuthOut, LoginIn, RegisterIn, UserOut
from api.security import issue_token, password_problems
from engine.models import new_id
from persistence.errors import DuplicateEmail
from persistence.store import User


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post("/register", status_code=HTTP_201_CREATED, exclude_from_auth=True)
    async def register(self, request: Request[Any, Any, Any], data: RegisterIn) -> AuthOut:
        res = resources(request)
        await rate_limit(request, "register", client_address(request))
        if data.role == "ADMIN":
            raise ApiError(403, "the ADMIN role cannot be self-assigned", code="role_forbidden")
        problem = password_problems(data.password)
        if problem:
            raise ApiError(
                422,
                problem,
                code="weak_password",
                errors=[{"field": "password", "message": problem, "source": "body"}],
            )
        email = data.email.strip().lower()
        if await res.store.get_user_by_email(email) is not None:
            raise ApiError(409, "e-mail already registered", code="duplicate_email")
        user = User(
            id=new_id(),
            name=data.nombre.strip(),
            email=email,
            role=data.role,
            password_hash=await res.passwords.hash(data.password),
            created_at=int(time.time() * 1000),
        )
        try:
            await res.store.create_user(user)
        except DuplicateEmail:
            raise ApiError(409, "e-mail already registered", code="duplicate_email") from None
        return AuthOut(token=issue_token(res.jwt_auth, user.id, user.role), user=user_out(user))

    @post("/login", status_code=HTTP_200_OK, exclude_from_auth=True)
    async def login(self, request: Request[Any, Any, Any], data: LoginIn) -> AuthOut:
        res = resources(request)
        email = data.email.strip().lower()
        await rate_limit(request, "login", client_address(request))
        await rate_limit(request, "login-email", email)
        user = await res.store.get_user_by_email(email)
        ok = await res.passwords.verify(data.password, user.password_hash if user else None)
        if not ok or user is None:
            raise ApiError(401, "invalid e-mail or password", code="bad_credentials")
        return AuthOut(token=issue_token(res.jwt_auth, user.id, user.role), user=user_out(user))

    @get("/profile")
    async def profile(self, request: Request[Any, Any, Any]) -> UserOut:
        user = await resources(request).store.get_user(caller(request).id)
        if user is None:
            raise ApiError(401, "the account no longer exists", code="unknown_user")
        return user_out(user)
