"""Dependencies of the notification service's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from notification_service.settings import NotificationSettings


async def get_notification_settings(request: Request) -> NotificationSettings:
    settings: NotificationSettings = request.app.state.settings
    return settings


NotificationSettingsDep = Annotated[NotificationSettings, Depends(get_notification_settings)]
