"""Dependencies of live tracking: this process's write-behind of tracker rows."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.tracking.service import TrackWriter


async def get_track_writer(request: Request) -> TrackWriter:
    """The app's ``TrackWriter`` (made in the lifespan)."""
    writer: TrackWriter = request.app.state.track_writer
    return writer


TrackWriterDep = Annotated[TrackWriter, Depends(get_track_writer)]
